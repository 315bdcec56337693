package fleetapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/sios-project/sios/api"
	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// A peer's remote call (POST fleet.InvokePath). The envelope is checked in full before
// anything runs: it is the connecting peer's own, signed by its enrolled key, over this
// payload, from an origin whose feed has not forked, within the rate this node serves
// peers, and never seen before. The payload then passes the rules of this node's own
// API, and the call runs through this node's pipeline as an invocation from a peer,
// under this node's policy. The answer is signed.

// serveInvoke answers every call with a CallResponse: a signed reply once the envelope
// verified, else an unsigned refusal naming why.
func (a *API) serveInvoke(w http.ResponseWriter, r *http.Request) {
	resp, retry := a.invoke(r)
	fleet.WriteCallResponse(w, resp, retry)
}

// refusal is a call refused at the door, before the pipeline: audited, and answered
// without a signed reply.
func (a *API) refusal(peer string, envelope []byte, code invoke.Code, msg, reason string) *fleet.CallResponse {
	resource := "peer/" + peer
	if peer == "" {
		resource = "peer/unknown"
	}
	policies := []string{"fleet-envelope"}
	if strings.HasPrefix(string(code), "consent_") {
		policies = []string{"consent"}
	}
	rec := &oar.Record{
		Actor: oar.Actor{ID: "node"}, Action: oar.ActionFleetRefuseCall, Resource: resource,
		Decision: &oar.Decision{Effect: "deny", Policies: policies},
		Detail:   mustJSON(map[string]string{"reason": truncate(reason, 512), "code": string(code)}),
	}
	if envelope != nil && json.Valid(envelope) && bytes.HasPrefix(bytes.TrimSpace(envelope), []byte("{")) {
		rec.Inputs = []oar.Digest{oar.DigestOf("envelope", envelope)}
	}
	a.audit(rec)
	status, typ := api.StatusOf(code)
	return &fleet.CallResponse{Status: status, Error: &fleet.CallError{Status: status, Type: typ, Code: string(code), Message: msg}}
}

func (a *API) invoke(r *http.Request) (*fleet.CallResponse, time.Duration) {
	cert, err := a.peer(r)
	if err != nil {
		return a.refusal("", nil, invoke.CodePeerUntrusted, oneLine(err), oneLine(err)), 0
	}
	rq, env, refused := a.readCall(r, cert, fleet.MaxCallRequest)
	if refused != nil {
		return refused, 0
	}
	req, perr := api.ParsePeerPayload(rq.Payload, env.Brain, env.Classification)
	if perr != nil {
		return a.refusal(cert.NodeID, rq.Envelope, invoke.CodeInvalidPayload, perr.Message, "payload: "+perr.Message), 0
	}
	if refused := a.forked(cert, env, rq.Envelope); refused != nil {
		return refused, 0
	}
	grant, refused := a.callGrant(cert, env, rq.Envelope)
	if refused != nil {
		return refused, 0
	}
	if refused, wait := a.peerRate(cert, rq.Envelope); refused != nil {
		return refused, wait
	}
	// Last, so that only a call that would be served uses up its nonce.
	if err := a.replay.Check(env, a.cfg.Identity.ID(), time.Now()); err != nil {
		return a.refusal(cert.NodeID, rq.Envelope, invoke.CodeEnvelopeRefused, err.Error(), err.Error()), 0
	}
	return a.serve(r.Context(), cert, env, rq.Envelope, req, grant)
}

// readCall reads a call's body (at most limit bytes) and checks its envelope: its form,
// that it is the connecting node's own, and its signature by that node's key. A refusal
// is audited and returned.
func (a *API) readCall(r *http.Request, cert *identity.Certificate, limit int) (*fleet.CallRequest, *fleet.Envelope, *fleet.CallResponse) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, int64(limit)+1))
	if err != nil {
		return nil, nil, &fleet.CallResponse{Status: http.StatusBadRequest}
	}
	var rq fleet.CallRequest
	if len(raw) > limit || json.Unmarshal(raw, &rq) != nil || rq.Envelope == nil || rq.Payload == nil {
		return nil, nil, a.refusal(cert.NodeID, nil, invoke.CodeMalformedCall, "the call is not {envelope, payload} JSON within the size limits", "malformed request")
	}
	env, err := fleet.ParseEnvelope(rq.Envelope)
	if err != nil {
		return nil, nil, a.refusal(cert.NodeID, rq.Envelope, invoke.CodeInvalidEnvelope, err.Error(), err.Error())
	}
	// The envelope must be the connection's own node's, signed by its key.
	if env.Origin != cert.NodeID {
		return nil, nil, a.refusal(cert.NodeID, rq.Envelope, invoke.CodeEnvelopeForged, "the envelope's origin is not the connecting node",
			fmt.Sprintf("envelope names origin %s but the connection is from %s", env.Origin, cert.NodeID))
	}
	pub, err := a.originKey(cert)
	if err == nil {
		err = env.Verify(pub)
	}
	if err != nil {
		return nil, nil, a.refusal(cert.NodeID, rq.Envelope, invoke.CodeEnvelopeForged, "the envelope's signature does not verify", err.Error())
	}
	if sha256Hex(rq.Payload) != env.PayloadDigest {
		return nil, nil, a.refusal(cert.NodeID, rq.Envelope, invoke.CodePayloadMismatch, "the payload does not match the envelope's payload_digest",
			"payload does not match payload_digest")
	}
	return &rq, env, nil
}

