package decision

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/oar"
)

func TestOutcomeRoundTrip(t *testing.T) {
	f := newFixture(t)
	req := f.request(t, f.draft(Rule{Name: RuleVeto, Vetoers: []string{"pharmacology"}}))
	o := mustCount(t, req, f.vote(t, req, "discharge", "veto:discharge", "admit", "", "admit"), f.dir)
	b, err := SealOutcome(f.keys[origin], o)
	if err != nil {
		t.Fatal(err)
	}
	p, err := ParseOutcome(b)
	if err != nil {
		t.Fatal(err)
	}
	again, err := encode(p)
	if err != nil || !bytes.Equal(again, b) {
		t.Fatalf("encoding a parsed outcome does not give its bytes back: %v", err)
	}
	v, err := VerifyOutcome(b, f.dir)
	if err != nil {
		t.Fatal(err)
	}
	if result(v) != "admit" || v.Status != StatusDecided || !slices.Equal(v.Vetoed, []string{"discharge"}) ||
		!slices.Equal(v.Absent, []string{"clinical-coding@" + f.ids[peerA]}) || len(v.Counted) != 4 || v.Counted[0].Input != -1 {
		t.Fatalf("verified outcome: %s", b)
	}
	if v.ParsedRequest().Hash() != req.Hash() {
		t.Fatal("ParsedRequest is not the request counted")
	}
}

// TestVerifyOutcomeCatches changes an outcome the ways a careless or dishonest origin
// might, re-signing it where the origin would, and expects VerifyOutcome to refuse each.
func TestVerifyOutcomeCatches(t *testing.T) {
	f := newFixture(t)
	req := f.request(t, f.draft(Rule{Name: RuleQuorum, Quorum: 3}))
	good := f.vote(t, req, "admit", "admit", "discharge", "admit", Abstain)
	other := f.draft(Rule{Name: RuleQuorum, Quorum: 3})
	other.Nonce = strings.Repeat("cd", 16)
	earlier := f.request(t, other)

	for _, c := range []struct {
		name   string
		edit   func(o *Outcome)
		resign bool
		want   string
	}{
		{"tally", func(o *Outcome) { o.Tally["discharge"] = 3 }, true, "tally is"},
		{"status", func(o *Outcome) { o.Status, o.Result = StatusNoQuorum, nil }, true, "status is"},
		{"result", func(o *Outcome) { s := "discharge"; o.Result = &s }, true, "outcome is"},
		{"abstentions", func(o *Outcome) { o.Abstentions = 0 }, true, "abstentions is"},
		{"absent", func(o *Outcome) { o.Absent = []string{"pharmacology"} }, true, "absent is"},
		{"a ballot dropped", func(o *Outcome) { o.Ballots = o.Ballots[1:] }, true, "but the counted ballots give"},
		{"ballots out of order", func(o *Outcome) { o.Ballots[0], o.Ballots[1] = o.Ballots[1], o.Ballots[0] }, true, "not in order"},
		{"a ballot for another decision", func(o *Outcome) {
			o.Ballots[0] = f.ballot(t, earlier, origin, "clinical-triage", "admit")
		}, true, "wrong_decision"},
		{"a late ballot", func(o *Outcome) {
			o.Ballots[0] = f.ballot(t, req, origin, "clinical-triage", "admit", func(b *Ballot) { b.Time = oar.FormatTime(t0.Add(2 * time.Minute)) })
		}, true, "late"},
		{"not re-signed", func(o *Outcome) { o.Tally["discharge"] = 3 }, false, "signature does not verify"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := mustCount(t, req, good, f.dir)
			b, err := SealOutcome(f.keys[origin], o)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := VerifyOutcome(b, f.dir); err != nil {
				t.Fatalf("the unchanged outcome does not verify: %v", err)
			}
			sig := o.Sig
			c.edit(o)
			if c.resign {
				b, err = SealOutcome(f.keys[origin], o)
				if err != nil {
					t.Fatal(err)
				}
			} else {
				o.Sig = sig
				b, err = encode(o)
				if err != nil {
					t.Fatal(err)
				}
			}
			_, err = VerifyOutcome(b, f.dir)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("VerifyOutcome = %v, want an error containing %q", err, c.want)
			}
		})
	}
	t.Run("signed by a peer", func(t *testing.T) {
		b, err := SealOutcome(f.keys[peerA], mustCount(t, req, good, f.dir))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := VerifyOutcome(b, f.dir); !errors.Is(err, identity.ErrBadSignature) {
			t.Fatalf("VerifyOutcome of an outcome a peer signed = %v, want ErrBadSignature", err)
		}
	})
}

