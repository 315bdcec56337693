package brain

import "sort"

// Catalogue is a loaded, validated set of brains. It never changes after Load and is
// safe for concurrent use.
type Catalogue struct {
	byID       map[string]*Brain
	sorted     []*Brain // by id
	overridden []string // ids defined in the data directory, sorted

	// The lexical router's index over domain brains (see route.go).
	domain []*Brain // domain brains, by id
	lex    lexIndex
}

func newCatalogue(all map[string]*Brain, overridden []string) *Catalogue {
	c := &Catalogue{byID: all, overridden: overridden}
	for _, b := range all {
		c.sorted = append(c.sorted, b)
	}
	sort.Slice(c.sorted, func(i, j int) bool { return c.sorted[i].ID < c.sorted[j].ID })
	for _, b := range c.sorted {
		if b.Kind != KindDomain {
			continue
		}
		c.domain = append(c.domain, b)
	}
	c.lex = newLexIndex(c.domain)
	return c
}

// Get returns a copy of the brain with the given id.
func (c *Catalogue) Get(id string) (*Brain, bool) {
	b, ok := c.byID[id]
	if !ok {
		return nil, false
	}
	return b.clone(), true
}

// All returns copies of every brain, sorted by id.
func (c *Catalogue) All() []*Brain {
	out := make([]*Brain, len(c.sorted))
	for i, b := range c.sorted {
		out[i] = b.clone()
	}
	return out
}

// Overridden returns, sorted, the ids of the brains defined by files in the data
// directory: those that replaced an embedded brain and those that were added.
func (c *Catalogue) Overridden() []string {
	return append([]string(nil), c.overridden...)
}
