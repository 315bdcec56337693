package deliberate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
	"unicode/utf8"

	"github.com/sios-project/sios/decision"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// The decision call: an origin asks a peer for one member's ballot by POSTing a
// fleet.CallRequest to CallPath on the peer's fleet API. The envelope (signed by the
// origin) names the brain, the principal and the classification, and commits to the
// payload — the question and the signed decision request — by its digest. To a peer of
// another institution it is fed-call/2 and carries the principal's consent grant for
// that brain there, as a remote call's envelope does; else fed-call/1. The peer checks the envelope as it checks a remote call (fleetapi), then the
// request (Contribute), and answers a CallAnswer: the ballot as signed, its rationale,
// and the receipt of its own decision.ballot record. A call refused before a ballot
// was made is answered as a remote call's refusal is (fleet.CallResponse with Error).

// CallPath is where a node serves its peers' decision calls.
const CallPath = "/fleet/v1/decide"

// CallPayload is a decision call's payload, canonical JSON (RFC 8785) with exactly these
// members.
type CallPayload struct {
	Question string          `json:"question"`
	Request  json.RawMessage `json:"request"`
}

// CallAnswer is a contributor's answer to a decision call.
type CallAnswer struct {
	Ballot    json.RawMessage `json:"ballot"`
	Rationale string          `json:"rationale"`
	Receipt   *oar.Receipt    `json:"receipt"`
	// Invocation is the record hash of the contributor's brain.invoke record.
	Invocation string `json:"invocation,omitempty"`
}

// ParseCallPayload reads a decision call's payload strictly: at most MaxCallPayload
// bytes of canonical JSON with exactly the members of CallPayload, the question valid
// UTF-8 within decision.MaxQuestionLen, the request at most decision.MaxRequestSize
// bytes. It checks the form only: Contribute checks the request.
func ParseCallPayload(b []byte) (*CallPayload, error) {
	if len(b) > MaxCallPayload {
		return nil, fmt.Errorf("decision call payload is %d bytes, more than %d (MaxCallPayload)", len(b), MaxCallPayload)
	}
	var p CallPayload
	if err := jcs.Unmarshal(b, &p); err != nil {
		return nil, fmt.Errorf("decision call payload is not canonical JSON with exactly question and request: %v", err)
	}
	switch {
	case p.Question == "" || len(p.Question) > decision.MaxQuestionLen || !utf8.ValidString(p.Question):
		return nil, fmt.Errorf("decision call question must be 1 to %d bytes of UTF-8 (decision.MaxQuestionLen)", decision.MaxQuestionLen)
	case len(p.Request) == 0 || len(p.Request) > decision.MaxRequestSize:
		return nil, fmt.Errorf("decision call request must be 1 to %d bytes (decision.MaxRequestSize)", decision.MaxRequestSize)
	}
	return &p, nil
}

// ask asks one member for its ballot: through Contribute for a brain of this node, by
// a decision call for a peer's.
func (s *Service) ask(ctx context.Context, pr *policy.Principal, req *decision.Request, question string, st *seat) reply {
	r := reply{seat: st}
	if st.peer == nil {
		c, err := s.Contribute(ctx, Contribution{Request: req.Bytes(), Question: question, Brain: st.brain, Principal: pr})
		r.received = s.cfg.Now()
		if err != nil {
			r.err = oneLine(err)
			return r
		}
		r.c = c
		return r
	}
	c, err := s.call(ctx, pr, req, question, st)
	r.received = s.cfg.Now()
	if err != nil {
		r.err = oneLine(err)
		s.cfg.Log.Warn("decision call", "decision", req.Hash(), "peer", st.node, "brain", st.brain, "err", err)
		return r
	}
	r.c = c
	return r
}

// call sends one decision call to a peer and reads its answer. The ballot is not
// checked here: Count checks every ballot alike.
func (s *Service) call(ctx context.Context, pr *policy.Principal, req *decision.Request, question string, st *seat) (*Contributed, error) {
	f := s.fleetOf()
	if f == nil {
		return nil, errors.New("the node left the fleet")
	}
	id := s.cfg.Identity
	payload, err := jcs.Marshal(CallPayload{Question: question, Request: req.Bytes()})
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(payload)
	env, err := fleet.SealEnvelope(id.Key, fleet.Envelope{
		Origin: id.ID(), Target: st.node, Issued: oar.FormatTime(s.cfg.Now()), Expires: req.Deadline,
		Principal: pr.ID, Tenant: pr.Tenant, Clearance: pr.Clearance.String(), Classification: req.Classification,
		Brain: st.brain, PayloadDigest: hex.EncodeToString(sum[:]), Consent: grantOf(st),
	})
	if err != nil {
		return nil, fmt.Errorf("seal envelope: %v", err)
	}
	body, err := fleet.Marshal(fleet.CallRequest{Envelope: env, Payload: payload})
	if err != nil {
		return nil, err
	}
	resp, err := f.Post(ctx, st.node, st.peer.Addr, CallPath, body)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
			return nil, errors.New("no answer by the deadline")
		}
		return nil, fmt.Errorf("peer could not be reached: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, MaxCallAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("reading the answer: %v", err)
	}
	if len(raw) > MaxCallAnswer {
		return nil, fmt.Errorf("the answer is more than %d bytes (MaxCallAnswer)", MaxCallAnswer)
	}
	if resp.StatusCode != http.StatusOK {
		var cr fleet.CallResponse
		if json.Unmarshal(raw, &cr) == nil && cr.Error != nil {
			return nil, fmt.Errorf("peer refused the call (%s): %s", cut(cr.Error.Code, 64), cr.Error.Message)
		}
		return nil, fmt.Errorf("peer answered %d", resp.StatusCode)
	}
	var ans CallAnswer
	if err := json.Unmarshal(raw, &ans); err != nil || len(ans.Ballot) == 0 {
		return nil, errors.New("the answer is not a ballot")
	}
	c := &Contributed{Ballot: ans.Ballot, Rationale: ans.Rationale, Invocation: ans.Invocation}
	// The receipt says where the peer recorded its ballot; one that does not verify
	// under the peer's keys is not repeated (the ballot itself is checked by Count).
	if key, ok := s.cfg.FleetLog.Key(st.node); ok && ans.Receipt != nil {
		if _, err := ans.Receipt.Verify(key, nil); err == nil {
			c.Receipt = ans.Receipt
		} else {
			s.cfg.Log.Warn("decision call: the ballot's receipt does not verify", "peer", st.node, "err", err)
		}
	}
	return c, nil
}

// grantOf is the consent grant a seat's call carries (fed-call/2), exactly as its origin
// signed it and its use was recorded; nil within the institution (fed-call/1).
func grantOf(st *seat) json.RawMessage {
	if st.grant == nil {
		return nil
	}
	return st.grant.Raw
}

// reply is what came of asking one member.
type reply struct {
	seat     *seat
	c        *Contributed // nil when no ballot came
	err      string       // why not
	received time.Time
}

// oneLine is an error as one line of at most MaxReasonLen bytes, for a record.
func oneLine(err error) string { return cut(err.Error(), MaxReasonLen) }

// cut makes s one line of valid UTF-8 of at most n bytes, ending in "…" when cut.
func cut(s string, n int) string {
	var b []byte
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			r = ' '
		}
		if len(b)+utf8.RuneLen(r) > n-len("…") && len(s) > n {
			return string(b) + "…"
		}
		b = utf8.AppendRune(b, r)
	}
	return string(b)
}
