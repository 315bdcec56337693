package decision

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/sios-project/sios/identity"
)

// Outcome is the origin's record of a decision: the request and every counted ballot
// exactly as signed, the ballots rejected and why, the absent members, the tally and
// the result, signed by the origin. It is what the origin's audit record of the
// decision holds, and all a verifier needs besides the nodes' enrolled keys.
type Outcome struct {
	V        string          `json:"v"`
	Decision string          `json:"decision"` // DecisionHash of Request
	Request  json.RawMessage `json:"request"`  // the signed request
	// Ballots are the counted ballots, exactly as signed, ordered by node id then
	// brain id (no two have both the same).
	Ballots  []json.RawMessage `json:"ballots,omitempty"`
	Rejected []Rejected        `json:"rejected,omitempty"` // in the order Count considered them
	Absent   []string          `json:"absent,omitempty"`   // the members no counted ballot fills, in panel order
	Rule     string            `json:"rule"`               // the request's rule name
	// Tally has every option, with the number of votes for it (under RuleWeighted,
	// the sum of their weights). Abstentions and vetoes are not votes.
	Tally       map[string]int `json:"tally"`
	Abstentions int            `json:"abstentions"`      // counted ballots that abstained
	Vetoed      []string       `json:"vetoed,omitempty"` // options vetoed (RuleVeto), in the request's order
	Unmet       []string       `json:"unmet,omitempty"`  // the panel constraints not met (UnmetMinNodes, …)
	Status      string         `json:"status"`           // StatusDecided, StatusTie or StatusNoQuorum
	// Result is the option decided, or null unless Status is StatusDecided.
	Result *string             `json:"outcome"`
	Time   string              `json:"time"` // oar.FormatTime, when the origin counted
	Sig    *identity.Signature `json:"sig,omitempty"`

	// Counted describes each counted ballot, in the order of Ballots. Count and
	// VerifyOutcome fill it; it is not part of the outcome's bytes.
	Counted []Counted `json:"-"`

	req *Request // Request parsed, by validate
}

// Rejected is a ballot the origin received and did not count.
type Rejected struct {
	Node   string `json:"node,omitempty"`  // the ballot's node, or whom the origin asked
	Brain  string `json:"brain,omitempty"` // likewise
	Reason string `json:"reason"`          // one of the Reason constants
	Detail string `json:"detail,omitempty"`
	// BallotSHA256 is the SHA-256 of the bytes received, whatever they were.
	BallotSHA256 string `json:"ballot_sha256"`
}

var reasons = []string{ReasonMalformed, ReasonBadSignature, ReasonWrongDecision, ReasonNotAMember,
	ReasonInvalidChoice, ReasonLate, ReasonReplayed, ReasonSeatFilled}

// SealOutcome fills V, checks every member, signs the outcome with key (the origin's)
// and returns its canonical bytes.
func SealOutcome(key *identity.PrivateKey, o *Outcome) ([]byte, error) {
	c := *o
	c.V, c.Sig = OutcomeVersion, nil
	b, err := seal(key, &c, func(s *identity.Signature) { c.Sig = s })
	if err != nil {
		return nil, err
	}
	o.V, o.Sig = c.V, c.Sig
	return b, nil
}

// ParseOutcome decodes an outcome with ParseRequest's rules for decision-outcome/1;
// the request and ballots inside it must parse too, and name the same decision. It
// checks the form only; VerifyOutcome checks the signatures and the count.
func ParseOutcome(b []byte) (*Outcome, error) {
	var o Outcome
	if err := parse(b, &o); err != nil {
		return nil, err
	}
	return &o, nil
}

// ParsedRequest returns the parsed request of an outcome that SealOutcome, ParseOutcome,
// Count or VerifyOutcome made or read.
func (o *Outcome) ParsedRequest() *Request { return o.req }

// VerifyOutcome checks an outcome with nothing but the nodes' enrolled keys: the
// origin's signatures on the request and on the outcome; every counted ballot (Verify,
// signed by the deadline, at most one per seat, in order); and that counting those
// ballots again gives the outcome's tally, status, result, absent members and unmet
// constraints. The rejected ballots are the origin's word: only their form is checked.
func VerifyOutcome(b []byte, dir Directory) (*Outcome, error) {
	o, err := ParseOutcome(b)
	if err != nil {
		return nil, err
	}
	req := o.req
	origin, ok := dir(req.Origin)
	if !ok {
		return nil, fmt.Errorf("outcome of decision %.16s…: no enrolled key is known for its origin %s", o.Decision, req.Origin)
	}
	if err := req.Verify(origin.Key); err != nil {
		return nil, err
	}
	if err := verify(o, origin.Key); err != nil {
		return nil, err
	}
	counted := make([]SignedBallot, len(o.Ballots))
	for i, x := range o.Ballots {
		counted[i] = SignedBallot{Bytes: x}
	}
	t, _ := parseTime("outcome time", o.Time)
	again, err := Count(req, counted, dir, t)
	if err != nil {
		return nil, err
	}
	if len(again.Rejected) > 0 {
		r := again.Rejected[0]
		return nil, fmt.Errorf("outcome of decision %.16s…: counted ballot from %s (brain %s) should not count: %s: %s", o.Decision, r.Node, r.Brain, r.Reason, r.Detail)
	}
	for i := range again.Ballots {
		if !bytes.Equal(again.Ballots[i], o.Ballots[i]) {
			return nil, fmt.Errorf("outcome of decision %.16s…: ballots are not in order (node id, then brain id)", o.Decision)
		}
	}
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"tally", o.Tally, again.Tally},
		{"abstentions", o.Abstentions, again.Abstentions},
		{"vetoed", o.Vetoed, again.Vetoed},
		{"unmet", o.Unmet, again.Unmet},
		{"absent", o.Absent, again.Absent},
		{"status", o.Status, again.Status},
		{"outcome", deref(o.Result), deref(again.Result)},
	} {
		g, _ := json.Marshal(f.got)
		w, _ := json.Marshal(f.want)
		if !bytes.Equal(g, w) {
			return nil, fmt.Errorf("outcome of decision %.16s…: %s is %s, but the counted ballots give %s", o.Decision, f.name, g, w)
		}
	}
	o.Counted = again.Counted
	for i := range o.Counted {
		o.Counted[i].Input = -1
	}
	return o, nil
}

