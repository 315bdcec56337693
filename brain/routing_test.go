package brain_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/sios-project/sios/brain"
)

// routingCase is one line of testdata/routing.jsonl: a question a user would send to
// "auto", and the brain that should answer it (DefaultRoute for questions no domain
// brain covers).
type routingCase struct {
	Split string `json:"split"` // "test" (held out: never tuned on) or "dev"
	Brain string `json:"brain"`
	Hard  bool   `json:"hard"` // avoids the brain's obvious words
	Q     string `json:"q"`
}

const routingSet = "testdata/routing.jsonl"

// Floors for lexical routing on the held-out test split: a few points below what the
// router measured when they were set (docs/brains.md, section 4), so that a change
// that makes routing worse fails here.
const (
	minLexicalAccuracy     = 0.78
	minLexicalHardAccuracy = 0.65
)

func readRoutingSet(t testing.TB) []routingCase {
	t.Helper()
	data, err := os.ReadFile(routingSet)
	if err != nil {
		t.Fatal(err)
	}
	var out []routingCase
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		var c routingCase
		if err := dec.Decode(&c); err != nil {
			t.Fatalf("%s:%d: %v", routingSet, line, err)
		}
		if c.Split != "test" && c.Split != "dev" || c.Brain == "" || strings.TrimSpace(c.Q) == "" {
			t.Fatalf("%s:%d: needs split (test or dev), brain and q", routingSet, line)
		}
		key := strings.ToLower(c.Q)
		if prev, dup := seen[key]; dup {
			t.Fatalf("%s:%d: question repeats line %d", routingSet, line, prev)
		}
		seen[key] = line
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// routeFunc routes one prompt; the accuracy harness is shared by both modes.
type routeFunc func(prompt string) (id, reason string)

// routingScore is accuracy over one split, and what went wrong.
type routingScore struct {
	n, ok, hard, hardOK int
	failures            []string
	confusion           map[string]map[string]int // want → got → count, failures only
}

func (s routingScore) acc() float64     { return float64(s.ok) / float64(s.n) }
func (s routingScore) hardAcc() float64 { return float64(s.hardOK) / float64(s.hard) }

func (s routingScore) String() string {
	return fmt.Sprintf("%d/%d = %.1f%% (hard %d/%d = %.1f%%)", s.ok, s.n, 100*s.acc(), s.hardOK, s.hard, 100*s.hardAcc())
}

func scoreRouting(cases []routingCase, split string, route routeFunc) routingScore {
	s := routingScore{confusion: map[string]map[string]int{}}
	for _, c := range cases {
		if c.Split != split {
			continue
		}
		got, reason := route(c.Q)
		s.n++
		if c.Hard {
			s.hard++
		}
		if got == c.Brain {
			s.ok++
			if c.Hard {
				s.hardOK++
			}
			continue
		}
		if s.confusion[c.Brain] == nil {
			s.confusion[c.Brain] = map[string]int{}
		}
		s.confusion[c.Brain][got]++
		s.failures = append(s.failures, fmt.Sprintf("want %s, got %s: %q\n\t%s", c.Brain, got, c.Q, reason))
	}
	return s
}

// logConfusion prints, per expected brain, where its misrouted questions went.
func logConfusion(t *testing.T, name string, s routingScore) {
	t.Logf("%s: %s", name, s)
	wants := make([]string, 0, len(s.confusion))
	for w := range s.confusion {
		wants = append(wants, w)
	}
	sort.Strings(wants)
	for _, w := range wants {
		var gots []string
		for g, n := range s.confusion[w] {
			gots = append(gots, fmt.Sprintf("%s×%d", g, n))
		}
		sort.Strings(gots)
		t.Logf("  %-22s → %s", w, strings.Join(gots, ", "))
	}
	if testing.Verbose() {
		for _, f := range s.failures {
			t.Logf("  %s", f)
		}
	}
}

// TestRoutingSet checks the published test set itself: every label is a domain brain
// or the default, every domain brain has questions in both splits.
func TestRoutingSet(t *testing.T) {
	c := loadEmbedded(t)
	cases := readRoutingSet(t)
	examples := map[string]string{} // lowercased example → brain
	for _, b := range c.All() {
		for _, e := range b.Examples {
			examples[strings.ToLower(e)] = b.ID
		}
	}
	per := map[string]map[string]int{}
	for _, rc := range cases {
		if id, ok := examples[strings.ToLower(rc.Q)]; ok {
			t.Errorf("%q is one of %s's examples: the set must be held out from what the router indexes", rc.Q, id)
		}
		b, ok := c.Get(rc.Brain)
		if !ok || (b.Kind != brain.KindDomain && rc.Brain != brain.DefaultRoute) {
			t.Errorf("label %q is not a domain brain or %s: %q", rc.Brain, brain.DefaultRoute, rc.Q)
		}
		if per[rc.Split] == nil {
			per[rc.Split] = map[string]int{}
		}
		per[rc.Split][rc.Brain]++
	}
	tests := 0
	for _, b := range c.All() {
		if b.Kind != brain.KindDomain {
			continue
		}
		if per["test"][b.ID] < 6 || per["dev"][b.ID] < 3 {
			t.Errorf("%s: %d test and %d dev questions; want at least 6 and 3", b.ID, per["test"][b.ID], per["dev"][b.ID])
		}
		tests += per["test"][b.ID]
	}
	if tests < 200 {
		t.Errorf("%d test questions for domain brains, want at least 200", tests)
	}
}

// TestRoutingAccuracyLexical measures Catalogue.Route on the published set and
// fails if accuracy on the held-out split drops below the floors. Run with -v for
// every misrouted question and its reason.
func TestRoutingAccuracyLexical(t *testing.T) {
	c := loadEmbedded(t)
	cases := readRoutingSet(t)
	route := func(p string) (string, string) {
		b, reason := c.Route(p)
		return b.ID, reason
	}
	test := scoreRouting(cases, "test", route)
	dev := scoreRouting(cases, "dev", route)
	logConfusion(t, "lexical, test split", test)
	logConfusion(t, "lexical, dev split", dev)
	if test.acc() < minLexicalAccuracy || test.hardAcc() < minLexicalHardAccuracy {
		t.Errorf("lexical routing on the test split: %s; the floors are %.0f%% overall and %.0f%% on hard questions",
			test, 100*minLexicalAccuracy, 100*minLexicalHardAccuracy)
	}
}