func TestOutcomeValidation(t *testing.T) {
	f := newFixture(t)
	req := f.request(t, f.draft(Rule{Name: RulePlurality}))
	for _, c := range []struct {
		name string
		edit func(*Outcome)
		want string
	}{
		{"request", func(o *Outcome) { o.Request = json.RawMessage(`{}`) }, "outcome request"},
		{"decision", func(o *Outcome) { o.Decision = strings.Repeat("0", 64) }, "not the hash of its request"},
		{"rule", func(o *Outcome) { o.Rule = RuleQuorum }, "outcome rule"},
		{"tally options", func(o *Outcome) { delete(o.Tally, "refer") }, "exactly the request's options"},
		{"tally negative", func(o *Outcome) { o.Tally["refer"] = -1 }, "outside"},
		{"absent unknown", func(o *Outcome) { o.Absent = []string{"tax"} }, "outcome absent"},
		{"absent out of order", func(o *Outcome) { o.Absent = []string{"pharmacology", "clinical-triage"} }, "out of order"},
		{"vetoed", func(o *Outcome) { o.Vetoed = []string{"home"} }, "outcome vetoed"},
		{"unmet", func(o *Outcome) { o.Unmet = []string{"min_brains"} }, "outcome unmet"},
		{"status", func(o *Outcome) { o.Status = "won" }, "outcome status"},
		{"decided without result", func(o *Outcome) { o.Status, o.Result = StatusDecided, nil }, "not one of the options"},
		{"tie with result", func(o *Outcome) { s := "admit"; o.Status, o.Result = StatusTie, &s }, "must be null"},
		{"rejected reason", func(o *Outcome) {
			o.Rejected = []Rejected{{Reason: "rude", BallotSHA256: strings.Repeat("0", 64)}}
		}, "rejected[0]: reason"},
		{"rejected detail", func(o *Outcome) {
			o.Rejected = []Rejected{{Reason: ReasonLate, Detail: "two\nlines", BallotSHA256: strings.Repeat("0", 64)}}
		}, "control character"},
		{"too many rejected", func(o *Outcome) {
			o.Rejected = make([]Rejected, MaxBallots-len(o.Ballots)+1)
		}, "MaxBallots"},
		{"time", func(o *Outcome) { o.Time = "now" }, "outcome time"},
	} {
		t.Run(c.name, func(t *testing.T) {
			o := mustCount(t, req, f.vote(t, req, "admit", "admit", "", "", ""), f.dir)
			c.edit(o)
			_, err := SealOutcome(f.keys[origin], o)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("SealOutcome = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

// TestLargestOutcomeFits builds the largest outcome Count can make — every size at its
// cap — and checks that it seals within MaxOutcomeSize and that an audit record
// holding it fits in one log entry.
func TestLargestOutcomeFits(t *testing.T) {
	f := newFixture(t)
	long := func(prefix string, n int) string { return prefix + strings.Repeat("x", n-len(prefix)) }
	var options []string
	for i := range MaxOptions {
		options = append(options, long(fmt.Sprintf("option-%02d-", i), MaxOptionLen))
	}
	var members []string
	var who []seat
	for i := range MaxMembers {
		node := []int{peerA, peerB}[i%2]
		brain := long(fmt.Sprintf("brain-%d-", i), MaxIDLen)
		members = append(members, brain+"@"+f.ids[node])
		who = append(who, seat{node, brain})
	}
	for _, rule := range []Rule{{Name: RuleWeighted}, {Name: RuleVeto, Vetoers: members}} {
		t.Run(rule.Name, func(t *testing.T) {
			d := f.draft(rule)
			d.Options = options
			d.Panel = Panel{ID: long("panel-", MaxIDLen), Members: members, MinNodes: MaxMembers, MinInstitutions: MaxMembers}.ForRule(rule)
			for m := range d.Panel.Weights {
				d.Panel.Weights[m] = MaxWeight
			}
			req := f.request(t, d)
			if n := len(req.Bytes()); n > MaxRequestSize {
				t.Fatalf("largest request is %d bytes, more than MaxRequestSize", n)
			}
			var ballots []SignedBallot
			for i, s := range who {
				choice := options[i]
				if rule.Name == RuleVeto {
					choice = VetoPrefix + options[i]
				}
				b := f.ballot(t, req, s.node, s.brain, choice, func(b *Ballot) { b.Model = strings.Repeat("m", MaxModelLen); b.Confidence = MaxPermille })
				ballots = append(ballots, SignedBallot{Bytes: b})
			}
			o := mustCount(t, req, ballots, f.dir)
			for len(o.Counted)+len(o.Rejected) < MaxBallots {
				o.Rejected = append(o.Rejected, Rejected{Node: f.ids[peerB], Brain: long("brain-", MaxIDLen), Reason: ReasonSeatFilled,
					Detail: strings.Repeat("d", MaxDetailLen), BallotSHA256: strings.Repeat("f", 64)})
			}
			b, err := SealOutcome(f.keys[origin], o)
			if err != nil {
				t.Fatal(err)
			}
			rec := &oar.Record{V: oar.Version, Kind: oar.KindRecord, Time: o.Time, Node: f.ids[origin],
				Tenant: strings.Repeat("t", 64), Actor: oar.Actor{ID: strings.Repeat("p", 128), Clearance: "TOP-SECRET"},
				Action: "decision.outcome", Resource: "decision/" + o.Decision, Classification: "OFFICIAL-SENSITIVE",
				Decision: &oar.Decision{Effect: "allow", Policies: []string{"permit-decisions", "forbid-flow-down", "forbid-read-up"}},
				Inputs:   []oar.Digest{{Name: "question", SHA256: req.QuestionDigest, Size: MaxQuestionLen}},
				Outputs:  []oar.Digest{oar.DigestOf("outcome", b)},
				Parties:  []json.RawMessage{b},
				Detail:   json.RawMessage(fmt.Sprintf(`{"decision":%q,"status":%q,"outcome":null}`, o.Decision, o.Status))}
			e, err := rec.Encode()
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("largest %s outcome: %d bytes (MaxOutcomeSize %d); its audit entry %d bytes (oar.MaxEntrySize %d)",
				rule.Name, len(b), MaxOutcomeSize, len(e), oar.MaxEntrySize)
			if len(e) > oar.MaxEntrySize {
				t.Fatalf("an audit record holding the largest outcome is %d bytes, more than oar.MaxEntrySize", len(e))
			}
		})
	}
}
