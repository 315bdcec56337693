package decision

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sios-project/sios/oar"
)

// SignedBallot is a ballot as the origin received it.
type SignedBallot struct {
	// Bytes are the ballot exactly as the contributor signed it.
	Bytes []byte
	// Rationale is the rationale text that travelled beside the ballot. When it is
	// not empty it must match the ballot's rationale_digest.
	Rationale string
	// Received is when the origin received the ballot; zero when not known (a count
	// made again from an outcome).
	Received time.Time
	// Node and Brain are whom the origin asked. They only name, in the outcome, a
	// rejected ballot whose bytes do not parse; a parsed ballot names its own.
	Node, Brain string
}

// Counted is a counted ballot with what the origin knows of it. It is not part of the
// outcome's bytes.
type Counted struct {
	Ballot      *Ballot
	Bytes       []byte
	Seat        string // the panel member whose seat it fills
	Institution string // the contributor's institution, from the Directory
	Rationale   string // as given to Count ("" from VerifyOutcome)
	Input       int    // its index among the ballots given to Count (-1 from VerifyOutcome)
}

// candidate is one ballot given to Count on its way to being counted or rejected.
type candidate struct {
	in     int
	sb     SignedBallot
	digest string
	b      *Ballot // nil if it did not parse
	err    error   // why it did not parse
	node   string  // the ballot's, or SignedBallot.Node
	brain  string
	seat   string
	c      Contributor
	rej    *Rejection // why it is not counted; nil while it may be
}

// Count makes the outcome of a decision from the ballots received for it; req must
// come from ParseRequest. It is a pure function of its arguments in which the order of
// ballots plays no part: the ballots are put in a canonical order first (by node,
// brain, signed time, SHA-256 of the bytes, time received), and then
//
//  1. each ballot is parsed, verified (Verify: signature under its node's enrolled
//     keys, decision hash, seat on the panel, choice), its rationale matched against
//     its digest, and its time and arrival checked against the deadline; a ballot
//     that fails is rejected with the Reason for its first failing check;
//  2. of the valid ballots with the same node and brain, the first in canonical order
//     is kept and the rest are rejected as replayed;
//  3. a BRAIN@* seat that valid ballots from several peers could fill is filled by the
//     one whose node gives the lowest SHA-256(decision hash || node id), an order no
//     peer can choose before the request exists; the rest are rejected as seat_filled;
//  4. the rule is applied to the counted ballots (see docs/decisions.md) and the
//     panel's constraints are checked; seats without a counted ballot are absent.
//
// now is the outcome's time. The outcome is not signed: SealOutcome signs it. Count
// fails only when called wrongly (a Request that ParseRequest did not make, more than
// MaxBallots ballots).
func Count(req *Request, ballots []SignedBallot, dir Directory, now time.Time) (*Outcome, error) {
	if req == nil || req.raw == nil {
		return nil, errors.New("decision: Count needs a request from ParseRequest")
	}
	if len(ballots) > MaxBallots {
		return nil, fmt.Errorf("decision: %d ballots given, more than the %d one decision can have (MaxBallots)", len(ballots), MaxBallots)
	}
	deadline, err := parseTime("decision request deadline", req.Deadline)
	if err != nil {
		return nil, err
	}
	cands := make([]*candidate, len(ballots))
	for i, sb := range ballots {
		c := &candidate{in: i, sb: sb, digest: sha256Hex(sb.Bytes)}
		// Whom the origin asked names a ballot only if it is a node id and a brain id.
		if validNodeID(sb.Node) {
			c.node = sb.Node
		}
		if validBrainID(sb.Brain) {
			c.brain = sb.Brain
		}
		c.b, c.err = ParseBallot(sb.Bytes)
		if c.b != nil {
			c.node, c.brain = c.b.Node, c.b.Brain
		}
		cands[i] = c
	}
	slices.SortFunc(cands, func(x, y *candidate) int {
		return cmp.Or(cmp.Compare(x.node, y.node), cmp.Compare(x.brain, y.brain), cmp.Compare(x.time(), y.time()),
			cmp.Compare(x.digest, y.digest), x.sb.Received.Compare(y.sb.Received))
	})

	var valid []*candidate
	kept := make(map[[2]string]bool)
	for _, c := range cands {
		if c.rej = check(c, req, dir, deadline); c.rej != nil {
			continue
		}
		k := [2]string{c.node, c.brain}
		if kept[k] {
			c.rej = reject(ReasonReplayed, "node %s already has a ballot counted for brain %s", c.node, c.brain)
			continue
		}
		kept[k] = true
		valid = append(valid, c)
	}
	// Fill each BRAIN@* seat with one ballot.
	winner := make(map[string]*candidate)
	for _, c := range valid {
		if w := winner[c.seat]; w == nil || rendezvous(req, c.node) < rendezvous(req, w.node) {
			winner[c.seat] = c
		}
	}
	o := &Outcome{V: OutcomeVersion, Decision: req.Hash(), Request: req.raw, Rule: req.Rule.Name, Time: oar.FormatTime(now), req: req}
	var votes []vote
	for _, c := range cands {
		if w := winner[c.seat]; c.rej == nil && w != c {
			c.rej = reject(ReasonSeatFilled, "seat %s is filled by node %s", c.seat, w.node)
		}
		if c.rej != nil {
			o.Rejected = append(o.Rejected, Rejected{Node: c.node, Brain: c.brain, Reason: c.rej.Reason, Detail: detail(c.rej.Detail), BallotSHA256: c.digest})
			continue
		}
		o.Ballots = append(o.Ballots, c.sb.Bytes)
		o.Counted = append(o.Counted, Counted{Ballot: c.b, Bytes: c.sb.Bytes, Seat: c.seat, Institution: c.c.Institution, Rationale: c.sb.Rationale, Input: c.in})
		votes = append(votes, vote{seat: c.seat, choice: c.b.Choice})
	}
	o.settle(req, votes)
	return o, nil
}

