package invoke

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sios-project/sios/policy"
)

func TestAdmitRateLimits(t *testing.T) {
	h := newHarness(t, "builtin", func(c *Config) { c.PrincipalPerMinute, c.PrincipalBurst = 60, 2 })
	ctx := context.Background()
	for i := range 2 {
		if err := h.p.Chat(ctx, ask("quick", "1+1"), &sink{}); err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
	}
	e := outcome(t, h.p.Chat(ctx, ask("quick", "1+1"), &sink{}), CodeRateLimited)
	if e.RetryAfter <= 0 || e.RetryAfter > time.Second {
		t.Fatalf("retry after %v", e.RetryAfter)
	}
	recs := h.rec.byAction("brain.invoke")
	last := recs[len(recs)-1]
	if last.Decision.Effect != "deny" || last.Decision.Policies[0] != "rate-limit-principal" {
		t.Fatalf("the refusal is recorded with the limit that refused it: %+v", last.Decision)
	}
	// Another principal is not limited by the first one's bucket.
	inv := ask("quick", "1+1")
	inv.Principal = principal("someone-else", policy.Official)
	if err := h.p.Chat(ctx, inv, &sink{}); err != nil {
		t.Fatal(err)
	}
}

func TestAdmitBrainRateLimit(t *testing.T) {
	h := newHarness(t, "builtin", nil)
	ctx := context.Background()
	b, _ := h.p.cfg.Brains.Get("narrow")
	var limited *Error
	for i := range b.RateLimit.Burst + 1 {
		inv := ask("narrow", "one sentence.")
		inv.Principal = principal(fmt.Sprint("p", i), policy.Official)
		if err := h.p.Chat(ctx, inv, &sink{}); err != nil {
			if !errors.As(err, &limited) {
				t.Fatal(err)
			}
		}
	}
	if limited == nil || limited.Code != CodeRateLimited {
		t.Fatalf("brain burst of %d not enforced across principals", b.RateLimit.Burst)
	}
}

func TestAdmissionRecordIsLinked(t *testing.T) {
	h := newHarness(t, "builtin", nil)
	s := &sink{}
	if err := h.p.Chat(context.Background(), ask("calculator", "(2+3)*7"), s); err != nil {
		t.Fatal(err)
	}
	h.p.Wait()
	adm, done := h.rec.byAction("brain.invoke"), h.rec.byAction("brain.complete")
	if len(adm) != 1 || len(done) != 1 {
		t.Fatalf("%d admissions, %d completions", len(adm), len(done))
	}
	if s.receipt == nil || s.receipt.RecordHash == "" {
		t.Fatal("the answer carries the admission's receipt")
	}
	if done[0].Links[0].Rel != "admission" || done[0].Links[0].RecordHash != s.receipt.RecordHash {
		t.Fatalf("completion links %+v, admission receipt %s", done[0].Links, s.receipt.RecordHash)
	}
	if adm[0].Inputs[0].Name != "messages" || adm[0].Classification != "OFFICIAL" {
		t.Fatalf("admission %+v", adm[0])
	}
}

func TestNoRecordNoAnswer(t *testing.T) {
	h := newHarness(t, "builtin", nil)
	h.rec.fail = errors.New("disk gone")
	s := &sink{}
	outcome(t, h.p.Chat(context.Background(), ask("quick", "1+1"), s), CodeAuditFailed)
	if s.result != nil || s.brain != "" {
		t.Fatal("a request whose record could not be written was answered")
	}
}

// No byte of a request reaches a model server or a peer before its admission record is
// durable: with the ledger failing, neither is called.
func TestNothingLeavesWithoutADurableRecord(t *testing.T) {
	h := newHarness(t, "http://model", nil)
	h.rec.fail = errors.New("disk gone")
	for _, stream := range []bool{false, true} {
		inv := ask("legal-contracts", "the prompt")
		inv.Stream = stream
		outcome(t, h.p.Chat(context.Background(), inv, &sink{}), CodeAuditFailed)
	}
	if n := len(h.server.requests()); n != 0 {
		t.Fatalf("the model server received %d requests whose admission record was never written", n)
	}
	h2, ps := remoteHarness(t, 1)
	h2.rec.fail = errors.New("disk gone")
	outcome(t, h2.p.Chat(context.Background(), ask("lab-brain", "the prompt"), &sink{}), CodeAuditFailed)
	if len(ps[0].envelopes) != 0 {
		t.Fatal("a peer received a call whose admission record was never written")
	}
}
