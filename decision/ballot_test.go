package decision

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestBallotRoundTrip(t *testing.T) {
	f := newFixture(t)
	req := f.request(t, f.draft(Rule{Name: RulePlurality}))
	for _, choice := range []string{"discharge", Abstain} {
		b := f.ballot(t, req, peerA, "clinical-coding", choice)
		x, err := ParseBallot(b)
		if err != nil {
			t.Fatal(err)
		}
		again, err := encode(x)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("encoding a parsed ballot does not give its bytes back: %v", err)
		}
		if err := Verify(x, req, f.dir); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBallotValidation(t *testing.T) {
	f := newFixture(t)
	req := f.request(t, f.draft(Rule{Name: RulePlurality}))
	for _, c := range []struct {
		name string
		edit func(*Ballot)
		want string
	}{
		{"decision", func(b *Ballot) { b.Decision = "x" }, "ballot decision"},
		{"node", func(b *Ballot) { b.Node = "root_abc" }, "ballot node"},
		{"brain", func(b *Ballot) { b.Brain = "Clinical" }, "ballot brain"},
		{"model empty", func(b *Ballot) { b.Model = "" }, "MaxModelLen"},
		{"model space", func(b *Ballot) { b.Model = "llama 3" }, "MaxModelLen"},
		{"choice empty", func(b *Ballot) { b.Choice = "" }, "ballot choice"},
		{"confidence", func(b *Ballot) { b.Confidence = 1001 }, "confidence_permille"},
		{"abstain without code", func(b *Ballot) { b.Choice, b.Confidence = Abstain, 0 }, "ballot abstention"},
		{"abstain with confidence", func(b *Ballot) { b.Choice, b.Abstention = Abstain, AbstainChosen }, "must be 0"},
		{"code without abstain", func(b *Ballot) { b.Abstention = AbstainInvalid }, "must be left out"},
		{"rationale digest", func(b *Ballot) { b.RationaleDigest = "" }, "rationale_digest"},
		{"time", func(b *Ballot) { b.Time = "yesterday" }, "ballot time"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := Ballot{Decision: req.Hash(), Node: f.ids[peerA], Brain: "clinical-coding", Model: "m", Choice: "admit",
				Confidence: 500, RationaleDigest: RationaleDigest(""), Time: req.Issued}
			c.edit(&b)
			_, err := SealBallot(f.keys[peerA], b)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("SealBallot = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// TestVerifyReasons checks each way Verify refuses a ballot, with its reason.
func TestVerifyReasons(t *testing.T) {
	f := newFixture(t)
	req := f.request(t, f.draft(Rule{Name: RuleVeto, Vetoers: []string{"pharmacology"}}))
	other := f.draft(Rule{Name: RulePlurality})
	other.Nonce = strings.Repeat("cd", 16)
	earlier := f.request(t, other)
	for _, c := range []struct {
		name  string
		bytes func() []byte
		want  string // "" when the ballot verifies
	}{
		{"local member", func() []byte { return f.ballot(t, req, origin, "pharmacology", "admit") }, ""},
		{"named peer", func() []byte { return f.ballot(t, req, peerA, "clinical-coding", "refer") }, ""},
		{"any peer", func() []byte { return f.ballot(t, req, peerB, "evaluator", "refer") }, ""},
		{"any peer, from A", func() []byte { return f.ballot(t, req, peerA, "evaluator", "refer") }, ""},
		{"vetoer vetoes", func() []byte { return f.ballot(t, req, origin, "pharmacology", "veto:discharge") }, ""},
		{"abstention", func() []byte { return f.ballot(t, req, peerB, "evaluator", Abstain) }, ""},
		{"signed by another node", func() []byte {
			b := f.ballot(t, req, peerA, "clinical-coding", "refer")
			x, _ := ParseBallot(b)
			x.Sig = nil
			x.Node = f.ids[peerB] // claims B, signed by A
			out, _ := SealBallot(f.keys[peerA], *x)
			return out
		}, ReasonBadSignature},
		{"unknown node", func() []byte {
			return f.ballot(t, req, peerA, "clinical-coding", "refer", func(b *Ballot) { b.Node = "node_" + strings.Repeat("a", 26) })
		}, ReasonBadSignature},
		{"changed after signing", func() []byte {
			return bytes.Replace(f.ballot(t, req, peerA, "clinical-coding", "admit"), []byte(`"admit"`), []byte(`"refer"`), 1)
		}, ReasonBadSignature},
		{"another decision", func() []byte {
			return f.ballot(t, req, peerA, "clinical-coding", "admit", func(b *Ballot) { b.Decision = earlier.Hash() })
		}, ReasonWrongDecision},
		{"origin's evaluator is not any peer", func() []byte { return f.ballot(t, req, origin, "evaluator", "admit") }, ReasonNotAMember},
		{"named peer's brain on another peer", func() []byte { return f.ballot(t, req, peerB, "clinical-coding", "admit") }, ReasonNotAMember},
		{"local brain on a peer", func() []byte { return f.ballot(t, req, peerA, "pharmacology", "admit") }, ReasonNotAMember},
		{"not an option", func() []byte { return f.ballot(t, req, peerA, "clinical-coding", "discharge-home") }, ReasonInvalidChoice},
		{"veto by a non-vetoer", func() []byte { return f.ballot(t, req, peerA, "clinical-coding", "veto:admit") }, ReasonInvalidChoice},
		{"veto of no option", func() []byte { return f.ballot(t, req, origin, "pharmacology", "veto:home") }, ReasonInvalidChoice},
	} {
		t.Run(c.name, func(t *testing.T) {
			x, err := ParseBallot(c.bytes())
			if err != nil {
				t.Fatal(err)
			}
			err = Verify(x, req, f.dir)
			if c.want == "" {
				if err != nil {
					t.Fatalf("Verify = %v, want nil", err)
				}
				return
			}
			var r *Rejection
			if !errors.As(err, &r) || r.Reason != c.want {
				t.Fatalf("Verify = %v, want a rejection for %s", err, c.want)
			}
		})
	}
}

func TestPermilleString(t *testing.T) {
	for p, want := range map[Permille]string{0: "0.000", 5: "0.005", 850: "0.850", 1000: "1.000"} {
		if got := p.String(); got != want {
			t.Errorf("Permille(%d) = %q, want %q", p, got, want)
		}
	}
}
