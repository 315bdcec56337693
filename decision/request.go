package decision

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/oar"
)

// Versions and domains of the decision formats. A signature or hash made for one can
// never be mistaken for another, or for any other sios signature.
const (
	RequestVersion = "decision-request/1"
	BallotVersion  = "ballot/1"
	OutcomeVersion = "decision-outcome/1"

	RequestDomain      = "decision-request/1 request" // identity.PrivateKey.Sign domain of a request
	BallotDomain       = "ballot/1 ballot"            // … of a ballot
	OutcomeDomain      = "decision-outcome/1 outcome" // … of an outcome
	DecisionHashDomain = "decision-request/1 hash"    // prefix (and a newline) of a decision hash
)

// Reserved choices: a ballot's choice is an option, Abstain, or (under RuleVeto, from
// a vetoer) VetoPrefix followed by an option.
const (
	Abstain    = "abstain"
	VetoPrefix = "veto:"
)

// Request is a decision request: the question (by digest), the options, the rule and
// the panel, signed by the origin node. Its hash, DecisionHash, is the decision's id.
type Request struct {
	V              string `json:"v"`
	Nonce          string `json:"nonce"`           // 32 lowercase hex digits (16 random bytes)
	Origin         string `json:"origin"`          // node id of the origin, who signs
	Issued         string `json:"issued"`          // oar.FormatTime
	Deadline       string `json:"deadline"`        // oar.FormatTime, after Issued, within MaxDecisionLifetime
	Classification string `json:"classification"`  // classification of the question (oar.Classifications)
	QuestionDigest string `json:"question_digest"` // QuestionDigest of the question text
	// Options are 2 to MaxOptions labels, distinct even when compared without regard
	// to case. A label is 1 to MaxOptionLen bytes of UTF-8 without control characters,
	// commas or surrounding white space, and is neither Abstain nor begins with VetoPrefix.
	Options []string            `json:"options"`
	Rule    Rule                `json:"rule"`
	Panel   Panel               `json:"panel"`
	Sig     *identity.Signature `json:"sig,omitempty"`

	raw  []byte // the bytes parsed, set by ParseRequest
	hash string // DecisionHash(raw)
}

// SealRequest fills V and, when empty, Nonce, checks every member, signs the request
// with key (the origin's) and returns its canonical bytes. Parse them with
// ParseRequest to have the Request that Count and Verify take.
func SealRequest(key *identity.PrivateKey, r Request) ([]byte, error) {
	r.V = RequestVersion
	if r.Nonce == "" {
		var n [16]byte
		rand.Read(n[:]) // never fails (crypto/rand, Go 1.24 and later)
		r.Nonce = hex.EncodeToString(n[:])
	}
	r.Sig, r.raw, r.hash = nil, nil, ""
	return seal(key, &r, func(s *identity.Signature) { r.Sig = s })
}

// ParseRequest decodes a request strictly: canonical bytes with exactly the members of
// decision-request/1, every member valid, a signature present. It checks the form
// only; Verify checks the signature.
func ParseRequest(b []byte) (*Request, error) {
	var r Request
	if err := parse(b, &r); err != nil {
		return nil, err
	}
	r.raw = slices.Clone(b)
	r.hash = DecisionHash(b)
	return &r, nil
}

// Verify checks that pub is the origin's key and that it signed the request.
func (r *Request) Verify(pub identity.PublicKey) error { return verify(r, pub) }

// Bytes returns the request's signed bytes, as parsed (nil for a Request that
// ParseRequest did not make).
func (r *Request) Bytes() []byte { return r.raw }

// Hash returns the decision hash, the decision's id ("" for a Request that
// ParseRequest did not make).
func (r *Request) Hash() string { return r.hash }

// DecisionHash names a request by its signed bytes, in lowercase hex:
// SHA-256(DecisionHashDomain || 0x0A || request). Ballots and outcomes cite it.
func DecisionHash(request []byte) string { return domainHash(DecisionHashDomain, request) }

// QuestionDigest is the SHA-256 of the question's UTF-8 text, in lowercase hex.
func QuestionDigest(question string) string { return sha256Hex([]byte(question)) }

// Seat returns the member of the panel a ballot from node for brain fills (see
// Count), or ok false when the panel has none for it.
func (r *Request) Seat(node, brain string) (seat string, ok bool) {
	return seatOf(r.Panel.Members, r.Origin, node, brain)
}

// Vetoer reports whether seat may veto under the request's rule.
func (r *Request) Vetoer(seat string) bool {
	return r.Rule.Name == RuleVeto && slices.Contains(r.Rule.Vetoers, seat)
}

