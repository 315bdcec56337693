package deliberate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/decision"
	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// Contribution is a request for one member's ballot, from this node's own decision or
// from a peer's decision call: both take the same path.
type Contribution struct {
	// Request is the signed decision request, exactly as the origin sealed it.
	Request []byte
	// Question is the question's text; its digest is the request's question_digest.
	Question string
	// Brain is this node's brain asked for its ballot.
	Brain string
	// Principal is on whose behalf the origin asks: the origin's own principal, or, for
	// a peer, the principal its envelope vouches for (fleetapi qualifies it).
	Principal *policy.Principal
	// Peer is the peer's verified envelope when a peer asked; nil at the origin. A peer
	// of another institution asks only under its principal's consent grant, verified by
	// the caller (fleetapi) and given in Peer.Grant.
	Peer *invoke.PeerCall
	// Classification is the classification the call states (the envelope's); it must
	// be the request's. Empty at the origin.
	Classification string
}

// Contributed is a member's signed ballot with what travels beside it.
type Contributed struct {
	Ballot    []byte       // the ballot exactly as signed
	Rationale string       // its rationale, whose digest the ballot holds
	Receipt   *oar.Receipt // of the decision.ballot record that holds it
	// Invocation is the record hash of the brain.invoke record of the brain's run.
	Invocation string
}

