package decision

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/sios-project/sios/brain"
)

// Rule names. Only append to this list: a published rule never changes meaning.
const (
	RulePlurality = "plurality" // the option most members chose
	RuleWeighted  = "weighted"  // the option with the most weight behind it
	RuleQuorum    = "quorum"    // an option at least Quorum members chose
	RuleUnanimity = "unanimity" // the option every member chose
	RuleVeto      = "veto"      // plurality among the options no vetoer blocked
)

// Rules lists the rule names in the order docs/decisions.md describes them.
var Rules = []string{RulePlurality, RuleWeighted, RuleQuorum, RuleUnanimity, RuleVeto}

// Rule is how ballots become an outcome, with its parameters.
type Rule struct {
	Name string `json:"name"`
	// Quorum is how many members must agree under RuleQuorum: 1 to the panel's size.
	// It is 0 (left out) under every other rule.
	Quorum int `json:"quorum,omitempty"`
	// Vetoers are the members who may veto an option under RuleVeto: at least one,
	// each a member of the panel. Empty under every other rule.
	Vetoers []string `json:"vetoers,omitempty"`
}

// Panel is who is asked: the members, their weights and the constraints on who must
// answer. It is a panel file's body (see LoadPanels) and part of every request.
type Panel struct {
	// ID names the panel file the panel came from; empty for a panel given inline.
	ID string `json:"id,omitempty"`
	// Members are 2 to MaxMembers distinct members (see Member), in the order given.
	Members []string `json:"members"`
	// Weights are the members' weights under RuleWeighted, 1 to MaxWeight. In a request
	// every member has one under RuleWeighted and none has one under any other rule;
	// in a panel file a member without one weighs 1 (see ForRule).
	Weights map[string]int `json:"weights,omitempty"`
	// MinNodes is the fewest distinct nodes that must cast a counted ballot that is not
	// an abstention for the decision to stand; 0 (left out) sets no minimum.
	MinNodes int `json:"min_nodes,omitempty"`
	// MinInstitutions is the same for distinct institutions (enrolment roots).
	MinInstitutions int `json:"min_institutions,omitempty"`
}

// ForRule returns the panel as a request under rule carries it: under RuleWeighted
// every member has a weight (1 where the panel gives none), under any other rule the
// weights are left out.
func (p Panel) ForRule(rule Rule) Panel {
	q := p
	q.Members = slices.Clone(p.Members)
	q.Weights = nil
	if rule.Name == RuleWeighted {
		q.Weights = make(map[string]int, len(p.Members))
		for _, m := range p.Members {
			w := p.Weights[m]
			if w == 0 {
				w = 1
			}
			q.Weights[m] = w
		}
	}
	return q
}

// Validate checks the panel on its own: ids, members, weights and constraints.
func (p *Panel) Validate() error {
	if e := p.check(); e != nil {
		return e
	}
	return nil
}

// Validate checks the rule against the panel it applies to.
func (r *Rule) Validate(p *Panel) error {
	if e := r.check(p); e != nil {
		return e
	}
	return nil
}

// Brains is what CheckBrains needs of the catalogue (brain.Catalogue).
type Brains interface {
	Get(id string) (*brain.Brain, bool)
}

// CheckBrains requires that every member local to this node is a brain of the
// catalogue marked arbitration: true. A peer checks its own brains when asked for a
// ballot: this node's catalogue does not know them.
func (p *Panel) CheckBrains(cat Brains) error {
	for i, s := range p.Members {
		m, err := ParseMember(s)
		if err != nil || !m.Local() {
			continue
		}
		b, ok := cat.Get(m.Brain)
		if !ok {
			return fail(fmt.Sprintf("%q is not a brain of this node", s), "members", strconv.Itoa(i))
		}
		if !b.Arbitration {
			return fail(fmt.Sprintf("brain %q may not sit on a panel: its brain file does not say arbitration: true", s), "members", strconv.Itoa(i))
		}
	}
	return nil
}

