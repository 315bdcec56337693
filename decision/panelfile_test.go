package decision

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/sios-project/sios/brain"
)

const peerID = "node_aaaaaaaaaaaaaaaaaaaaaaaaaa"

func catalogue(t testing.TB) *brain.Catalogue {
	t.Helper()
	c, err := brain.Load("")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func writePanels(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "panels"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, "panels", name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadPanels(t *testing.T) {
	dir := writePanels(t, map[string]string{
		"clinical.yaml": `id: discharge-review
description: Adult ward discharge decisions
members: [clinical-triage, pharmacology, radiology-reporting, clinical-coding@` + peerID + `, evaluator@*]
weights: {clinical-triage: 3}
rule:
  name: veto
  vetoers: [pharmacology]
min_nodes: 2
min_institutions: 1
---
id: coding-check
members:
  - clinical-coding
  - evaluator
`,
		"finance.yml":  "id: credit\nmembers: [credit-underwriting, financial-risk@*]\nrule: {name: quorum, quorum: 2}\n",
		".hidden.yaml": "not: a panel",
		"notes.txt":    "ignored",
	})
	ps, err := LoadPanels(dir, catalogue(t))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ps.IDs(), []string{"coding-check", "credit", "discharge-review"}) {
		t.Fatalf("ids %v", ps.IDs())
	}
	d, ok := ps.Get("discharge-review")
	if !ok || d.Rule.Name != RuleVeto || !slices.Equal(d.Rule.Vetoers, []string{"pharmacology"}) || d.Panel.Weights["clinical-triage"] != 3 ||
		len(d.Panel.Members) != 5 || d.Panel.MinNodes != 2 || d.Panel.MinInstitutions != 1 || d.Description == "" ||
		!strings.HasSuffix(d.Source, "clinical.yaml:1") {
		t.Fatalf("discharge-review: %+v", d)
	}
	d.Panel.Members[0], d.Rule.Vetoers[0], d.Panel.Weights["clinical-triage"] = "x", "x", 9
	if again, _ := ps.Get("discharge-review"); again.Panel.Members[0] != "clinical-triage" || again.Rule.Vetoers[0] != "pharmacology" || again.Panel.Weights["clinical-triage"] != 3 {
		t.Fatal("Get hands out the loaded panel, not a copy")
	}
	if d, _ := ps.Get("coding-check"); d.Rule.Name != RulePlurality || !strings.HasSuffix(d.Source, "clinical.yaml:11") {
		t.Fatalf("coding-check: %+v", d)
	}
	if d, _ := ps.Get("credit"); d.Rule.Quorum != 2 {
		t.Fatalf("credit: %+v", d)
	}
	if ps, err := LoadPanels(t.TempDir(), catalogue(t)); err != nil || len(ps.IDs()) != 0 {
		t.Fatalf("a data directory without panels/: %v, %v", ps, err)
	}
}

func TestLoadPanelsErrors(t *testing.T) {
	for _, c := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"unknown field", map[string]string{"a.yaml": "id: a\nmembers: [tax, evaluator]\nquorum: 2\n"}, `a.yaml:3: panel "a": quorum: unknown field "quorum"`},
		{"unknown rule field", map[string]string{"a.yaml": "id: a\nmembers: [tax, evaluator]\nrule:\n  name: quorum\n  k: 2\n"}, `a.yaml:5: panel "a": rule.k: unknown field "k" in rule`},
		{"field twice", map[string]string{"a.yaml": "id: a\nmembers: [tax, evaluator]\nid: b\n"}, "a.yaml:3: panel \"a\": id: is given twice"},
		{"weight twice", map[string]string{"a.yaml": "id: a\nmembers: [tax, evaluator]\nweights:\n  tax: 2\n  tax: 3\n"}, "a.yaml:5: panel \"a\": weights.tax: is given twice"},
		{"missing id", map[string]string{"a.yaml": "members: [tax, evaluator]\n"}, "a.yaml:1: id: required"},
		{"bad id", map[string]string{"a.yaml": "id: A\nmembers: [tax, evaluator]\n"}, "a.yaml:1: id:"},
		{"members not a list", map[string]string{"a.yaml": "id: a\nmembers: tax\n"}, "a.yaml:2: panel \"a\": members: want a list"},
		{"member number", map[string]string{"a.yaml": "id: a\nmembers:\n  - tax\n  - 12\n"}, "a.yaml:4: panel \"a\": members[1]: want a string"},
		{"bad member", map[string]string{"a.yaml": "id: a\nmembers:\n  - tax\n  - evaluator@node_X\n"}, "a.yaml:4: panel \"a\": members[1]:"},
		{"repeated member", map[string]string{"a.yaml": "id: a\nmembers: [tax, tax]\n"}, "a.yaml:2: panel \"a\": members[1]: \"tax\" repeats member 0"},
		{"one member", map[string]string{"a.yaml": "id: a\nmembers: [tax]\n"}, "MaxMembers"},
		{"weight of a stranger", map[string]string{"a.yaml": "id: a\nmembers: [tax, evaluator]\nweights:\n  tax: 2\n  audit-assurance: 1\n"}, "a.yaml:5: panel \"a\": weights.audit-assurance: is not a member"},
		{"weight not a number", map[string]string{"a.yaml": "id: a\nmembers: [tax, evaluator]\nweights: {tax: heavy}\n"}, "a.yaml:3: panel \"a\": weights.tax: want a whole number"},
		{"weight too big", map[string]string{"a.yaml": "id: a\nmembers: [tax, evaluator]\nweights: {tax: 1001}\n"}, "MaxWeight"},
		{"rule unknown", map[string]string{"a.yaml": "id: a\nmembers: [tax, evaluator]\nrule: majority\n"}, "a.yaml:3: panel \"a\": rule.name: \"majority\" is not one of"},
		{"quorum too big", map[string]string{"a.yaml": "id: a\nmembers: [tax, evaluator]\nrule: {name: quorum, quorum: 3}\n"}, "a.yaml:3: panel \"a\": rule.quorum: 3 is out of range"},
		{"vetoer not a member", map[string]string{"a.yaml": "id: a\nmembers: [tax, evaluator]\nrule:\n  name: veto\n  vetoers:\n    - tax\n    - legal-contracts\n"}, "a.yaml:7: panel \"a\": rule.vetoers[1]:"},
		{"min nodes", map[string]string{"a.yaml": "id: a\nmembers: [tax, evaluator]\nmin_nodes: 3\n"}, "a.yaml:3: panel \"a\": min_nodes: 3 is out of range"},
		{"not an arbiter", map[string]string{"a.yaml": "id: a\nmembers:\n  - tax\n  - router\n"}, "a.yaml:4: panel \"a\": members[1]: brain \"router\" may not sit on a panel"},
		{"no such brain", map[string]string{"a.yaml": "id: a\nmembers: [tax, astrology]\n"}, "a.yaml:2: panel \"a\": members[1]: \"astrology\" is not a brain of this node"},
		{"anchor", map[string]string{"a.yaml": "id: a\nmembers: &m [tax, evaluator]\n"}, "a.yaml:2: panel \"a\": anchors and aliases are not supported"},
		{"alias", map[string]string{"a.yaml": "id: &i a\nmembers: [tax, evaluator]\n"}, "a.yaml:1: anchors and aliases"},
		{"syntax", map[string]string{"a.yaml": "id: a\nmembers: [tax, evaluator\nrule: plurality\n"}, "a.yaml:"},
		{"not a mapping", map[string]string{"a.yaml": "- id: a\n"}, "a.yaml:1: document 1 is not a panel"},
		{"empty file", map[string]string{"a.yaml": "---\n"}, "a.yaml: no panel in file"},
		{"twice in a file", map[string]string{"a.yaml": "id: a\nmembers: [tax, evaluator]\n---\nid: a\nmembers: [tax, evaluator]\n"}, "a.yaml:4: panel \"a\" is defined again (first at"},
		{"twice in two files", map[string]string{"a.yaml": "id: a\nmembers: [tax, evaluator]\n", "b.yaml": "id: a\nmembers: [tax, evaluator]\n"}, "b.yaml:1: panel \"a\" is already defined at"},
		{"too large", map[string]string{"a.yaml": "id: a\nmembers: [tax, evaluator]\n#" + strings.Repeat("x", MaxPanelFileSize)}, "MaxPanelFileSize"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadPanels(writePanels(t, c.files), catalogue(t))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("LoadPanels = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// TestPanelSyntaxErrorLine pins the line yaml.v3's parser errors are reported at.
func TestPanelSyntaxErrorLine(t *testing.T) {
	for _, c := range []struct{ text, want string }{
		{"id: a\nmembers: [tax, evaluator\nrule: plurality\n", "p.yaml:2: did not find expected ',' or ']'"}, // the unclosed list
		{"id: a\nmembers: [tax]\n- evaluator\n", "p.yaml:3: did not find expected key"},
		{"id: a\n  members: [tax]\n", "p.yaml:2:"},
		{"id: a\nmembers:\n\t- tax\n", "p.yaml:3:"},
	} {
		_, err := ParsePanelFile("p.yaml", []byte(c.text), nil)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%q: %v, want an error at %s", c.text, err, c.want)
		}
	}
}