// Contribute makes one member's ballot: it checks the request (its origin's signature,
// the question's digest, the classification, the deadline, this node's seat on the
// panel, the brain's arbitration flag, for a peer of another institution the consent
// grant it asks under (checkGrant), and that this brain has not answered this decision
// before), runs the brain through the pipeline asking for a structured answer
// (decision.ResponseFormat), reads the answer into a ballot — an abstention when the
// answer does not parse or the pipeline refused or failed — signs it, records it in
// decision.ballot and returns it with the record's receipt. A request that does not
// pass its checks is refused with an *invoke.Error and nothing is recorded here (the
// fleet API records refusals at its door).
func (s *Service) Contribute(ctx context.Context, c Contribution) (*Contributed, error) {
	id := s.cfg.Identity
	req, err := decision.ParseRequest(c.Request)
	if err != nil {
		return nil, &invoke.Error{Code: invoke.CodeInvalidPayload, Message: "decision request: " + err.Error()}
	}
	if c.Peer != nil && req.Origin != c.Peer.Origin {
		return nil, &invoke.Error{Code: invoke.CodeEnvelopeForged, Message: fmt.Sprintf("the decision request is %s's, not the calling node's", req.Origin)}
	}
	origin, ok := s.directory(req.Origin)
	if !ok {
		return nil, &invoke.Error{Code: invoke.CodePeerUntrusted, Message: fmt.Sprintf("no enrolled key is known for the decision's origin %s", req.Origin)}
	}
	if err := req.Verify(origin.Key); err != nil {
		return nil, &invoke.Error{Code: invoke.CodeEnvelopeForged, Message: "the decision request's signature does not verify"}
	}
	switch {
	case len(c.Question) > decision.MaxQuestionLen:
		return nil, &invoke.Error{Code: invoke.CodeInvalidPayload, Message: fmt.Sprintf("the question is %d bytes, more than %d (decision.MaxQuestionLen)", len(c.Question), decision.MaxQuestionLen)}
	case decision.QuestionDigest(c.Question) != req.QuestionDigest:
		return nil, &invoke.Error{Code: invoke.CodePayloadMismatch, Message: "the question does not match the request's question_digest"}
	case c.Classification != "" && c.Classification != req.Classification:
		return nil, &invoke.Error{Code: invoke.CodeInvalidPayload, Message: fmt.Sprintf("the call is marked %s but the decision request %s", c.Classification, req.Classification)}
	}
	deadline, _ := time.Parse(time.RFC3339Nano, req.Deadline) // checked by ParseRequest
	now := s.cfg.Now()
	if !now.Before(deadline) {
		return nil, &invoke.Error{Code: invoke.CodeEnvelopeRefused, Message: fmt.Sprintf("the decision's deadline %s has passed", req.Deadline)}
	}
	seat, ok := req.Seat(id.ID(), c.Brain)
	if !ok {
		return nil, &invoke.Error{Code: invoke.CodeInvalidPayload, Message: fmt.Sprintf("the panel has no seat for brain %s on node %s", c.Brain, id.ID())}
	}
	b, ok := s.cfg.Brains.Get(c.Brain)
	if !ok {
		return nil, &invoke.Error{Code: invoke.CodeModelNotFound, Message: fmt.Sprintf("this node has no brain %q", c.Brain)}
	}
	if !b.Arbitration {
		return nil, &invoke.Error{Code: invoke.CodePolicyDenied, Message: fmt.Sprintf("brain %s may not sit on a panel: its brain file does not say arbitration: true", c.Brain)}
	}
	if c.Peer != nil && origin.Institution != id.Cert.RootID {
		if err := s.checkGrant(c, req, origin.Institution, now); err != nil {
			return nil, err
		}
	}
	if ok, full := s.answered.take(req.Hash(), c.Brain, deadline, now); !ok {
		if full {
			return nil, &invoke.Error{Code: invoke.CodeEnvelopeRefused, Message: fmt.Sprintf("this node holds %d unanswered decisions (MaxAnswered); retry later", MaxAnswered)}
		}
		return nil, &invoke.Error{Code: invoke.CodeEnvelopeRefused, Message: fmt.Sprintf("brain %s has already answered decision %.16s…", c.Brain, req.Hash())}
	}

	choices := req.Choices(seat)
	inv := &invoke.Invocation{
		Principal: c.Principal, Peer: c.Peer, Model: c.Brain, Classification: req.Classification,
		Messages: []invoke.Message{{Role: "user", Content: decision.Prompt(c.Question, choices)}},
	}
	if b.Allows("response_format") {
		// A brain that does not let callers set response_format is asked in words
		// only (decision.Prompt): its file governs what reaches its model.
		if inv.Params.ResponseFormat, err = decision.ResponseFormat(choices); err != nil {
			return nil, err
		}
	}
	cctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	defer cancel()
	out := &collector{}
	var answer decision.Answer
	if err := s.cfg.Pipeline.Chat(cctx, inv, out); err != nil {
		answer = decision.FailedAnswer(failure(err))
	} else {
		answer = decision.ParseAnswer(out.text(), choices)
	}
	ballot := answer.Ballot(req, id.ID(), c.Brain, modelName(s.cfg.Pipeline.ModelOf(c.Brain)), s.cfg.Now())
	signed, err := decision.SealBallot(id.Key, ballot)
	if err != nil {
		return nil, fmt.Errorf("seal ballot: %w", err)
	}
	rec := &oar.Record{
		Tenant: c.Principal.Tenant, Actor: oar.Actor{ID: c.Principal.ID, Clearance: c.Principal.Clearance.String()},
		Action: oar.ActionDecisionBallot, Resource: "decision/" + req.Hash(), Classification: req.Classification,
		Decision: inv.Decision,
		Inputs:   []oar.Digest{{Name: "question", SHA256: req.QuestionDigest, Size: int64(len(c.Question))}},
		Outputs:  []oar.Digest{oar.DigestOf("ballot", signed), oar.DigestOf("rationale", []byte(answer.Rationale))},
		Parties:  []json.RawMessage{c.Request, signed},
		Detail:   mustJSON(ballotDetail{Decision: req.Hash(), Seat: seat, Brain: c.Brain, Choice: ballot.Choice, Abstention: ballot.Abstention, Consent: grantID(c.Peer)}),
	}
	if inv.Record != "" {
		rec.Links = []oar.Link{{Rel: "invocation", RecordHash: inv.Record}}
	}
	rc, _, err := s.cfg.Ledger.Append(context.WithoutCancel(ctx), rec)
	if err != nil {
		s.cfg.Log.Error("ballot record", "decision", req.Hash(), "brain", c.Brain, "err", err)
		return nil, &invoke.Error{Code: invoke.CodeAuditFailed, Message: "the audit ledger could not record the ballot, so none is given"}
	}
	return &Contributed{Ballot: signed, Rationale: answer.Rationale, Receipt: rc, Invocation: inv.Record}, nil
}

