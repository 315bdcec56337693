package fleetapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/sios-project/sios/api"
	"github.com/sios-project/sios/deliberate"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/policy"
)

// A peer's decision call (POST deliberate.CallPath): a request for one member's ballot.
// The envelope is checked exactly as a remote call's is (invoke.go) — the connecting
// peer's own, signed by its enrolled key, over this payload, from an origin whose feed
// has not forked, within the rate this node serves peers, never seen before — then the
// payload's form (deliberate.ParseCallPayload), the consent grant a call from another
// institution must carry (callGrant, as a remote call's), and the decision request
// itself by Contribute, which runs the brain through this node's pipeline under this node's
// policy, as an invocation from a peer. Refusals are audited (fleet.refuse-call) and
// answered without a ballot; a ballot is signed and recorded by this node.

// Contributor makes a member's ballot for a peer's decision (deliberate.Service).
type Contributor interface {
	Contribute(ctx context.Context, c deliberate.Contribution) (*deliberate.Contributed, error)
}

// maxDecideRequest bounds a decision call's body: the payload, the envelope (fed-call/2
// with its consent grant, the larger) and the JSON around them.
const maxDecideRequest = deliberate.MaxCallPayload + fleet.MaxEnvelopeSize2 + 1024

func (a *API) serveDecide(w http.ResponseWriter, r *http.Request) {
	ans, refused, retry := a.decide(r)
	if refused != nil {
		b, err := fleet.Marshal(refused)
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		if retry > 0 {
			w.Header().Set("Retry-After", fmt.Sprint(int((retry+time.Second-1)/time.Second)))
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(refused.Status)
		w.Write(b)
		return
	}
	b, err := fleet.Marshal(ans)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func (a *API) decide(r *http.Request) (*deliberate.CallAnswer, *fleet.CallResponse, time.Duration) {
	cert, err := a.peer(r)
	if err != nil {
		return nil, a.refusal("", nil, invoke.CodePeerUntrusted, oneLine(err), oneLine(err)), 0
	}
	if a.cfg.Decisions == nil {
		return nil, a.refusal(cert.NodeID, nil, invoke.CodeEnvelopeRefused, "this node takes no part in decisions", "decisions are not served"), 0
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxDecideRequest+1))
	if err != nil {
		return nil, &fleet.CallResponse{Status: http.StatusBadRequest}, 0
	}
	var rq fleet.CallRequest
	if len(raw) > maxDecideRequest || json.Unmarshal(raw, &rq) != nil || rq.Envelope == nil || rq.Payload == nil {
		return nil, a.refusal(cert.NodeID, nil, invoke.CodeMalformedCall, "the call is not {envelope, payload} JSON within the size limits", "malformed decision call"), 0
	}
	env, err := fleet.ParseEnvelope(rq.Envelope)
	if err != nil {
		return nil, a.refusal(cert.NodeID, rq.Envelope, invoke.CodeInvalidEnvelope, err.Error(), err.Error()), 0
	}
	if env.Origin != cert.NodeID {
		return nil, a.refusal(cert.NodeID, rq.Envelope, invoke.CodeEnvelopeForged, "the envelope's origin is not the connecting node",
			fmt.Sprintf("envelope names origin %s but the connection is from %s", env.Origin, cert.NodeID)), 0
	}
	pub, ok := a.cfg.FleetLog.Key(cert.NodeID)
	if !ok {
		pub, _, err = cert.Verify()
	}
	if err == nil {
		err = env.Verify(pub)
	}
	if err != nil {
		return nil, a.refusal(cert.NodeID, rq.Envelope, invoke.CodeEnvelopeForged, "the envelope's signature does not verify", err.Error()), 0
	}
	if sha256Hex(rq.Payload) != env.PayloadDigest {
		return nil, a.refusal(cert.NodeID, rq.Envelope, invoke.CodePayloadMismatch, "the payload does not match the envelope's payload_digest",
			"payload does not match payload_digest"), 0
	}
	p, err := deliberate.ParseCallPayload(rq.Payload)
	if err != nil {
		return nil, a.refusal(cert.NodeID, rq.Envelope, invoke.CodeInvalidPayload, err.Error(), "payload: "+err.Error()), 0
	}
	if v, ok := a.cfg.FleetLog.NodeView(env.Origin); ok && v.Forked {
		return nil, a.refusal(cert.NodeID, rq.Envelope, invoke.CodeOriginForked, "the origin's federation feed has forked: this node takes no work from it",
			"the origin's federation feed has forked"), 0
	}
	// The question is the asking principal's data: from another institution, only under
	// its grant for this node and this brain, as a remote call.
	grant, refused := a.callGrant(cert, env, rq.Envelope)
	if refused != nil {
		return nil, refused, 0
	}
	perMin := a.cfg.PeerRequestsPerMinute
	if ok, wait := a.limits.Take("fleet/peers", perMin, max(1, perMin/10)); !ok {
		return nil, a.refusal(cert.NodeID, rq.Envelope, invoke.CodePeerRateLimited,
			fmt.Sprintf("this node serves at most %d calls a minute from peers (its limits record); retry after %s", perMin, wait.Round(time.Millisecond)),
			"over the peers' rate limit"), wait
	}
	// Last, so that only a call that would be served uses up its nonce.
	if err := a.replay.Check(env, a.cfg.Identity.ID(), time.Now()); err != nil {
		return nil, a.refusal(cert.NodeID, rq.Envelope, invoke.CodeEnvelopeRefused, err.Error(), err.Error()), 0
	}
	got, err := a.cfg.Decisions.Contribute(r.Context(), deliberate.Contribution{
		Request: p.Request, Question: p.Question, Brain: env.Brain, Principal: a.peerPrincipal(cert, env),
		Peer:           &invoke.PeerCall{Origin: env.Origin, Envelope: rq.Envelope, Call: fleet.CallHash(rq.Envelope), Grant: grant},
		Classification: env.Classification,
	})
	if err != nil {
		var e *invoke.Error
		if !errors.As(err, &e) {
			a.cfg.Log.Error("decision call", "origin", env.Origin, "err", err)
			e = &invoke.Error{Code: invoke.CodeInternal, Message: "the peer failed to make a ballot"}
		}
		if e.Code == invoke.CodeAuditFailed || e.Code == invoke.CodeInternal {
			return nil, refusedWithout(e), 0
		}
		return nil, a.refusal(cert.NodeID, rq.Envelope, e.Code, e.Message, "decision: "+e.Message), 0
	}
	return &deliberate.CallAnswer{Ballot: got.Ballot, Rationale: got.Rationale, Receipt: got.Receipt, Invocation: got.Invocation}, nil, 0
}

// peerPrincipal is the principal a peer's envelope vouches for, as this node serves it:
// its clearance no higher than the origin's own accreditation, and, from another
// institution, in a tenant qualified by that institution's root (as serve does).
func (a *API) peerPrincipal(cert *identity.Certificate, env *fleet.Envelope) *policy.Principal {
	clearance, _ := policy.ParseLevel(env.Clearance)
	originPosture := policy.Official
	if v, ok := a.cfg.FleetLog.NodeView(env.Origin); ok {
		if l, err := policy.ParseLevel(v.Posture); err == nil {
			originPosture = l
		}
	}
	tenant := env.Tenant
	if cert.RootID != a.cfg.Identity.Cert.RootID {
		tenant += "@" + cert.RootID
	}
	return &policy.Principal{ID: env.Principal + "@" + env.Origin, Tenant: tenant, Clearance: min(clearance, originPosture)}
}

// refusedWithout answers a failure that is this node's own (not the call's fault)
// without auditing it as a refusal at the door.
func refusedWithout(e *invoke.Error) *fleet.CallResponse {
	status, typ := api.StatusOf(e.Code)
	return &fleet.CallResponse{Status: status, Error: &fleet.CallError{Status: status, Type: typ, Code: string(e.Code), Message: e.Message}}
}
