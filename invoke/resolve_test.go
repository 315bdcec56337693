package invoke

import (
	"context"
	"strings"
	"testing"

	"github.com/sios-project/sios/policy"
)

func TestResolve(t *testing.T) {
	h := newHarness(t, "builtin", nil)
	for _, c := range []struct {
		name, model, text, class string
		brain                    string
		code                     Code
	}{
		{"a local brain", "calculator", "2+2", "", "calculator", ""},
		{"auto routes among domain brains", "auto", "which ICD-10 code for this discharge diagnosis?", "", "clinical-coding", ""},
		{"auto never picks a brain the caller may not use", "auto", "intelligence analysis of the threat assessment", "TOP-SECRET", "", ""},
		{"an unknown brain", "no-such-brain", "x", "", "", CodeModelNotFound},
		{"a classification that is not one", "calculator", "x", "CONFIDENTIAL", "", CodeInvalidClassification},
	} {
		t.Run(c.name, func(t *testing.T) {
			inv := ask(c.model, c.text)
			inv.Classification = c.class
			err := h.p.resolve(context.Background(), inv)
			if c.code != "" {
				if err == nil || err.Code != c.code {
					t.Fatalf("got %v, want %s", err, c.code)
				}
				if inv.Decision == nil || inv.Decision.Effect != "deny" {
					t.Fatalf("a refused request must carry a deny decision, got %+v", inv.Decision)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.brain != "" && inv.brain.ID != c.brain {
				t.Fatalf("resolved to %s, want %s", inv.brain.ID, c.brain)
			}
			if c.model == "auto" {
				if inv.detail["requested"] != "auto" || inv.route == "" {
					t.Fatalf("auto must say why: %v", inv.detail)
				}
				if c.class != "" && h.p.decideInvoke(inv.Principal, inv.brain, policy.TopSecret).Allow {
					t.Fatalf("auto picked %s, which the caller may not use with %s data", inv.brain.ID, c.class)
				}
			}
		})
	}
}

func TestRefusalsAreRecorded(t *testing.T) {
	h := newHarness(t, "builtin", nil)
	inv := ask("no-such-brain", "x")
	e := outcome(t, h.p.Chat(context.Background(), inv, &sink{}), CodeModelNotFound)
	if e.Receipt == nil {
		t.Fatal("a refusal carries the receipt of its record")
	}
	recs := h.rec.byAction("brain.invoke")
	if len(recs) != 1 || recs[0].Decision.Effect != "deny" || recs[0].Resource != "brain/no-such-brain" {
		t.Fatalf("records: %+v", recs)
	}
	if !strings.Contains(string(recs[0].Detail), "no such brain") {
		t.Fatalf("the record says why: %s", recs[0].Detail)
	}
	inv = ask("calculator", "2+2")
	inv.Classification = "CONFIDENTIAL"
	outcome(t, h.p.Chat(context.Background(), inv, &sink{}), CodeInvalidClassification)
	if recs := h.rec.byAction("brain.invoke"); len(recs) != 2 || recs[1].Classification != "" || recs[1].Decision.Policies[0] != "input-validation" {
		t.Fatalf("an invalid classification header is recorded as refused: %+v", recs[len(recs)-1])
	}
}