// checkGrant holds a decision call from another institution to the consent grant it
// came under. The question is the asking principal's data: it comes to this node only
// under that principal's grant for this node's institution (and node, if it names one),
// this brain, the principal's tenant and the request's classification — the grant the
// fleet API verified against its origin's keys (consent.Verify) and handed on in
// c.Peer.Grant. Here it is held to the signed request itself.
func (s *Service) checkGrant(c Contribution, req *decision.Request, institution string, now time.Time) error {
	id := s.cfg.Identity
	g := c.Peer.Grant
	if g == nil {
		return &invoke.Error{Code: invoke.CodeConsentRequired, Message: fmt.Sprintf(
			"the decision's origin %s is of another institution (%s): its question comes only under a consent grant of its principal's for brain %s on this node, and the call carries none",
			req.Origin, institution, c.Brain)}
	}
	level, err := policy.ParseLevel(req.Classification)
	if err != nil {
		return &invoke.Error{Code: invoke.CodeInvalidPayload, Message: err.Error()}
	}
	// A principal of another institution works here in its tenant qualified by its
	// institution's root (fleetapi); the grant names the tenant at the origin.
	err = g.Check(consent.Use{Institution: id.Cert.RootID, Node: id.ID(), From: req.Origin,
		Tenant: strings.TrimSuffix(c.Principal.Tenant, "@"+institution), Action: consent.ActionInvoke, Brain: c.Brain,
		Classification: level, Time: now})
	if err == nil {
		return nil
	}
	var ce *consent.Error
	if errors.As(err, &ce) {
		return &invoke.Error{Code: invoke.Code(ce.Code), Message: ce.Message}
	}
	return fmt.Errorf("checking the decision call's consent grant: %w", err)
}

// ballotDetail is the detail of a decision.ballot record.
type ballotDetail struct {
	Decision   string `json:"decision"`
	Seat       string `json:"seat"`
	Brain      string `json:"brain"`
	Choice     string `json:"choice"`
	Abstention string `json:"abstention,omitempty"`
	// Consent is the id of the consent grant a call from another institution came under.
	Consent string `json:"consent,omitempty"`
}

func grantID(p *invoke.PeerCall) string {
	if p == nil || p.Grant == nil {
		return ""
	}
	return p.Grant.ID
}

// failure says why a brain gave no answer, as a failed abstention's rationale.
func failure(err error) string {
	var e *invoke.Error
	if errors.As(err, &e) {
		return fmt.Sprintf("the brain gave no answer (%s): %s", e.Code, e.Message)
	}
	return "the brain gave no answer: the node failed to run it"
}

// modelName makes a backend model name fit a ballot's model member: printable ASCII
// without spaces, at most decision.MaxModelLen bytes.
func modelName(m string) string {
	m = strings.Map(func(r rune) rune {
		if r <= ' ' || r > '~' {
			return '_'
		}
		return r
	}, m)
	if len(m) > decision.MaxModelLen {
		m = m[:decision.MaxModelLen]
	}
	if m == "" {
		return "unnamed"
	}
	return m
}

// collector gathers a member's answer.
type collector struct {
	content strings.Builder
}

func (c *collector) Start(string, *oar.Receipt) error { return nil }
func (c *collector) Delta(s string) error {
	c.content.WriteString(s)
	return nil
}
func (c *collector) Finish(r *invoke.Result) error {
	if c.content.Len() == 0 {
		c.content.WriteString(r.Content)
	}
	return nil
}

func (c *collector) text() string { return c.content.String() }

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
