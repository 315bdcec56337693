package decision

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const (
	examplesBegin = "<!-- BEGIN EXAMPLES: checked by go test ./decision -run TestDocsExamples -->\n"
	examplesEnd   = "<!-- END EXAMPLES -->\n"
)

func readDoc(t *testing.T) string {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "docs", "decisions.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(doc)
}

// docWeights are the weights docs/decisions.md gives the examples' panel under the
// weighted rule, in panel order.
var docWeights = []int{3, 1, 1, 2, 2}

// TestDocsExamples runs every worked example of docs/decisions.md through Count with
// ballots signed by the fixture's nodes, and requires the tally, status and outcome
// the document states.
func TestDocsExamples(t *testing.T) {
	doc := readDoc(t)
	i, j := strings.Index(doc, examplesBegin), strings.Index(doc, examplesEnd)
	if i < 0 || j < i {
		t.Fatal("docs/decisions.md: no examples table markers")
	}
	rows := strings.Split(strings.TrimSpace(doc[i+len(examplesBegin):j]), "\n")[2:]
	if len(rows) < 15 {
		t.Fatalf("docs/decisions.md: only %d examples", len(rows))
	}
	f := newFixture(t)
	for _, row := range rows {
		cells := strings.Split(strings.Trim(row, "| "), " | ")
		if len(cells) != 10 {
			t.Fatalf("example row %q has %d cells, want 10", row, len(cells))
		}
		t.Run(cells[0], func(t *testing.T) {
			d := f.draft(Rule{Name: RulePlurality})
			rule, err := docRule(cells[1], &d.Panel)
			if err != nil {
				t.Fatal(err)
			}
			d.Rule, d.Panel = rule, d.Panel.ForRule(rule)
			if rule.Name == RuleWeighted {
				for k, m := range d.Panel.Members {
					d.Panel.Weights[m] = docWeights[k]
				}
			}
			req := f.request(t, d)
			choices := cells[2:7]
			for k, c := range choices {
				if c == "—" {
					choices[k] = ""
				}
			}
			o := mustCount(t, req, f.vote(t, req, choices...), f.dir)
			var tally []string
			for _, opt := range req.Options {
				tally = append(tally, fmt.Sprintf("%s %d", opt, o.Tally[opt]))
			}
			gotTally := strings.Join(tally, ", ")
			if len(o.Vetoed) > 0 {
				gotTally += "; vetoed " + strings.Join(o.Vetoed, ", ")
			}
			gotStatus := o.Status
			if len(o.Unmet) > 0 {
				gotStatus += " (" + strings.Join(o.Unmet, ", ") + ")"
			}
			if gotTally != cells[7] || gotStatus != cells[8] || result(o) != cells[9] {
				t.Fatalf("Count gives | %s | %s | %s |, the document says | %s | %s | %s |", gotTally, gotStatus, result(o), cells[7], cells[8], cells[9])
			}
		})
	}
}

var docRuleRE = regexp.MustCompile(`^(plurality|weighted|unanimity|quorum (\d+)|veto ([^,]+(?:, [^,]+)*?))((?:, min_(?:nodes|institutions) \d+)*)$`)

// docRule reads an example's rule cell: "quorum 3", "veto a, b", "plurality, min_nodes 3".
func docRule(cell string, p *Panel) (Rule, error) {
	m := docRuleRE.FindStringSubmatch(cell)
	if m == nil {
		return Rule{}, fmt.Errorf("rule cell %q is not understood", cell)
	}
	var r Rule
	switch {
	case m[2] != "":
		r.Name = RuleQuorum
		r.Quorum, _ = strconv.Atoi(m[2])
	case m[3] != "":
		r.Name = RuleVeto
		r.Vetoers = strings.Split(m[3], ", ")
	default:
		r.Name = m[1]
	}
	for _, c := range strings.Split(strings.TrimPrefix(m[4], ", "), ", ") {
		name, n, ok := strings.Cut(c, " ")
		if !ok {
			continue
		}
		v, _ := strconv.Atoi(n)
		switch name {
		case "min_nodes":
			p.MinNodes = v
		case "min_institutions":
			p.MinInstitutions = v
		}
	}
	return r, nil
}

// TestDocsNames requires that docs/decisions.md names every published value and limit.
func TestDocsNames(t *testing.T) {
	doc := readDoc(t)
	names := []string{RequestVersion, BallotVersion, OutcomeVersion, RequestDomain, BallotDomain, OutcomeDomain, DecisionHashDomain,
		UnmetMinNodes, UnmetMinInstitutions, Abstain, VetoPrefix}
	names = append(append(append(append(names, Rules...), statuses...), reasons...), abstentions...)
	for _, n := range names {
		if !strings.Contains(doc, "`"+n) {
			t.Errorf("docs/decisions.md does not name `%s`", n)
		}
	}
	for name, v := range map[string]int{
		"MaxRequestSize": MaxRequestSize, "MaxBallotSize": MaxBallotSize, "MaxOutcomeSize": MaxOutcomeSize, "MaxMembers": MaxMembers,
		"MaxBallots": MaxBallots, "MaxOptions": MaxOptions, "MaxOptionLen": MaxOptionLen, "MaxWeight": MaxWeight, "MaxIDLen": MaxIDLen,
		"MaxModelLen": MaxModelLen, "MaxDetailLen": MaxDetailLen, "MaxQuestionLen": MaxQuestionLen, "MaxAnswerLen": MaxAnswerLen,
		"MaxRationaleLen": MaxRationaleLen, "MaxDescriptionLen": MaxDescriptionLen, "MaxPanelFileSize": MaxPanelFileSize, "MaxPanels": MaxPanels,
	} {
		row := regexp.MustCompile("\\| `" + name + "` \\| ([0-9,]+)")
		m := row.FindStringSubmatch(doc)
		if m == nil {
			t.Errorf("docs/decisions.md: no limits row for %s", name)
			continue
		}
		if got, _ := strconv.Atoi(strings.ReplaceAll(m[1], ",", "")); got != v {
			t.Errorf("docs/decisions.md says %s is %s, the code %d", name, m[1], v)
		}
	}
	if !strings.Contains(doc, fmt.Sprintf("| `MaxDecisionLifetime` | %d min |", int(MaxDecisionLifetime.Minutes()))) {
		t.Error("docs/decisions.md: MaxDecisionLifetime row does not match the code")
	}
}