// A fieldError is a validation failure of one member; path locates it (member names
// and decimal list indexes), so that a panel file's error can name the line.
type fieldError struct {
	path []string
	msg  string
	line int // in a panel file, when the error is about a node rather than a path
}

func (e *fieldError) Error() string {
	if len(e.path) == 0 {
		return e.msg
	}
	var b strings.Builder
	for i, p := range e.path {
		if _, err := strconv.Atoi(p); err == nil {
			b.WriteString("[" + p + "]")
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String() + ": " + e.msg
}

func fail(msg string, path ...string) *fieldError { return &fieldError{path: path, msg: msg} }

// under prefixes the path of e with p.
func (e *fieldError) under(p ...string) *fieldError {
	if e == nil {
		return nil
	}
	return &fieldError{path: append(slices.Clone(p), e.path...), msg: e.msg, line: e.line}
}

func (p *Panel) check() *fieldError {
	if p.ID != "" && !validBrainID(p.ID) {
		return fail(fmt.Sprintf("%q is not 1 to %d bytes of a-z, 0-9 and '-', not starting or ending with '-' (MaxIDLen)", short(p.ID), MaxIDLen), "id")
	}
	if n := len(p.Members); n < 2 || n > MaxMembers {
		return fail(fmt.Sprintf("%d members: a panel has 2 to %d (MaxMembers)", n, MaxMembers), "members")
	}
	seen := make(map[string]int, len(p.Members))
	for i, s := range p.Members {
		if _, err := ParseMember(s); err != nil {
			return fail(err.Error(), "members", strconv.Itoa(i))
		}
		if j, dup := seen[s]; dup {
			return fail(fmt.Sprintf("%q repeats member %d", s, j), "members", strconv.Itoa(i))
		}
		seen[s] = i
	}
	for _, m := range slices.Sorted(maps.Keys(p.Weights)) {
		if _, ok := seen[m]; !ok {
			return fail("is not a member of the panel", "weights", m)
		}
		if w := p.Weights[m]; w < 1 || w > MaxWeight {
			return fail(fmt.Sprintf("%d is out of range: a weight is 1 to %d (MaxWeight)", w, MaxWeight), "weights", m)
		}
	}
	for _, c := range []struct {
		name string
		n    int
	}{{"min_nodes", p.MinNodes}, {"min_institutions", p.MinInstitutions}} {
		if c.n < 0 || c.n > len(p.Members) {
			return fail(fmt.Sprintf("%d is out of range: 0 to the number of members (%d)", c.n, len(p.Members)), c.name)
		}
	}
	return nil
}

func (r *Rule) check(p *Panel) *fieldError {
	if !slices.Contains(Rules, r.Name) {
		return fail(fmt.Sprintf("%q is not one of %s", short(r.Name), strings.Join(Rules, ", ")), "name")
	}
	if r.Name == RuleQuorum {
		if r.Quorum < 1 || r.Quorum > len(p.Members) {
			return fail(fmt.Sprintf("%d is out of range: 1 to the number of members (%d)", r.Quorum, len(p.Members)), "quorum")
		}
	} else if r.Quorum != 0 {
		return fail(fmt.Sprintf("is only for the %s rule", RuleQuorum), "quorum")
	}
	if r.Name != RuleVeto {
		if len(r.Vetoers) != 0 {
			return fail(fmt.Sprintf("are only for the %s rule", RuleVeto), "vetoers")
		}
		return nil
	}
	if len(r.Vetoers) == 0 {
		return fail(fmt.Sprintf("the %s rule names at least one member who may veto", RuleVeto), "vetoers")
	}
	seen := make(map[string]bool, len(r.Vetoers))
	for i, v := range r.Vetoers {
		if !slices.Contains(p.Members, v) {
			return fail(fmt.Sprintf("%q is not a member of the panel", short(v)), "vetoers", strconv.Itoa(i))
		}
		if seen[v] {
			return fail(fmt.Sprintf("%q is named twice", short(v)), "vetoers", strconv.Itoa(i))
		}
		seen[v] = true
	}
	return nil
}
