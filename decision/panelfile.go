package decision

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Panel files: DIR/panels/*.yaml (and *.yml), with the conventions of brain files
// (docs/brains.md): files in name order, names starting with '.' ignored, a missing
// directory is no panels, each YAML document in a file is one panel, every file read
// strictly and every panel validated, and the first problem an error naming the file
// and line, with no panels returned. Unlike brain files, panel files take no anchors or
// aliases: a panel is small enough to write out. A panel file reads:
//
//	id: discharge-review              # required; a-z, 0-9 and '-'
//	description: Adult ward discharge # optional, one line
//	members: [clinical-triage, clinical-pharmacology@node_…, clinical-safety@*]
//	weights: {clinical-triage: 2}     # optional; used under the weighted rule
//	rule: plurality                   # or a mapping: {name: quorum, quorum: 2}, {name: veto, vetoers: [m]}
//	min_nodes: 2                      # optional
//	min_institutions: 1               # optional

// PanelDef is one panel a panel file defines: the panel and the rule a decision by it
// follows unless its request names another.
type PanelDef struct {
	Panel       Panel
	Rule        Rule
	Description string
	Source      string // file:line of its document
}

// Panels are the panels a data directory defines. They never change after
// LoadPanels and are safe for concurrent use.
type Panels struct {
	mu   sync.RWMutex
	byID map[string]PanelDef // guarded by mu
	ids  []string            // guarded by mu; sorted
}

// Replace puts the panels of other in force in p (a reload), for every later Get and
// IDs; other is not used after.
func (p *Panels) Replace(other *Panels) {
	other.mu.RLock()
	byID, ids := other.byID, other.ids
	other.mu.RUnlock()
	p.mu.Lock()
	p.byID, p.ids = byID, ids
	p.mu.Unlock()
}

// Get returns (a copy of) the panel with the given id.
func (p *Panels) Get(id string) (PanelDef, bool) {
	p.mu.RLock()
	d, ok := p.byID[id]
	p.mu.RUnlock()
	d.Panel.Members = slices.Clone(d.Panel.Members)
	d.Panel.Weights = maps.Clone(d.Panel.Weights)
	d.Rule.Vetoers = slices.Clone(d.Rule.Vetoers)
	return d, ok
}

// IDs returns the ids of every panel, sorted.
func (p *Panels) IDs() []string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return slices.Clone(p.ids)
}

// LoadPanels reads every panel file in dataDir/panels/ and checks every panel: the
// panel and its rule (Panel.Validate, Rule.Validate), and that its members local to
// this node are brains of cat that may sit on a panel (Panel.CheckBrains).
func LoadPanels(dataDir string, cat Brains) (*Panels, error) {
	ps := &Panels{byID: make(map[string]PanelDef)}
	if dataDir == "" {
		return ps, nil
	}
	dir := filepath.Join(dataDir, "panels")
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("panels directory: %v", err)
	}
	for _, e := range entries { // os.ReadDir sorts by name
		name := e.Name()
		ext := filepath.Ext(name)
		if strings.HasPrefix(name, ".") || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		file := filepath.Join(dir, name)
		data, err := readPanelFile(file)
		if err != nil {
			return nil, err
		}
		defs, err := ParsePanelFile(file, data, cat)
		if err != nil {
			return nil, err
		}
		for _, d := range defs {
			if prev, dup := ps.byID[d.Panel.ID]; dup {
				return nil, fmt.Errorf("%s: panel %q is already defined at %s", d.Source, d.Panel.ID, prev.Source)
			}
			if len(ps.byID) == MaxPanels {
				return nil, fmt.Errorf("%s: panel %q makes more than %d panels (MaxPanels)", d.Source, d.Panel.ID, MaxPanels)
			}
			ps.byID[d.Panel.ID] = d
			ps.ids = append(ps.ids, d.Panel.ID)
		}
	}
	slices.Sort(ps.ids)
	return ps, nil
}

// readPanelFile reads a regular file of at most MaxPanelFileSize bytes.
func readPanelFile(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file", file)
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxPanelFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", file, err)
	}
	if len(data) > MaxPanelFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes (MaxPanelFileSize)", file, MaxPanelFileSize)
	}
	return data, nil
}

// ParsePanelFile decodes and checks every panel in one file's bytes; where names the
// file in errors. cat may be nil to skip Panel.CheckBrains.
func ParsePanelFile(where string, data []byte, cat Brains) (defs []PanelDef, err error) {
	if len(data) > MaxPanelFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes (MaxPanelFileSize)", where, MaxPanelFileSize)
	}
	defer func() {
		// The YAML parser is outside code fed outside bytes: a panic in it must
		// reject the file, not take the node down.
		if r := recover(); r != nil {
			defs, err = nil, fmt.Errorf("%s: the YAML parser failed on this file: %v", where, r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for doc := 1; ; doc++ {
		var n yaml.Node
		err := dec.Decode(&n)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, syntaxError(where, err)
		}
		m := &n
		if m.Kind == yaml.DocumentNode && len(m.Content) == 1 {
			m = m.Content[0]
		}
		if m.Kind == yaml.ScalarNode && m.ShortTag() == "!!null" && m.Value == "" {
			continue // an empty document
		}
		if m.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s:%d: document %d is not a panel (a mapping of fields)", where, m.Line, doc)
		}
		if len(defs) == MaxPanels {
			return nil, fmt.Errorf("%s:%d: more than %d panels in one file (MaxPanels)", where, m.Line, MaxPanels)
		}
		d, fe := decodePanel(m)
		if fe == nil {
			fe = d.Panel.check()
		}
		if fe == nil {
			fe = d.Rule.check(&d.Panel).under("rule")
		}
		if fe == nil && cat != nil {
			if err := d.Panel.CheckBrains(cat); err != nil {
				fe = err.(*fieldError)
			}
		}
		if fe != nil {
			prefix := ""
			if validBrainID(d.Panel.ID) {
				prefix = fmt.Sprintf("panel %q: ", d.Panel.ID)
			}
			return nil, fmt.Errorf("%s:%d: %s%v", where, fe.lineIn(m), prefix, fe)
		}
		d.Source = fmt.Sprintf("%s:%d", where, m.Line)
		for _, prev := range defs {
			if prev.Panel.ID == d.Panel.ID {
				return nil, fmt.Errorf("%s: panel %q is defined again (first at %s)", d.Source, d.Panel.ID, prev.Source)
			}
		}
		defs = append(defs, d)
	}
	if len(defs) == 0 {
		return nil, fmt.Errorf("%s: no panel in file", where)
	}
	return defs, nil
}

// decodePanel reads one panel document field by field, so that every error has the
// line of the node at fault.
func decodePanel(m *yaml.Node) (PanelDef, *fieldError) {
	var d PanelDef
	d.Rule.Name = RulePlurality
	fe := fields(m, nil, func(k string, v *yaml.Node) (fe *fieldError) {
		switch k {
		case "id":
			d.Panel.ID, fe = str(v, "id")
		case "description":
			d.Description, fe = str(v, "description")
			if fe == nil {
				if err := checkLabel("description", d.Description, MaxDescriptionLen, "MaxDescriptionLen"); err != nil {
					fe = fail(err.Error(), "description")
				}
			}
		case "members":
			d.Panel.Members, fe = strs(v, "members")
		case "weights":
			d.Panel.Weights, fe = weights(v)
		case "rule":
			d.Rule, fe = rule(v)
		case "min_nodes":
			d.Panel.MinNodes, fe = integer(v, "min_nodes")
		case "min_institutions":
			d.Panel.MinInstitutions, fe = integer(v, "min_institutions")
		default:
			fe = fail(fmt.Sprintf("unknown field %q", short(k)), k)
		}
		return fe
	})
	if fe != nil {
		return d, fe
	}
	if d.Panel.ID == "" {
		return d, fail("required: the panel's name, 1 to 64 bytes of a-z, 0-9 and '-'", "id")
	}
	return d, nil
}

// plain refuses anchors and aliases, which would let a value arrive from elsewhere.
func plain(n *yaml.Node) *fieldError {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return &fieldError{msg: "anchors and aliases are not supported in panel files", line: n.Line}
	}
	return nil
}

func str(n *yaml.Node, path ...string) (string, *fieldError) {
	if err := plain(n); err != nil {
		return "", err
	}
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		return "", fail("want a string", path...)
	}
	return n.Value, nil
}

func strs(n *yaml.Node, path ...string) ([]string, *fieldError) {
	if err := plain(n); err != nil {
		return nil, err
	}
	if n.Kind != yaml.SequenceNode {
		return nil, fail("want a list of strings", path...)
	}
	if len(n.Content) > 4*MaxMembers {
		return nil, fail(fmt.Sprintf("%d entries, far more than a panel has (MaxMembers is %d)", len(n.Content), MaxMembers), path...)
	}
	out := make([]string, len(n.Content))
	for i, c := range n.Content {
		s, err := str(c, append(slices.Clone(path), strconv.Itoa(i))...)
		if err != nil {
			return nil, err
		}
		out[i] = s
	}
	return out, nil
}

func integer(n *yaml.Node, path ...string) (int, *fieldError) {
	if err := plain(n); err != nil {
		return 0, err
	}
	var v int
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&v) != nil {
		return 0, fail("want a whole number", path...)
	}
	return v, nil
}

func weights(n *yaml.Node) (map[string]int, *fieldError) {
	if err := plain(n); err != nil {
		return nil, err
	}
	if n.Kind != yaml.MappingNode {
		return nil, fail("want a mapping of member to weight", "weights")
	}
	if len(n.Content)/2 > 4*MaxMembers {
		return nil, fail(fmt.Sprintf("%d entries, far more than a panel has (MaxMembers is %d)", len(n.Content)/2, MaxMembers), "weights")
	}
	out := make(map[string]int, len(n.Content)/2)
	fe := fields(n, []string{"weights"}, func(k string, v *yaml.Node) (fe *fieldError) {
		out[k], fe = integer(v, "weights", k)
		return fe
	})
	return out, fe
}

// fields calls each for every key and value of mapping m, whose path is path, in
// order: each key a plain string, none given twice.
func fields(m *yaml.Node, path []string, each func(key string, v *yaml.Node) *fieldError) *fieldError {
	seen := make(map[string]bool, len(m.Content)/2)
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if err := plain(k); err != nil {
			return err
		}
		at := append(slices.Clone(path), k.Value)
		if k.Kind != yaml.ScalarNode || k.ShortTag() != "!!str" {
			return &fieldError{path: at, msg: "want a name", line: k.Line}
		}
		if seen[k.Value] {
			return &fieldError{path: at, msg: "is given twice", line: k.Line}
		}
		seen[k.Value] = true
		if err := each(k.Value, m.Content[i+1]); err != nil {
			return err
		}
	}
	return nil
}

func rule(n *yaml.Node) (Rule, *fieldError) {
	if err := plain(n); err != nil {
		return Rule{}, err
	}
	if n.Kind == yaml.ScalarNode {
		name, fe := str(n, "rule")
		return Rule{Name: name}, fe
	}
	if n.Kind != yaml.MappingNode {
		return Rule{}, fail("want a rule name or a mapping with name, quorum and vetoers", "rule")
	}
	var r Rule
	fe := fields(n, []string{"rule"}, func(k string, v *yaml.Node) (fe *fieldError) {
		switch k {
		case "name":
			r.Name, fe = str(v, "rule", "name")
		case "quorum":
			r.Quorum, fe = integer(v, "rule", "quorum")
		case "vetoers":
			r.Vetoers, fe = strs(v, "rule", "vetoers")
		default:
			fe = fail(fmt.Sprintf("unknown field %q in rule", short(k)), "rule", k)
		}
		return fe
	})
	if fe != nil {
		return r, fe
	}
	if r.Name == "" {
		return r, fail("required: one of "+strings.Join(Rules, ", "), "rule", "name")
	}
	return r, nil
}

// lineIn is the line of the error in the panel document m.
func (e *fieldError) lineIn(m *yaml.Node) int {
	if e.line != 0 {
		return e.line
	}
	return lineOf(m, e.path)
}

// lineOf is the line of the node at path (mapping keys and list indexes) under m, or
// of the deepest node on the way when the rest is missing.
func lineOf(m *yaml.Node, path []string) int {
	n := m
	for _, p := range path {
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					next = n.Content[i+1]
					break
				}
			}
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(p); err == nil && i >= 0 && i < len(n.Content) {
				next = n.Content[i]
			}
		}
		if next == nil {
			break
		}
		n = next
	}
	return n.Line
}

var yamlLineRE = regexp.MustCompile(`^line (\d+): (.*)$`)

// syntaxError turns a yaml.v3 parse error into one line, "file:LINE: message".
// yaml.v3 v3.0.1 counts the lines of its parser's errors (not its scanner's) from 0,
// as brain.Load also corrects.
func syntaxError(where string, err error) error {
	msg := strings.ReplaceAll(strings.TrimPrefix(err.Error(), "yaml: "), "\n", " ")
	m := yamlLineRE.FindStringSubmatch(msg)
	if m == nil {
		return fmt.Errorf("%s: %s", where, msg)
	}
	line, _ := strconv.Atoi(m[1])
	for _, p := range []string{"did not find expected", "found duplicate %YAML directive", "found incompatible YAML document", "found duplicate %TAG directive", "found undefined tag handle"} {
		if strings.HasPrefix(m[2], p) {
			line++
			break
		}
	}
	return fmt.Errorf("%s:%d: %s", where, line, m[2])
}
