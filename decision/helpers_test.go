package decision

import (
	"crypto/ed25519"
	"strings"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/oar"
)

// t0 is the fixed time of every test decision: issued at t0, deadline a minute later.
var t0 = time.Date(2026, 5, 4, 10, 0, 0, 0, time.UTC)

// seeds derives the key seeds of test key b: fixed, so that vectors are reproducible.
func seeds(b byte) ([mldsa65.SeedSize]byte, [ed25519.SeedSize]byte) {
	var m [mldsa65.SeedSize]byte
	var e [ed25519.SeedSize]byte
	for i := range m {
		m[i], e[i] = b+byte(i), b^byte(i)^0x5a
	}
	return m, e
}

// fixture is three nodes in two institutions: the origin and peer A in institution A,
// peer B in institution B, with enrolment certificates from fixed keys.
type fixture struct {
	roots []*identity.PrivateKey
	keys  []*identity.PrivateKey // origin, peer A, peer B
	certs []identity.Certificate
	ids   []string
}

const (
	origin = 0
	peerA  = 1
	peerB  = 2
)

func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{}
	for i := range 2 {
		m, e := seeds(0x10 + byte(i))
		f.roots = append(f.roots, identity.KeyFromSeeds(identity.KindRoot, m, e))
	}
	for i, root := range []int{0, 0, 1} {
		m, e := seeds(0x80 + byte(i))
		k := identity.KeyFromSeeds(identity.KindNode, m, e)
		cert, err := identity.Issue(f.roots[root], k.Public(), []string{"origin", "peer-a", "peer-b"}[i], t0.Add(-24*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		f.keys, f.certs, f.ids = append(f.keys, k), append(f.certs, cert), append(f.ids, cert.NodeID)
	}
	return f
}

// dir is the fixture's Directory: each node's key and institution, from its certificate.
func (f *fixture) dir(node string) (Contributor, bool) {
	for i, c := range f.certs {
		if c.NodeID == node {
			return Contributor{Key: f.keys[i].Public(), Institution: c.RootID}, true
		}
	}
	return Contributor{}, false
}

// panel is the five-member panel of docs/decisions.md: three of the origin's brains,
// one of peer A's, and the evaluator of any peer.
func (f *fixture) panel() Panel {
	return Panel{ID: "discharge-review", Members: []string{
		"clinical-triage", "pharmacology", "radiology-reporting", "clinical-coding@" + f.ids[peerA], "evaluator@*"}}
}

// draft is an unsigned request over the panel, under rule.
func (f *fixture) draft(rule Rule) Request {
	return Request{
		Nonce: strings.Repeat("ab", 16), Origin: f.ids[origin], Issued: oar.FormatTime(t0), Deadline: oar.FormatTime(t0.Add(time.Minute)),
		Classification: "OFFICIAL-SENSITIVE", QuestionDigest: QuestionDigest("Is the patient in bed 4 fit for discharge today?"),
		Options: []string{"discharge", "admit", "refer"}, Rule: rule, Panel: f.panel().ForRule(rule),
	}
}

// request seals and parses r.
func (f *fixture) request(t testing.TB, r Request) *Request {
	t.Helper()
	b, err := SealRequest(f.keys[origin], r)
	if err != nil {
		t.Fatal(err)
	}
	req, err := ParseRequest(b)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// ballot signs the answer of brain on node to req.
func (f *fixture) ballot(t testing.TB, req *Request, node int, brain, choice string, edit ...func(*Ballot)) []byte {
	t.Helper()
	b := Ballot{Decision: req.Hash(), Node: f.ids[node], Brain: brain, Model: "llama3.1:8b", Choice: choice, Confidence: 800,
		RationaleDigest: RationaleDigest("because " + choice), Time: oar.FormatTime(t0.Add(10 * time.Second))}
	if choice == Abstain {
		b.Confidence, b.Abstention = 0, AbstainChosen
	}
	key := f.keys[node]
	for _, e := range edit {
		e(&b)
	}
	out, err := SealBallot(key, b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// seat is a panel seat and the node and brain that fill it in the fixture.
type seat struct {
	node  int
	brain string
}

// seats are the fixture panel's five seats, in panel order (evaluator@* by peer B).
var seats = []seat{{origin, "clinical-triage"}, {origin, "pharmacology"}, {origin, "radiology-reporting"}, {peerA, "clinical-coding"}, {peerB, "evaluator"}}

// vote signs one ballot per choice, seat by seat; "" leaves the seat absent.
func (f *fixture) vote(t testing.TB, req *Request, choices ...string) []SignedBallot {
	t.Helper()
	var out []SignedBallot
	for i, c := range choices {
		if c == "" {
			continue
		}
		s := seats[i]
		out = append(out, SignedBallot{Bytes: f.ballot(t, req, s.node, s.brain, c), Rationale: "because " + c})
	}
	return out
}

func mustCount(t testing.TB, req *Request, ballots []SignedBallot, dir Directory) *Outcome {
	t.Helper()
	o, err := Count(req, ballots, dir, t0.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func result(o *Outcome) string {
	if o.Result == nil {
		return "null"
	}
	return *o.Result
}
