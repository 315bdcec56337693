package fleetapi

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/policy"
)

// A governed memory search (POST fleet.MemorySearchPath, docs/consent.md section 10.4):
// a peer asks, on behalf of one of its principals and under a memory.read grant this
// node made naming her, for what the grant releases. This node checks, in order,
// everything a remote call's door checks (the peer, the envelope's form and signature,
// the payload's digest and form, the origin's feed), then the grant (its form, this
// node's signature, its audience — the peer's institution, node and principal — its
// subjects and expiry), then the peers' rate and the replay guard; the pipeline then
// decides the release (ceiling, policy, and the grant's use, last) and records it. The
// answer is a signed reply whose output holds what was released.

func (a *API) serveMemorySearch(w http.ResponseWriter, r *http.Request) {
	resp, retry := a.memorySearch(r)
	fleet.WriteCallResponse(w, resp, retry)
}

func (a *API) memorySearch(r *http.Request) (*fleet.CallResponse, time.Duration) {
	cert, err := a.peer(r)
	if err != nil {
		return a.refusal("", nil, invoke.CodePeerUntrusted, oneLine(err), oneLine(err)), 0
	}
	rq, env, refused := a.readCall(r, cert, fleet.MaxSearchRequest)
	if refused != nil {
		return refused, 0
	}
	if env.Brain != invoke.HolderBrain || env.Classification != policy.Official.String() {
		msg := fmt.Sprintf("a memory search names brain %s and classification %s", invoke.HolderBrain, policy.Official)
		return a.refusal(cert.NodeID, rq.Envelope, invoke.CodeInvalidEnvelope, msg, msg), 0
	}
	sp, err := invoke.ParseSearchPayload(rq.Payload)
	if err != nil {
		return a.refusal(cert.NodeID, rq.Envelope, invoke.CodeInvalidPayload, err.Error(), "payload: "+err.Error()), 0
	}
	if refused := a.forked(cert, env, rq.Envelope); refused != nil {
		return refused, 0
	}
	clearance, _ := policy.ParseLevel(env.Clearance)
	id := a.cfg.Identity
	// The tenant searched is the grantor's: the grant's own.
	g, err := a.verifyGrant(cert, env, func(g *consent.Grant) consent.Use {
		return consent.Use{Institution: cert.RootID, Node: env.Origin, Principal: env.Principal + "@" + cert.RootID, From: id.ID(),
			Tenant: g.Grantor.Tenant, Action: consent.ActionMemoryRead, Subjects: sp.Subjects, Classification: policy.Official, Time: time.Now()}
	})
	if err != nil {
		return a.refusal(cert.NodeID, rq.Envelope, invoke.Code(consent.CodeOf(err)), oneLine(err), oneLine(err)), 0
	}
	if refused, wait := a.peerRate(cert, rq.Envelope); refused != nil {
		return refused, wait
	}
	// Last of the door's checks, so that only a call that would be taken uses up its nonce.
	if err := a.replay.Check(env, id.ID(), time.Now()); err != nil {
		return a.refusal(cert.NodeID, rq.Envelope, invoke.CodeEnvelopeRefused, err.Error(), err.Error()), 0
	}
	return a.release(r.Context(), cert, env, rq.Envelope, g, sp, clearance)
}

// release has the pipeline decide and make the release, and signs the reply.
func (a *API) release(ctx context.Context, cert *identity.Certificate, env *fleet.Envelope, envelope []byte, g *consent.Grant, sp *invoke.SearchPayload, clearance policy.Level) (*fleet.CallResponse, time.Duration) {
	var posture policy.Level
	if v, ok := a.cfg.FleetLog.NodeView(env.Origin); ok {
		posture, _ = policy.ParseLevel(v.Posture)
	}
	call := fleet.CallHash(envelope)
	rel, err := a.cfg.Pipeline.Release(ctx, &invoke.ReleaseRequest{
		Envelope: envelope, Call: call, Origin: env.Origin, Institution: cert.RootID, Posture: posture,
		Principal: env.Principal, Tenant: env.Tenant, Clearance: clearance, Grant: g, Search: sp,
	})
	if rel == nil {
		rel = &invoke.Released{}
	}
	return a.answer(env, call, rel.Decision, rel.Record, rel.Output, err)
}
