package decision

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// The parsers of outside bytes: whatever they accept must encode back to exactly the
// bytes given (so every byte is covered by its meaning), and nothing may panic.

// vectorSeeds are the published vectors' messages, the fuzzers' seed corpus.
func vectorSeeds(f *testing.F) *Vectors {
	raw, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	if err != nil {
		f.Fatal(err)
	}
	var v Vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		f.Fatal(err)
	}
	return &v
}

func FuzzParseRequest(f *testing.F) {
	v := vectorSeeds(f)
	f.Add([]byte(v.Request.Canonical))
	f.Add([]byte(`{"v":"decision-request/1"}`))
	f.Add([]byte(`{"nonce":"","options":[],"v":"decision-request/1","v":"x"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRequest(b)
		if err != nil {
			return
		}
		again, err := encode(r)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted request does not encode back to its bytes: %v\n%q\n%q", err, b, again)
		}
		if r.Hash() != DecisionHash(b) {
			t.Fatal("hash of an accepted request is not its decision hash")
		}
	})
}

func FuzzParseBallot(f *testing.F) {
	v := vectorSeeds(f)
	for _, b := range v.Ballots {
		f.Add([]byte(b.Canonical))
	}
	f.Add([]byte(`{"v":"ballot/1"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := ParseBallot(b)
		if err != nil {
			return
		}
		again, err := encode(x)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted ballot does not encode back to its bytes: %v\n%q\n%q", err, b, again)
		}
	})
}

func FuzzParseOutcome(f *testing.F) {
	v := vectorSeeds(f)
	f.Add([]byte(v.Outcome.Canonical))
	f.Add([]byte(`{"v":"decision-outcome/1","outcome":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		o, err := ParseOutcome(b)
		if err != nil {
			return
		}
		again, err := encode(o)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted outcome does not encode back to its bytes: %v\n%q\n%q", err, b, again)
		}
	})
}

func FuzzParseAnswer(f *testing.F) {
	v := vectorSeeds(f)
	for _, b := range v.Ballots {
		f.Add(b.Answer)
	}
	f.Add(`{"choice":"abstain","confidence":0,"rationale":""}`)
	f.Add("```\n{\"choice\":\"refer\",\"confidence\":1e-3,\"rationale\":\"\\u00e9\"}\n```")
	f.Add(`{"choice":"admit","confidence":0.5,"rationale":"r","choice":"refer"}`)
	choices := []string{"discharge", "admit", "refer", "veto:discharge", Abstain}
	f.Fuzz(func(t *testing.T, answer string) {
		a := ParseAnswer(answer, choices)
		checkAnswer(t, a, choices)
		if a.Abstention != "" && a.Abstention != AbstainChosen && a.Rationale == "" {
			t.Fatalf("abstention %q without a reason", a.Abstention)
		}
	})
}

func FuzzParsePanelFile(f *testing.F) {
	f.Add([]byte("id: a\nmembers: [tax, evaluator@*]\nweights: {tax: 2}\nrule: {name: veto, vetoers: [tax]}\nmin_nodes: 1\n---\nid: b\nmembers: [x, y]\n"))
	f.Add([]byte("id: &a a\nmembers: *a\n"))
	f.Add([]byte("- [\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		defs, err := ParsePanelFile("f.yaml", b, nil)
		if err != nil {
			return
		}
		for _, d := range defs {
			if err := d.Panel.Validate(); err != nil {
				t.Fatalf("accepted panel does not validate: %v", err)
			}
			if err := d.Rule.Validate(&d.Panel); err != nil {
				t.Fatalf("accepted rule does not validate: %v", err)
			}
		}
	})
}