func deref(s *string) any {
	if s == nil {
		return nil
	}
	return *s
}

func (*Outcome) format() format {
	return format{"outcome", OutcomeVersion, OutcomeDomain, MaxOutcomeSize, "MaxOutcomeSize"}
}
func (o *Outcome) signature() *identity.Signature { return o.Sig }
func (o *Outcome) signer() string {
	if o.req == nil {
		return ""
	}
	return o.req.Origin
}
func (o *Outcome) signedBytes() ([]byte, error) {
	c := *o
	c.Sig = nil
	return encode(&c)
}

// validate checks every member but sig, parsing the request and ballots inside.
func (o *Outcome) validate() error {
	if o.V != OutcomeVersion {
		return fmt.Errorf("outcome v is %q, want %q", short(o.V), OutcomeVersion)
	}
	req, err := ParseRequest(o.Request)
	if err != nil {
		return fmt.Errorf("outcome request: %v", err)
	}
	o.req = req
	if o.Decision != req.Hash() {
		return fmt.Errorf("outcome decision %q is not the hash of its request (%s)", short(o.Decision), req.Hash())
	}
	if len(o.Ballots) > len(req.Panel.Members) {
		return fmt.Errorf("outcome counts %d ballots for a panel of %d", len(o.Ballots), len(req.Panel.Members))
	}
	for i, x := range o.Ballots {
		if _, err := ParseBallot(x); err != nil {
			return fmt.Errorf("outcome ballots[%d]: %v", i, err)
		}
	}
	if n := len(o.Ballots) + len(o.Rejected); n > MaxBallots {
		return fmt.Errorf("outcome counts and rejects %d ballots, more than the limit of %d (MaxBallots)", n, MaxBallots)
	}
	for i, r := range o.Rejected {
		if err := r.validate(); err != nil {
			return fmt.Errorf("outcome rejected[%d]: %v", i, err)
		}
	}
	if err := inOrder("absent", o.Absent, req.Panel.Members); err != nil {
		return err
	}
	if o.Rule != req.Rule.Name {
		return fmt.Errorf("outcome rule %q is not its request's rule %q", short(o.Rule), req.Rule.Name)
	}
	if !slices.Equal(slices.Sorted(maps.Keys(o.Tally)), slices.Sorted(slices.Values(req.Options))) {
		return fmt.Errorf("outcome tally does not have exactly the request's options")
	}
	for opt, n := range o.Tally {
		if n < 0 || n > MaxMembers*MaxWeight {
			return fmt.Errorf("outcome tally for %q is %d, outside 0 to %d", short(opt), n, MaxMembers*MaxWeight)
		}
	}
	if o.Abstentions < 0 || o.Abstentions > len(o.Ballots) {
		return fmt.Errorf("outcome abstentions %d is outside 0 to the number of ballots (%d)", o.Abstentions, len(o.Ballots))
	}
	if err := inOrder("vetoed", o.Vetoed, req.Options); err != nil {
		return err
	}
	if err := inOrder("unmet", o.Unmet, []string{UnmetMinNodes, UnmetMinInstitutions}); err != nil {
		return err
	}
	if !slices.Contains(statuses, o.Status) {
		return fmt.Errorf("outcome status %q is not one of %s", short(o.Status), strings.Join(statuses, ", "))
	}
	switch {
	case o.Status == StatusDecided && (o.Result == nil || !slices.Contains(req.Options, *o.Result)):
		return fmt.Errorf("outcome status is %q but outcome is not one of the options", StatusDecided)
	case o.Status != StatusDecided && o.Result != nil:
		return fmt.Errorf("outcome must be null when status is %q", o.Status)
	}
	_, err = parseTime("outcome time", o.Time)
	return err
}

func (r *Rejected) validate() error {
	if r.Node != "" && !validNodeID(r.Node) {
		return fmt.Errorf("node %q is not a node id", short(r.Node))
	}
	if r.Brain != "" && !validBrainID(r.Brain) {
		return fmt.Errorf("brain %q is not a brain id", short(r.Brain))
	}
	if !slices.Contains(reasons, r.Reason) {
		return fmt.Errorf("reason %q is not one of %s", short(r.Reason), strings.Join(reasons, ", "))
	}
	if r.Detail != "" {
		if err := checkLabel("detail", r.Detail, MaxDetailLen, "MaxDetailLen"); err != nil {
			return err
		}
	}
	if !isHash(r.BallotSHA256) {
		return fmt.Errorf("ballot_sha256 %q is not a SHA-256 in 64 lowercase hex digits", short(r.BallotSHA256))
	}
	return nil
}

// inOrder requires that list holds distinct entries of all, in all's order.
func inOrder(name string, list, all []string) error {
	j := 0
	for _, s := range list {
		for j < len(all) && all[j] != s {
			j++
		}
		if j == len(all) {
			return fmt.Errorf("outcome %s: %q is not one of %s, or is out of order or repeated", name, short(s), strings.Join(all, ", "))
		}
		j++
	}
	return nil
}