// originKey is the connecting node's keys: from the fleet log (verified under a pinned
// root when its identity record was added), else from its certificate.
func (a *API) originKey(cert *identity.Certificate) (identity.PublicKey, error) {
	if pub, ok := a.cfg.FleetLog.Key(cert.NodeID); ok {
		return pub, nil
	}
	pub, _, err := cert.Verify()
	return pub, err
}

// forked refuses a call from an origin whose feed has forked.
func (a *API) forked(cert *identity.Certificate, env *fleet.Envelope, envelope []byte) *fleet.CallResponse {
	if v, ok := a.cfg.FleetLog.NodeView(env.Origin); ok && v.Forked {
		return a.refusal(cert.NodeID, envelope, invoke.CodeOriginForked, "the origin's federation feed has forked: this node takes no work from it",
			"the origin's federation feed has forked")
	}
	return nil
}

// peerRate holds peers' calls to the rate this node states in its limits record, for
// all peers together.
func (a *API) peerRate(cert *identity.Certificate, envelope []byte) (*fleet.CallResponse, time.Duration) {
	perMin := a.cfg.PeerRequestsPerMinute
	if ok, wait := a.limits.Take("fleet/peers", perMin, max(1, perMin/10)); !ok {
		return a.refusal(cert.NodeID, envelope, invoke.CodePeerRateLimited,
			fmt.Sprintf("this node serves at most %d calls a minute from peers (its limits record); retry after %s", perMin, wait.Round(time.Millisecond)),
			"over the peers' rate limit"), wait
	}
	return nil, 0
}

// serve runs a verified call through this node's pipeline and signs the reply.
func (a *API) serve(ctx context.Context, cert *identity.Certificate, env *fleet.Envelope, envelope []byte, req *api.ChatRequest, grant *consent.Grant) (*fleet.CallResponse, time.Duration) {
	id := a.cfg.Identity
	// The origin vouches for its principal's clearance, but no higher than the origin
	// itself is accredited.
	clearance, _ := policy.ParseLevel(env.Clearance)
	originPosture := policy.Official
	if v, ok := a.cfg.FleetLog.NodeView(env.Origin); ok {
		if l, err := policy.ParseLevel(v.Posture); err == nil {
			originPosture = l
		}
	}
	// Tenants are names within an institution: another institution's "default" is not
	// this one's, so its principals work in a tenant qualified by their root.
	tenant := env.Tenant
	if cert.RootID != id.Cert.RootID {
		tenant += "@" + cert.RootID
	}
	principal := &policy.Principal{ID: env.Principal + "@" + env.Origin, Tenant: tenant, Clearance: min(clearance, originPosture)}
	inv := req.Invocation(principal)
	inv.Peer = &invoke.PeerCall{Origin: env.Origin, Envelope: envelope, Call: fleet.CallHash(envelope), Grant: grant}
	out := &collector{}
	err := a.cfg.Pipeline.Chat(ctx, inv, out)
	var output []byte
	if err == nil {
		u := out.result.Usage
		co := fleet.CallOutput{Content: out.content.String(), FinishReason: out.result.FinishReason,
			Usage: fleet.CallUsage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens, TotalTokens: u.TotalTokens}}
		if len(out.result.ToolCalls) > 0 {
			co.ToolCalls, _ = json.Marshal(out.result.ToolCalls)
		}
		output, _ = json.Marshal(co)
	}
	return a.answer(env, inv.Peer.Call, inv.Decision, inv.Record, output, err)
}

// answer signs the reply to a call this node took: ok with output, or the outcome err
// (denied when its status is 403, else error), naming this node's record of the call.
func (a *API) answer(env *fleet.Envelope, call string, d *oar.Decision, record string, output []byte, err error) (*fleet.CallResponse, time.Duration) {
	id := a.cfg.Identity
	reply := fleet.Reply{Call: call, Responder: id.ID(), Time: oar.FormatTime(time.Now()), Decision: d, Record: record}
	resp := &fleet.CallResponse{Status: http.StatusOK}
	var retry time.Duration
	if err != nil {
		e, ok := err.(*invoke.Error)
		if !ok {
			a.cfg.Log.Error("remote call", "origin", env.Origin, "err", err)
			e = &invoke.Error{Code: invoke.CodeInternal, Message: "the peer failed to serve the call"}
		}
		status, _ := api.StatusOf(e.Code)
		reply.Status, reply.Error, reply.Message = fleet.ReplyError, string(e.Code), truncate(e.Message, fleet.MaxReplyMessage)
		if status == http.StatusForbidden {
			reply.Status = fleet.ReplyDenied
		}
		resp.Status, retry = status, e.RetryAfter
	} else {
		reply.Status, reply.OutputDigest = fleet.ReplyOK, sha256Hex(output)
		resp.Output = output
	}
	signed, err := fleet.SealReply(id.Key, reply)
	if err != nil {
		a.cfg.Log.Error("seal reply", "err", err)
		status, typ := api.StatusOf(invoke.CodeInternal)
		return &fleet.CallResponse{Status: status, Error: &fleet.CallError{Status: status, Type: typ, Code: string(invoke.CodeInternal),
			Message: "the peer could not sign its reply"}}, 0
	}
	resp.Reply = signed
	return resp, retry
}

// collector gathers a call's answer.
type collector struct {
	content strings.Builder
	result  invoke.Result
}

func (c *collector) Start(string, *oar.Receipt) error { return nil }
func (c *collector) Delta(s string) error {
	c.content.WriteString(s)
	return nil
}
func (c *collector) Finish(r *invoke.Result) error {
	c.result = *r
	if c.content.Len() == 0 {
		c.content.WriteString(r.Content)
	}
	return nil
}
