package decision

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/oar"
)

// TestCountRejects gives Count one decision's worth of good and bad ballots and checks
// what it counts, what it rejects and why, and who is absent.
func TestCountRejects(t *testing.T) {
	f := newFixture(t)
	req := f.request(t, f.draft(Rule{Name: RulePlurality}))
	other := f.draft(Rule{Name: RulePlurality})
	other.Nonce = strings.Repeat("cd", 16)
	earlier := f.request(t, other)

	triage := f.ballot(t, req, origin, "clinical-triage", "discharge")
	flipped := f.ballot(t, req, origin, "radiology-reporting", "admit")
	i := bytes.Index(flipped, []byte(`"ml-dsa-65":"`)) + 40
	// Another base64 digit: still a ballot, no longer the one signed.
	if flipped[i] == 'A' {
		flipped[i] = 'B'
	} else {
		flipped[i] = 'A'
	}
	ballots := []SignedBallot{
		{Bytes: triage, Rationale: "because discharge"},
		{Bytes: f.ballot(t, req, origin, "pharmacology", "admit"), Rationale: "because admit"},
		{Bytes: flipped},
		{Bytes: f.ballot(t, earlier, peerA, "clinical-coding", "refer")},
		{Bytes: f.ballot(t, req, peerB, "evaluator", "refer")},
		{Bytes: f.ballot(t, req, peerA, "evaluator", "admit")},
		{Bytes: triage}, // the same ballot again
		{Bytes: f.ballot(t, req, origin, "clinical-triage", "admit", func(b *Ballot) { b.Time = oar.FormatTime(t0.Add(20 * time.Second)) })},
		{Bytes: f.ballot(t, req, peerB, "tax", "admit")},
		{Bytes: []byte(`{"v":"ballot/1"`), Node: f.ids[peerA], Brain: "clinical-coding"},
		{Bytes: f.ballot(t, req, peerB, "evaluator", "discharge", func(b *Ballot) { b.Time = oar.FormatTime(t0.Add(5 * time.Second)) }), Rationale: "not the one signed"},
	}
	o := mustCount(t, req, ballots, f.dir)

	evalWinner, evalLoser := peerA, peerB
	if rendezvous(req, f.ids[peerB]) < rendezvous(req, f.ids[peerA]) {
		evalWinner, evalLoser = peerB, peerA
	}
	var counted []string
	for _, c := range o.Counted {
		counted = append(counted, c.Seat+"="+c.Ballot.Choice)
	}
	evalChoice := map[int]string{peerA: "admit", peerB: "refer"}[evalWinner]
	want := []string{"clinical-triage=discharge", "pharmacology=admit", "evaluator@*=" + evalChoice}
	slices.Sort(counted)
	slices.Sort(want)
	if !slices.Equal(counted, want) {
		t.Fatalf("counted %v, want %v", counted, want)
	}
	for i, c := range o.Counted {
		if !bytes.Equal(o.Ballots[i], c.Bytes) || !bytes.Equal(c.Bytes, ballots[c.Input].Bytes) {
			t.Fatalf("counted ballot %d: bytes are not those given", i)
		}
	}
	type rej struct{ node, brain, reason string }
	var got []rej
	for _, r := range o.Rejected {
		got = append(got, rej{r.Node, r.Brain, r.Reason})
		if r.Detail == "" || !isHash(r.BallotSHA256) {
			t.Fatalf("rejection %+v lacks its detail or digest", r)
		}
	}
	wantRej := []rej{
		{f.ids[origin], "radiology-reporting", ReasonBadSignature},
		{f.ids[peerA], "clinical-coding", ReasonWrongDecision},
		{f.ids[peerA], "clinical-coding", ReasonMalformed},
		{f.ids[evalLoser], "evaluator", ReasonSeatFilled},
		{f.ids[origin], "clinical-triage", ReasonReplayed},
		{f.ids[origin], "clinical-triage", ReasonReplayed},
		{f.ids[peerB], "tax", ReasonNotAMember},
		{f.ids[peerB], "evaluator", ReasonMalformed}, // its rationale does not match
	}
	sortRej := func(a, b rej) int { return strings.Compare(a.node+a.brain+a.reason, b.node+b.brain+b.reason) }
	slices.SortFunc(got, sortRej)
	slices.SortFunc(wantRej, sortRej)
	if !slices.Equal(got, wantRej) {
		t.Fatalf("rejected\n%v\nwant\n%v", got, wantRej)
	}
	if !slices.Equal(o.Absent, []string{"radiology-reporting", "clinical-coding@" + f.ids[peerA]}) {
		t.Fatalf("absent %v", o.Absent)
	}
	if o.Status != StatusTie && o.Status != StatusDecided {
		t.Fatalf("status %s", o.Status)
	}
	// The outcome signs, parses back exactly and verifies from its own bytes.
	b, err := SealOutcome(f.keys[origin], o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyOutcome(b, f.dir); err != nil {
		t.Fatal(err)
	}
}

func TestCountLate(t *testing.T) {
	f := newFixture(t)
	req := f.request(t, f.draft(Rule{Name: RulePlurality}))
	deadline := t0.Add(time.Minute)
	ballots := []SignedBallot{
		{Bytes: f.ballot(t, req, origin, "clinical-triage", "admit", func(b *Ballot) { b.Time = oar.FormatTime(deadline) })},
		{Bytes: f.ballot(t, req, origin, "pharmacology", "admit", func(b *Ballot) { b.Time = oar.FormatTime(deadline.Add(time.Nanosecond)) })},
		{Bytes: f.ballot(t, req, peerA, "clinical-coding", "admit"), Received: deadline.Add(time.Millisecond)},
		{Bytes: f.ballot(t, req, peerB, "evaluator", "refer"), Received: deadline},
	}
	o := mustCount(t, req, ballots, f.dir)
	var late []string
	for _, r := range o.Rejected {
		if r.Reason != ReasonLate {
			t.Fatalf("unexpected rejection %+v", r)
		}
		late = append(late, r.Brain)
	}
	slices.Sort(late)
	if !slices.Equal(late, []string{"clinical-coding", "pharmacology"}) {
		t.Fatalf("late: %v, want clinical-coding (received late) and pharmacology (signed late)", late)
	}
	if len(o.Counted) != 2 || o.Status != StatusTie {
		t.Fatalf("counted %d, status %s; want 2 counted, a tie", len(o.Counted), o.Status)
	}
}

func TestCountMisuse(t *testing.T) {
	f := newFixture(t)
	draft := f.draft(Rule{Name: RulePlurality})
	if _, err := Count(&draft, nil, f.dir, t0); err == nil {
		t.Fatal("Count of an unparsed request succeeded")
	}
	req := f.request(t, draft)
	if _, err := Count(req, make([]SignedBallot, MaxBallots+1), f.dir, t0); err == nil || !strings.Contains(err.Error(), "MaxBallots") {
		t.Fatalf("Count of too many ballots = %v, want MaxBallots named", err)
	}
}

// TestCountIgnoresOrder is the property the rules promise: for random sets of
// ballots under every rule, every order of arrival gives the same outcome, to the byte.
func TestCountIgnoresOrder(t *testing.T) {
	f := newFixture(t)
	rng := rand.New(rand.NewPCG(14, 2026))
	rules := []Rule{{Name: RulePlurality}, {Name: RuleWeighted}, {Name: RuleQuorum, Quorum: 2}, {Name: RuleUnanimity},
		{Name: RuleVeto, Vetoers: []string{"pharmacology", "evaluator@*"}}}
	trials := 60
	if testing.Short() || raceEnabled {
		trials = 10
	}
	statuses := make(map[string]int)
	for trial := range trials {
		rule := rules[trial%len(rules)]
		d := f.draft(rule)
		d.Nonce = strings.Repeat(string("0123456789abcdef"[trial%16]), 32)
		if rule.Name == RuleWeighted {
			for m := range d.Panel.Weights {
				d.Panel.Weights[m] = 1 + rng.IntN(3)
			}
		}
		d.Panel.MinInstitutions = rng.IntN(3)
		req := f.request(t, d)
		var ballots []SignedBallot
		for i, s := range seats {
			choices := req.Choices(req.Panel.Members[i])
			if rng.IntN(6) == 0 {
				continue // absent
			}
			c := choices[rng.IntN(len(choices))]
			ballots = append(ballots, SignedBallot{Bytes: f.ballot(t, req, s.node, s.brain, c)})
			if rng.IntN(5) == 0 { // the same ballot twice
				ballots = append(ballots, ballots[len(ballots)-1])
			}
		}
		if rng.IntN(2) == 0 { // a second peer for evaluator@*
			ballots = append(ballots, SignedBallot{Bytes: f.ballot(t, req, peerA, "evaluator", req.Options[rng.IntN(3)])})
		}
		if rng.IntN(3) == 0 {
			ballots = append(ballots, SignedBallot{Bytes: []byte("not a ballot")})
		}
		var first []byte
		for perm := range 6 {
			rng.Shuffle(len(ballots), func(i, j int) { ballots[i], ballots[j] = ballots[j], ballots[i] })
			o := mustCount(t, req, ballots, f.dir)
			// The bytes the origin signs (the signature is a function of them).
			b, err := o.signedBytes()
			if err != nil {
				t.Fatal(err)
			}
			if perm == 0 {
				first = b
				statuses[o.Status]++
				signed, err := SealOutcome(f.keys[origin], o)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := VerifyOutcome(signed, f.dir); err != nil {
					t.Fatalf("trial %d: %v", trial, err)
				}
				continue
			}
			if !bytes.Equal(b, first) {
				t.Fatalf("trial %d (%s): order %d gives another outcome:\n%s\n%s", trial, rule.Name, perm, first, b)
			}
		}
	}
	// The random sets must reach every status, or the property says little.
	for _, s := range statuses {
		if s == 0 {
			t.Fatalf("statuses reached: %v", statuses)
		}
	}
	if len(statuses) != 3 {
		t.Fatalf("statuses reached: %v, want all three", statuses)
	}
}