// Choices lists what the member in seat may choose: the options, then VetoPrefix and
// each option if the member is a vetoer, then Abstain.
func (r *Request) Choices(seat string) []string {
	out := slices.Clone(r.Options)
	if r.Vetoer(seat) {
		for _, o := range r.Options {
			out = append(out, VetoPrefix+o)
		}
	}
	return append(out, Abstain)
}

func (*Request) format() format {
	return format{"decision request", RequestVersion, RequestDomain, MaxRequestSize, "MaxRequestSize"}
}
func (r *Request) signature() *identity.Signature { return r.Sig }
func (r *Request) signer() string                 { return r.Origin }
func (r *Request) signedBytes() ([]byte, error) {
	c := *r
	c.Sig = nil
	return encode(&c)
}

func (r *Request) validate() error {
	if r.V != RequestVersion {
		return fmt.Errorf("decision request v is %q, want %q", short(r.V), RequestVersion)
	}
	if len(r.Nonce) != 32 || !isLowerHex(r.Nonce) {
		return fmt.Errorf("decision request nonce %q is not 32 lowercase hex digits", short(r.Nonce))
	}
	if !validNodeID(r.Origin) {
		return fmt.Errorf("decision request origin %q is not a node id", short(r.Origin))
	}
	issued, err := parseTime("decision request issued", r.Issued)
	if err != nil {
		return err
	}
	deadline, err := parseTime("decision request deadline", r.Deadline)
	if err != nil {
		return err
	}
	if !deadline.After(issued) {
		return fmt.Errorf("decision request deadline %s is not after issued %s", r.Deadline, r.Issued)
	}
	if d := deadline.Sub(issued); d > MaxDecisionLifetime {
		return fmt.Errorf("decision request runs for %v, longer than the limit of %v (MaxDecisionLifetime)", d, MaxDecisionLifetime)
	}
	if oar.ClassificationRank(r.Classification) < 0 {
		return fmt.Errorf("decision request classification %q is not one of %s", short(r.Classification), strings.Join(oar.Classifications, ", "))
	}
	if !isHash(r.QuestionDigest) {
		return fmt.Errorf("decision request question_digest %q is not a SHA-256 in 64 lowercase hex digits", short(r.QuestionDigest))
	}
	if err := CheckOptions(r.Options); err != nil {
		return fmt.Errorf("decision request %v", err)
	}
	if e := r.Panel.check(); e != nil {
		return fmt.Errorf("decision request %v", e.under("panel"))
	}
	if e := r.Rule.check(&r.Panel); e != nil {
		return fmt.Errorf("decision request %v", e.under("rule"))
	}
	for i, s := range r.Panel.Members {
		if m, _ := ParseMember(s); m.Node == r.Origin {
			return fmt.Errorf("decision request panel.members[%d]: %q is the origin's own brain: write it %q", i, short(s), m.Brain)
		}
	}
	weighted := r.Rule.Name == RuleWeighted
	for _, m := range r.Panel.Members {
		if _, has := r.Panel.Weights[m]; has != weighted {
			if weighted {
				return fmt.Errorf("decision request panel.weights: member %q has no weight; under the %s rule every member has one", short(m), RuleWeighted)
			}
			return fmt.Errorf("decision request panel.weights: only the %s rule takes weights", RuleWeighted)
		}
	}
	return nil
}

// CheckOptions checks a decision's options: 2 to MaxOptions labels, each valid, no
// two equal without regard to case.
func CheckOptions(options []string) error {
	if n := len(options); n < 2 || n > MaxOptions {
		return fmt.Errorf("options: %d given; a decision has 2 to %d (MaxOptions)", n, MaxOptions)
	}
	for i, o := range options {
		name := "options[" + strconv.Itoa(i) + "]"
		if err := checkLabel(name, o, MaxOptionLen, "MaxOptionLen"); err != nil {
			return err
		}
		switch {
		case strings.EqualFold(o, Abstain):
			return fmt.Errorf("%s: %q is reserved for abstentions", name, o)
		case len(o) >= len(VetoPrefix) && strings.EqualFold(o[:len(VetoPrefix)], VetoPrefix):
			return fmt.Errorf("%s: %q begins with %q, which marks vetoes", name, short(o), VetoPrefix)
		case strings.Contains(o, ","):
			return fmt.Errorf("%s: %q holds a comma, which separates options on the command line", name, short(o))
		}
		for j := range i {
			if strings.EqualFold(options[j], o) {
				return fmt.Errorf("%s: %q repeats options[%d] %q", name, short(o), j, short(options[j]))
			}
		}
	}
	return nil
}
