package decision

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/sios-project/sios/identity"
)

// Abstention codes: why a ballot's choice is Abstain. Only append to this list: a
// published code never changes meaning.
const (
	AbstainChosen     = "chosen"     // the model chose to abstain
	AbstainUnparsable = "unparsable" // the model's answer was not the JSON object asked for
	AbstainInvalid    = "invalid"    // the answer parsed but a value in it was not allowed
	AbstainFailed     = "failed"     // the brain gave no answer (backend error, timeout, refusal)
)

var abstentions = []string{AbstainChosen, AbstainUnparsable, AbstainInvalid, AbstainFailed}

// Permille is a confidence in [0, 1] in thousandths: 850 is 0.850. An integer, so that
// its canonical JSON reads back exactly.
type Permille uint16

// MaxPermille is certainty.
const MaxPermille Permille = 1000

// String writes p as a decimal fraction with three digits: "0.850", "1.000".
func (p Permille) String() string {
	return strconv.Itoa(int(p)/1000) + "." + fmt.Sprintf("%03d", int(p)%1000)
}

// Float is p as a fraction.
func (p Permille) Float() float64 { return float64(p) / 1000 }

// Ballot is one member's signed answer to a decision request.
type Ballot struct {
	V        string `json:"v"`
	Decision string `json:"decision"` // DecisionHash of the request answered
	Node     string `json:"node"`     // node id of the contributor, who signs
	Brain    string `json:"brain"`    // the brain that answered, on Node
	Model    string `json:"model"`    // the backend model that served the brain ("builtin" for the builtin backend)
	// Choice is one of the request's options, Abstain, or (from a vetoer under
	// RuleVeto) VetoPrefix followed by an option.
	Choice     string   `json:"choice"`
	Confidence Permille `json:"confidence_permille"` // 0 to 1000; 0 when Choice is Abstain
	// Abstention says why Choice is Abstain (AbstainChosen, …); empty otherwise.
	Abstention string `json:"abstention,omitempty"`
	// RationaleDigest is RationaleDigest of the rationale text, which travels beside
	// the ballot (it may be "", whose digest is that of no bytes).
	RationaleDigest string              `json:"rationale_digest"`
	Time            string              `json:"time"` // oar.FormatTime, when the contributor signed
	Sig             *identity.Signature `json:"sig,omitempty"`
}

// RationaleDigest is the SHA-256 of a rationale's UTF-8 text, in lowercase hex.
func RationaleDigest(rationale string) string { return sha256Hex([]byte(rationale)) }

// SealBallot fills V, checks every member, signs the ballot with key (the
// contributor's) and returns its canonical bytes.
func SealBallot(key *identity.PrivateKey, b Ballot) ([]byte, error) {
	b.V = BallotVersion
	b.Sig = nil
	return seal(key, &b, func(s *identity.Signature) { b.Sig = s })
}

// ParseBallot decodes a ballot with ParseRequest's rules for ballot/1. It checks the
// form only; Verify checks it against its request.
func ParseBallot(b []byte) (*Ballot, error) {
	var x Ballot
	if err := parse(b, &x); err != nil {
		return nil, err
	}
	return &x, nil
}

func (*Ballot) format() format {
	return format{"ballot", BallotVersion, BallotDomain, MaxBallotSize, "MaxBallotSize"}
}
func (b *Ballot) signature() *identity.Signature { return b.Sig }
func (b *Ballot) signer() string                 { return b.Node }
func (b *Ballot) signedBytes() ([]byte, error) {
	c := *b
	c.Sig = nil
	return encode(&c)
}