// check runs every test of one ballot on its own, returning why it is rejected or nil.
func check(c *candidate, req *Request, dir Directory, deadline time.Time) *Rejection {
	if c.b == nil {
		return reject(ReasonMalformed, "%v", c.err)
	}
	if err := Verify(c.b, req, dir); err != nil {
		return err.(*Rejection)
	}
	c.c, _ = dir(c.node)
	c.seat, _ = req.Seat(c.node, c.brain)
	if c.sb.Rationale != "" && RationaleDigest(c.sb.Rationale) != c.b.RationaleDigest {
		return reject(ReasonMalformed, "the rationale sent with it does not match its rationale_digest")
	}
	if t, _ := parseTime("ballot time", c.b.Time); t.After(deadline) {
		return reject(ReasonLate, "signed at %s, after the deadline %s", c.b.Time, req.Deadline)
	}
	if !c.sb.Received.IsZero() && c.sb.Received.After(deadline) {
		return reject(ReasonLate, "received at %s, after the deadline %s", oar.FormatTime(c.sb.Received), req.Deadline)
	}
	return nil
}

// time is the ballot's signed time, or "" if it did not parse.
func (c *candidate) time() string {
	if c.b == nil {
		return ""
	}
	return c.b.Time
}

// rendezvous orders the peers that could fill a BRAIN@* seat of req.
func rendezvous(req *Request, node string) string { return sha256Hex([]byte(req.Hash() + node)) }

// settle fills in what follows from the counted votes: the tally and status under the
// rule, the constraints left unmet, and the absent members.
func (o *Outcome) settle(req *Request, votes []vote) {
	t := apply(req, votes)
	o.Tally, o.Abstentions, o.Vetoed = t.tally, t.abstentions, t.vetoed
	nodes, institutions := make(map[string]bool), make(map[string]bool)
	filled := make(map[string]bool)
	for i, v := range votes {
		filled[v.seat] = true
		if v.choice == Abstain {
			continue
		}
		c := o.Counted[i]
		nodes[c.Ballot.Node] = true
		if c.Institution != "" {
			institutions[c.Institution] = true
		}
	}
	if len(nodes) < req.Panel.MinNodes {
		o.Unmet = append(o.Unmet, UnmetMinNodes)
	}
	if len(institutions) < req.Panel.MinInstitutions {
		o.Unmet = append(o.Unmet, UnmetMinInstitutions)
	}
	o.Status, o.Result = t.status, nil
	if len(o.Unmet) > 0 {
		o.Status = StatusNoQuorum
	} else if t.status == StatusDecided {
		r := t.result
		o.Result = &r
	}
	for _, m := range req.Panel.Members {
		if !filled[m] {
			o.Absent = append(o.Absent, m)
		}
	}
}

// detail fits a rejection's explanation in MaxDetailLen bytes of one line of text
// that canonical JSON can carry (no control characters or noncharacters).
func detail(s string) string {
	var b strings.Builder
	for _, r := range strings.ToValidUTF8(s, "\uFFFD") {
		if unicode.IsControl(r) || r >= 0xFDD0 && r <= 0xFDEF || r&0xFFFE == 0xFFFE {
			r = ' '
		}
		if b.Len()+utf8.RuneLen(r) > MaxDetailLen-len("…") {
			b.WriteString("…")
			break
		}
		b.WriteRune(r)
	}
	return strings.TrimSpace(b.String())
}
