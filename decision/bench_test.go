package decision

import (
	"testing"
	"time"
)

// BenchmarkCount is the origin's work once five members have answered: parse and
// verify five ballots (ML-DSA-65 and Ed25519 each) and apply the rule.
func BenchmarkCount(b *testing.B) {
	f := newFixture(b)
	req := f.request(b, f.draft(Rule{Name: RuleVeto, Vetoers: []string{"pharmacology"}}))
	ballots := f.vote(b, req, "discharge", "veto:discharge", "discharge", "admit", "admit")
	now := t0.Add(2 * time.Minute)
	b.ReportAllocs()
	for b.Loop() {
		o, err := Count(req, ballots, f.dir, now)
		if err != nil || len(o.Counted) != 5 || o.Status != StatusDecided {
			b.Fatalf("Count: %v", err)
		}
	}
}

// BenchmarkSealOutcome is the origin's signature on the outcome of five ballots.
func BenchmarkSealOutcome(b *testing.B) {
	f := newFixture(b)
	req := f.request(b, f.draft(Rule{Name: RulePlurality}))
	o, err := Count(req, f.vote(b, req, "discharge", "admit", "discharge", "admit", "refer"), f.dir, t0.Add(2*time.Minute))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := SealOutcome(f.keys[origin], o); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyOutcome is a verifier's check of a five-ballot outcome from its bytes.
func BenchmarkVerifyOutcome(b *testing.B) {
	f := newFixture(b)
	req := f.request(b, f.draft(Rule{Name: RulePlurality}))
	o, err := Count(req, f.vote(b, req, "discharge", "admit", "discharge", "admit", "refer"), f.dir, t0.Add(2*time.Minute))
	if err != nil {
		b.Fatal(err)
	}
	out, err := SealOutcome(f.keys[origin], o)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := VerifyOutcome(out, f.dir); err != nil {
			b.Fatal(err)
		}
	}
}