func (b *Ballot) validate() error {
	if b.V != BallotVersion {
		return fmt.Errorf("ballot v is %q, want %q", short(b.V), BallotVersion)
	}
	if !isHash(b.Decision) {
		return fmt.Errorf("ballot decision %q is not a decision hash (64 lowercase hex digits)", short(b.Decision))
	}
	if !validNodeID(b.Node) {
		return fmt.Errorf("ballot node %q is not a node id", short(b.Node))
	}
	if !validBrainID(b.Brain) {
		return fmt.Errorf("ballot brain %q is not a brain id (1 to %d bytes of a-z, 0-9 and '-': MaxIDLen)", short(b.Brain), MaxIDLen)
	}
	if b.Model == "" || len(b.Model) > MaxModelLen || strings.IndexFunc(b.Model, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		return fmt.Errorf("ballot model %q is not 1 to %d bytes of printable ASCII without spaces (MaxModelLen)", short(b.Model), MaxModelLen)
	}
	if err := checkLabel("ballot choice", b.Choice, len(VetoPrefix)+MaxOptionLen, "MaxOptionLen"); err != nil {
		return err
	}
	if b.Confidence > MaxPermille {
		return fmt.Errorf("ballot confidence_permille %d is more than %d", b.Confidence, MaxPermille)
	}
	if b.Choice == Abstain {
		if !slices.Contains(abstentions, b.Abstention) {
			return fmt.Errorf("ballot abstention %q is not one of %s (required when choice is %q)", short(b.Abstention), strings.Join(abstentions, ", "), Abstain)
		}
		if b.Confidence != 0 {
			return fmt.Errorf("ballot confidence_permille must be 0 when choice is %q", Abstain)
		}
	} else if b.Abstention != "" {
		return fmt.Errorf("ballot abstention must be left out when choice is not %q", Abstain)
	}
	if !isHash(b.RationaleDigest) {
		return fmt.Errorf("ballot rationale_digest %q is not a SHA-256 in 64 lowercase hex digits", short(b.RationaleDigest))
	}
	_, err := parseTime("ballot time", b.Time)
	return err
}

// Reasons a ballot is not counted. Only append to this list: a published reason never
// changes meaning.
const (
	ReasonMalformed     = "malformed"      // not a ballot/1 within MaxBallotSize, or its rationale does not match its digest
	ReasonBadSignature  = "bad_signature"  // no enrolled key for its node, or the signature does not verify under it
	ReasonWrongDecision = "wrong_decision" // it answers another decision (a replay from an earlier one, say)
	ReasonNotAMember    = "not_a_member"   // the panel has no seat for its node and brain
	ReasonInvalidChoice = "invalid_choice" // its choice is not one this member may make
	ReasonLate          = "late"           // signed or received after the deadline
	ReasonReplayed      = "replayed"       // its node and brain already have a ballot counted
	ReasonSeatFilled    = "seat_filled"    // another peer's ballot fills the BRAIN@* seat it could fill
)

// Rejection is why a ballot is not counted.
type Rejection struct {
	Reason string // one of the Reason constants
	Detail string // one line for the person reading the outcome
}

func (r *Rejection) Error() string { return "ballot rejected (" + r.Reason + "): " + r.Detail }

func reject(reason, format string, args ...any) *Rejection {
	return &Rejection{Reason: reason, Detail: fmt.Sprintf(format, args...)}
}

// Contributor is what a node knows of another node's enrolment.
type Contributor struct {
	Key         identity.PublicKey
	Institution string // id of the institution root that enrolled the node
}

// Directory gives the enrolled identity of a node, the origin's own included (at a
// node: fleet.Log.Key and fleet.Log.NodeView's Institution). It must be safe for
// concurrent use if Count or Verify run concurrently.
type Directory func(node string) (Contributor, bool)

// Verify checks a parsed ballot against the request it claims to answer: that it is
// signed by the enrolled keys of its node (from dir), that it names the request,
// that the panel has a seat for its node and brain, and that its choice is one that
// seat may make. The error is a *Rejection. Verify does not check the deadline, nor
// whether the seat is already filled: Count does.
func Verify(b *Ballot, req *Request, dir Directory) error {
	c, ok := dir(b.Node)
	if !ok {
		return reject(ReasonBadSignature, "no enrolled key is known for node %s", b.Node)
	}
	if err := b.verify(c.Key); err != nil {
		return reject(ReasonBadSignature, "%v", err)
	}
	if b.Decision != req.Hash() {
		return reject(ReasonWrongDecision, "it answers decision %.16s…, not %.16s…", b.Decision, req.Hash())
	}
	seat, ok := req.Seat(b.Node, b.Brain)
	if !ok {
		return reject(ReasonNotAMember, "the panel has no seat for brain %s on node %s", b.Brain, b.Node)
	}
	if !slices.Contains(req.Choices(seat), b.Choice) {
		return reject(ReasonInvalidChoice, "%q is not an option, %q or a veto the member %s may cast", short(b.Choice), Abstain, seat)
	}
	return nil
}

func (b *Ballot) verify(pub identity.PublicKey) error { return verify(b, pub) }
