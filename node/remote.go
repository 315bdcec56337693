package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sios-project/sios/api"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// Remote invocation: a request for a brain this node does not host goes to a peer that
// offers it, as a signed envelope over the fleet's mutual TLS. The peer verifies the
// envelope, applies its own policy through the same governed path as a local request
// and answers with a signed reply; both nodes audit the call, and the origin's
// completion record carries the envelope and the reply as parties.

const (
	// remoteTimeout bounds a remote call; the envelope expires with it.
	remoteTimeout = 60 * time.Second
	// maxRemotePayload is the largest request payload a peer accepts.
	maxRemotePayload = 4 << 20
	// maxRemoteOutput is the largest answer an origin accepts from a peer.
	maxRemoteOutput = 8 << 20
)

// remoteRequest is the body of POST /fleet/v1/invoke.
type remoteRequest struct {
	Envelope json.RawMessage `json:"envelope"`
	Payload  json.RawMessage `json:"payload"` // remotePayload; the envelope holds its digest
}

type remotePayload struct {
	Messages    []api.ChatMessage `json:"messages"`
	MaxTokens   *int              `json:"max_tokens,omitempty"`
	Temperature *float64          `json:"temperature,omitempty"`
}

// remoteResponse is the answer. Status is the HTTP status the origin's caller should
// see; Reply is signed; Output is what Reply.output_digest commits to.
type remoteResponse struct {
	Status int             `json:"status"`
	Reply  json.RawMessage `json:"reply,omitempty"`
	Output json.RawMessage `json:"output,omitempty"`
	// Error is set when the envelope itself was refused (no signed reply).
	Error *remoteError `json:"error,omitempty"`
}

// remoteError says why a peer refused a call without a signed reply.
type remoteError struct {
	Status  int    `json:"status"`
	Type    string `json:"type"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

type remoteOutput struct {
	Content      string    `json:"content"`
	FinishReason string    `json:"finish_reason"`
	Usage        api.Usage `json:"usage"`
}

// remoteCall travels in the context of a request served for a peer.
type remoteCall struct {
	origin   string
	envelope []byte
	call     string // fleet.CallHash of the envelope
	record   string // set by Chat: the hash of this node's record of the call
	decision *oar.Decision
}

type remoteKey struct{}

func remoteFrom(ctx context.Context) *remoteCall {
	rc, _ := ctx.Value(remoteKey{}).(*remoteCall)
	return rc
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// remoteBrain is a brain offered by peers, as the origin sees it.
type remoteBrain struct {
	brain fleet.Brain
	peers []fleet.Peer // candidates, best first (fleet.Candidates)
	all   []fleet.Peer // every peer offering it, reachable or not
}

// findRemote looks a brain up among the peers' offers.
func (n *Node) findRemote(id string) (*remoteBrain, bool) {
	if n.fleet == nil {
		return nil, false
	}
	return n.remoteBrain(id, n.fleet.Offered()[id])
}

// remoteBrain builds what the origin knows of brain id from the peers offering it.
func (n *Node) remoteBrain(id string, all []fleet.Peer) (*remoteBrain, bool) {
	if len(all) == 0 {
		return nil, false
	}
	rb := &remoteBrain{all: all, peers: n.fleet.Candidates(id)}
	for _, p := range all {
		for _, b := range p.Brains {
			if b.ID == id {
				rb.brain = b
			}
		}
	}
	return rb, true
}

// decidePeer asks policy whether p's data of level data may go to peer for brain b:
// the brain decision as if it were local (read up, flow down to the lower of the
// brain's ceiling and the peer's posture, tenancy), then peer.send.
func (n *Node) decidePeer(p *policy.Principal, b fleet.Brain, peer fleet.Peer, data policy.Level) policy.Decision {
	bl, err1 := policy.ParseLevel(b.Classification)
	pl, err2 := policy.ParseLevel(peer.Posture)
	if err := errors.Join(err1, err2); err != nil {
		return policy.Decision{Errors: []string{fmt.Sprintf("peer %s: %v", peer.NodeID, err)}}
	}
	d := n.policy.Decide(policy.Request{
		Principal: *p, Action: policy.ActionInvoke,
		Resource: policy.Resource{Type: policy.ResourceBrain, ID: b.ID, Classification: bl, Kind: b.Kind},
		Context:  policy.Context{Tenant: p.Tenant, DataClassification: data, TargetAccreditation: min(bl, pl)},
	})
	if !d.Allow {
		return d
	}
	return n.policy.Decide(policy.Request{
		Principal: *p, Action: policy.ActionPeerSend,
		Resource: policy.Resource{Type: policy.ResourcePeer, ID: peer.NodeID, Classification: pl,
			Institution: peer.Institution, Attestation: peer.Attestation, SameInstitution: peer.Institution == n.id.Cert.RootID},
		Context: policy.Context{Tenant: p.Tenant, DataClassification: data, TargetAccreditation: pl},
	})
}

// chatRemote serves a request for a brain that only peers offer. rec is the admission
// record, filled but for its decision.
func (n *Node) chatRemote(ctx context.Context, p *policy.Principal, req *api.ChatRequest, data policy.Level,
	rec *oar.Record, rb *remoteBrain, w api.ChatWriter) error {
	started := time.Now()
	b := rb.brain
	rec.Resource = "brain/" + b.ID
	if len(rb.peers) == 0 {
		var where []string
		for _, p := range rb.all {
			where = append(where, fmt.Sprintf("%s (%s)", p.NodeID, p.State))
		}
		rec.Decision = &oar.Decision{Effect: "deny", Policies: []string{"fleet-route"}}
		rec.Detail = mustJSON(map[string]string{"reason": "no reachable peer offers the brain"})
		return n.refuse(ctx, rec, &api.Error{Status: http.StatusServiceUnavailable, Type: "api_error", Code: "remote_unavailable",
			Message: fmt.Sprintf("brain %s is offered only by peers, and none is reachable now: %s", b.ID, strings.Join(where, ", "))})
	}
	// Route: the first candidate policy lets this request go to.
	var chosen []fleet.Peer
	var denied policy.Decision
	for _, peer := range rb.peers {
		if d := n.decidePeer(p, b, peer, data); d.Allow {
			if len(chosen) == 0 {
				rec.Decision = &oar.Decision{Effect: "allow", Policies: d.Reasons}
			}
			chosen = append(chosen, peer)
		} else if denied.Reasons == nil && denied.Errors == nil {
			denied = d
		}
	}
	if len(chosen) == 0 {
		rec.Decision = &oar.Decision{Effect: "deny", Policies: denied.Reasons}
		why := "no policy permits it"
		if len(denied.Reasons) > 0 {
			why = "forbidden by " + strings.Join(denied.Reasons, ", ")
		}
		return n.refuse(ctx, rec, &api.Error{Status: http.StatusForbidden, Type: "permission_error", Code: "policy_denied",
			Message: fmt.Sprintf("principal %s may not send %s data to any peer offering brain %s (%s): %s", p.ID, data, b.ID, b.Classification, why)})
	}
	if ok, wait := n.limits.take("principal/"+p.Tenant+"/"+p.ID, n.cfg.PrincipalRequestsPerMinute, n.cfg.PrincipalBurst); !ok {
		rec.Decision = &oar.Decision{Effect: "deny", Policies: []string{"rate-limit-principal"}}
		return n.refuse(ctx, rec, &api.Error{Status: http.StatusTooManyRequests, Type: "rate_limit_error", Code: "rate_limit_exceeded",
			RetryAfter: wait, Message: fmt.Sprintf("principal %s is over its rate limit; retry after %s", p.ID, wait.Round(time.Millisecond))})
	}
	rec.Detail = mustJSON(map[string]string{"route": "remote", "peer": chosen[0].NodeID})

	admissionHash, err := n.prepare(rec)
	if err != nil {
		return err
	}
	admitted := make(chan admission, 1)
	go func() {
		rc, hdr, err := n.audit(context.WithoutCancel(ctx), rec)
		admitted <- admission{rc, hdr, err}
	}()

	payload, err := json.Marshal(remotePayload{Messages: req.Messages, MaxTokens: req.MaxTokens, Temperature: req.Temperature})
	if err != nil {
		return err
	}
	if m := req.MaxCompletionTokens; m != nil && req.MaxTokens == nil {
		payload, _ = json.Marshal(remotePayload{Messages: req.Messages, MaxTokens: m, Temperature: req.Temperature})
	}
	cctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	var res *remoteResult
	for _, peer := range chosen {
		res = n.callPeer(cctx, p, b, peer, data, payload)
		if !res.unreachable {
			break
		}
	}
	adm := <-admitted
	if adm.err != nil {
		n.log.Error("admission record", "err", adm.err)
		return &api.Error{Status: http.StatusServiceUnavailable, Type: "api_error", Code: "audit_unavailable",
			Message: "the audit ledger could not record this request, so it was not served"}
	}
	n.completeRemote(ctx, p, b, admissionHash, res, started)
	if res.err != nil {
		res.err.Receipt = adm.header
		return res.err
	}
	if err := w.Start(b.ID, adm.header); err != nil {
		return err
	}
	if req.Stream && res.out.Content != "" {
		if err := w.Delta(api.Delta{Content: res.out.Content}); err != nil {
			return err
		}
	}
	return w.Finish(&api.ChatResult{Content: res.out.Content, FinishReason: res.out.FinishReason, Usage: res.out.Usage})
}

// remoteResult is what one call to a peer came to.
type remoteResult struct {
	peer        string
	envelope    []byte
	reply       []byte // verified signed reply, nil if none
	out         remoteOutput
	outDigest   string
	err         *api.Error
	unreachable bool // no answer at all: another peer may be tried
}

// callPeer sends one signed envelope to peer and verifies the answer.
func (n *Node) callPeer(ctx context.Context, p *policy.Principal, b fleet.Brain, peer fleet.Peer, data policy.Level, payload []byte) *remoteResult {
	res := &remoteResult{peer: peer.NodeID}
	now := time.Now()
	env, err := fleet.SealEnvelope(n.id.Key, fleet.Envelope{
		Origin: n.ID(), Target: peer.NodeID, Issued: oar.FormatTime(now), Expires: oar.FormatTime(now.Add(remoteTimeout)),
		Principal: p.ID, Tenant: p.Tenant, Clearance: p.Clearance.String(), Classification: data.String(),
		Brain: b.ID, PayloadDigest: sha256Hex(payload),
	})
	if err != nil {
		res.err = &api.Error{Status: http.StatusInternalServerError, Type: "api_error", Code: "internal", Message: "could not sign the remote call"}
		n.log.Error("seal envelope", "err", err)
		return res
	}
	res.envelope = env
	body, _ := fleet.Marshal(remoteRequest{Envelope: env, Payload: payload})
	resp, err := n.fleet.Post(ctx, peer.NodeID, peer.Addr, "/fleet/v1/invoke", body)
	if err != nil {
		n.log.Warn("remote call failed", "peer", peer.NodeID, "err", err)
		// Another peer is tried only if this one never got the call: a call that may
		// have been served must not run twice.
		var oe *net.OpError
		res.unreachable = ctx.Err() == nil && errors.As(err, &oe) && oe.Op == "dial"
		res.err = &api.Error{Status: http.StatusBadGateway, Type: "api_error", Code: "remote_unreachable",
			Message: fmt.Sprintf("brain %s: peer %s could not be reached", b.ID, peer.NodeID)}
		if errors.Is(err, context.DeadlineExceeded) {
			res.err = &api.Error{Status: http.StatusGatewayTimeout, Type: "timeout_error", Code: "remote_timeout",
				Message: fmt.Sprintf("brain %s: peer %s did not answer within %s", b.ID, peer.NodeID, remoteTimeout)}
		}
		return res
	}
	defer resp.Body.Close()
	var retryAfter time.Duration
	if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 && secs < 3600 {
		retryAfter = time.Duration(secs) * time.Second
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxRemoteOutput+1))
	var rr remoteResponse
	if err == nil && len(raw) <= maxRemoteOutput {
		err = json.Unmarshal(raw, &rr)
	}
	bad := func(why string) *remoteResult {
		n.log.Warn("remote reply refused", "peer", peer.NodeID, "reason", why)
		res.err = &api.Error{Status: http.StatusBadGateway, Type: "api_error", Code: "remote_invalid_reply",
			Message: fmt.Sprintf("brain %s: peer %s answered with a reply that does not verify (%s)", b.ID, peer.NodeID, why)}
		return res
	}
	if err != nil || len(raw) > maxRemoteOutput {
		return bad("malformed answer")
	}
	if rr.Reply == nil {
		// The peer refused the envelope itself.
		if rr.Error != nil && rr.Error.Status >= 400 {
			res.err = &api.Error{Status: rr.Error.Status, Type: rr.Error.Type, Code: rr.Error.Code, RetryAfter: retryAfter,
				Message: fmt.Sprintf("peer %s refused the call: %s", peer.NodeID, rr.Error.Message)}
			return res
		}
		return bad("no signed reply")
	}
	reply, err := fleet.ParseReply(rr.Reply)
	if err != nil {
		return bad(err.Error())
	}
	key, ok := n.fleetLog.Key(peer.NodeID)
	if !ok {
		return bad("peer's identity is not in the fleet log")
	}
	if err := reply.Verify(key); err != nil {
		return bad(err.Error())
	}
	if reply.Responder != peer.NodeID || reply.Call != fleet.CallHash(env) {
		return bad("the reply answers another call")
	}
	res.reply = rr.Reply
	if reply.Status != fleet.ReplyOK {
		status := rr.Status
		if status < 400 || status > 599 {
			status = http.StatusBadGateway
		}
		code := reply.Error
		if code == "" {
			code = "remote_error"
		}
		res.err = &api.Error{Status: status, Type: "", Code: code, RetryAfter: retryAfter,
			Message: fmt.Sprintf("peer %s: %s", peer.NodeID, reply.Message)}
		switch status {
		case http.StatusForbidden:
			res.err.Type = "permission_error"
		case http.StatusTooManyRequests:
			res.err.Type = "rate_limit_error"
		}
		return res
	}
	if reply.OutputDigest != sha256Hex(rr.Output) {
		return bad("output does not match the reply's output_digest")
	}
	if err := json.Unmarshal(rr.Output, &res.out); err != nil {
		return bad("output: " + err.Error())
	}
	res.outDigest = reply.OutputDigest
	return res
}

// completeRemote writes the origin's completion record: linked to the admission, with
// the envelope and the peer's signed reply as parties.
func (n *Node) completeRemote(ctx context.Context, p *policy.Principal, b fleet.Brain, admissionHash string, res *remoteResult, started time.Time) {
	detail := map[string]any{"latency_ms": time.Since(started).Milliseconds(), "peer": res.peer, "route": "remote"}
	rec := &oar.Record{
		Tenant: p.Tenant, Actor: oar.Actor{ID: p.ID, Clearance: p.Clearance.String()},
		Action: "brain.complete", Resource: "brain/" + b.ID,
		Links: []oar.Link{{Rel: "admission", RecordHash: admissionHash}},
	}
	if res.envelope != nil {
		rec.Parties = append(rec.Parties, res.envelope)
	}
	if res.reply != nil {
		rec.Parties = append(rec.Parties, res.reply)
	}
	if res.err == nil {
		rec.Outputs = []oar.Digest{{Name: "remote_output", SHA256: res.outDigest}}
		detail["usage"], detail["finish_reason"] = res.out.Usage, res.out.FinishReason
	} else {
		detail["error"] = res.err.Code
	}
	rec.Detail = mustJSON(detail)
	n.bg.Add(1)
	go func() {
		defer n.bg.Done()
		if _, _, err := n.ledger.Append(context.WithoutCancel(ctx), rec); err != nil {
			n.log.Error("completion record", "brain", b.ID, "err", err)
		}
	}()
}

// serveRemote is POST /fleet/v1/invoke: a peer asks this node to run one of its brains.
func (n *Node) serveRemote(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code, msg string) {
		typ := "invalid_request_error"
		if status == http.StatusForbidden {
			typ = "permission_error"
		}
		writeRemote(w, &remoteResponse{Status: status, Error: &remoteError{Status: status, Type: typ, Code: code, Message: msg}})
	}
	cert, err := n.fleet.PeerOf(r)
	if err != nil {
		n.refuseEnvelope("", nil, "peer identity: "+err.Error())
		fail(http.StatusForbidden, "peer_untrusted", "peer identity: "+err.Error())
		return
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, maxRemotePayload+fleet.MaxEnvelopeSize+1024))
	if err != nil {
		return
	}
	var rq remoteRequest
	if len(raw) > maxRemotePayload+fleet.MaxEnvelopeSize || json.Unmarshal(raw, &rq) != nil || rq.Envelope == nil || rq.Payload == nil {
		n.refuseEnvelope(cert.NodeID, nil, "malformed request")
		fail(http.StatusBadRequest, "malformed_call", "the call is not {envelope, payload} JSON within the size limits")
		return
	}
	env, err := fleet.ParseEnvelope(rq.Envelope)
	if err != nil {
		n.refuseEnvelope(cert.NodeID, rq.Envelope, err.Error())
		fail(http.StatusBadRequest, "invalid_envelope", err.Error())
		return
	}
	// The envelope must be the connection's own node's, signed by its key.
	if env.Origin != cert.NodeID {
		n.refuseEnvelope(cert.NodeID, rq.Envelope, fmt.Sprintf("envelope names origin %s but the connection is from %s", env.Origin, cert.NodeID))
		fail(http.StatusForbidden, "envelope_forged", "the envelope's origin is not the connecting node")
		return
	}
	// The origin's keys: from the fleet log (verified under a pinned root when its
	// identity record was added), else from its certificate.
	pub, ok := n.fleetLog.Key(cert.NodeID)
	if !ok {
		pub, _, err = cert.Verify()
	}
	if err == nil {
		err = env.Verify(pub)
	}
	if err != nil {
		n.refuseEnvelope(cert.NodeID, rq.Envelope, err.Error())
		fail(http.StatusForbidden, "envelope_forged", "the envelope's signature does not verify")
		return
	}
	if sha256Hex(rq.Payload) != env.PayloadDigest {
		n.refuseEnvelope(cert.NodeID, rq.Envelope, "payload does not match payload_digest")
		fail(http.StatusBadRequest, "payload_mismatch", "the payload does not match the envelope's payload_digest")
		return
	}
	var pl remotePayload
	if err := json.Unmarshal(rq.Payload, &pl); err != nil {
		n.refuseEnvelope(cert.NodeID, rq.Envelope, "payload: "+err.Error())
		fail(http.StatusBadRequest, "invalid_payload", "payload: "+err.Error())
		return
	}
	if v, ok := n.fleetLog.NodeView(env.Origin); ok && v.Forked {
		n.refuseEnvelope(cert.NodeID, rq.Envelope, "the origin's federation feed has forked")
		fail(http.StatusForbidden, "origin_forked", "the origin's federation feed has forked: this node takes no work from it")
		return
	}
	// The rate this node states in its limits record, for all peers together.
	if ok, wait := n.limits.take("fleet/peers", n.cfg.PeerRequestsPerMinute, max(1, n.cfg.PeerRequestsPerMinute/10)); !ok {
		n.refuseEnvelope(cert.NodeID, rq.Envelope, "over the peers' rate limit")
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
		fail(http.StatusTooManyRequests, "peer_rate_limited", fmt.Sprintf("this node serves at most %d calls a minute from peers (its limits record); retry after %s", n.cfg.PeerRequestsPerMinute, wait.Round(time.Millisecond)))
		return
	}
	// Last, so that only a call that would be served uses up its nonce.
	if err := n.replay.Check(env, n.ID(), time.Now()); err != nil {
		n.refuseEnvelope(cert.NodeID, rq.Envelope, err.Error())
		fail(http.StatusForbidden, "envelope_refused", err.Error())
		return
	}
	// The origin vouches for its principal's clearance, but no higher than the
	// origin itself is accredited.
	clearance, _ := policy.ParseLevel(env.Clearance)
	originPosture := policy.Official
	if v, ok := n.fleetLog.NodeView(env.Origin); ok {
		if l, err := policy.ParseLevel(v.Posture); err == nil {
			originPosture = l
		}
	}
	// Tenants are names within an institution: another institution's "default" is not
	// this one's, so its principals work in a tenant qualified by their root.
	tenant := env.Tenant
	if cert.RootID != n.id.Cert.RootID {
		tenant += "@" + cert.RootID
	}
	principal := &policy.Principal{ID: env.Principal + "@" + env.Origin, Tenant: tenant, Clearance: min(clearance, originPosture)}
	rc := &remoteCall{origin: env.Origin, envelope: rq.Envelope, call: fleet.CallHash(rq.Envelope)}
	ctx := context.WithValue(r.Context(), remoteKey{}, rc)
	cw := &collectWriter{}
	req := &api.ChatRequest{Model: env.Brain, Messages: pl.Messages, MaxTokens: pl.MaxTokens, Temperature: pl.Temperature, Classification: env.Classification}
	chatErr := n.Chat(ctx, principal, req, cw)

	reply := fleet.Reply{Call: rc.call, Responder: n.ID(), Time: oar.FormatTime(time.Now()), Decision: rc.decision, Record: rc.record}
	resp := &remoteResponse{Status: http.StatusOK}
	if chatErr != nil {
		var ae *api.Error
		if !errors.As(chatErr, &ae) {
			ae = &api.Error{Status: http.StatusInternalServerError, Code: "internal", Message: "the peer failed to serve the call"}
		}
		reply.Status, reply.Error, reply.Message = fleet.ReplyError, ae.Code, truncate(ae.Message, fleet.MaxReplyMessage)
		if ae.Status == http.StatusForbidden {
			reply.Status = fleet.ReplyDenied
		}
		resp.Status = ae.Status
		if ae.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int((ae.RetryAfter+time.Second-1)/time.Second)))
		}
	} else {
		out, _ := json.Marshal(remoteOutput{Content: cw.content.String(), FinishReason: cw.result.FinishReason, Usage: cw.result.Usage})
		reply.Status, reply.OutputDigest = fleet.ReplyOK, sha256Hex(out)
		resp.Output = out
	}
	signed, err := fleet.SealReply(n.id.Key, reply)
	if err != nil {
		n.log.Error("seal reply", "err", err)
		fail(http.StatusInternalServerError, "internal", "the peer could not sign its reply")
		return
	}
	resp.Reply = signed
	writeRemote(w, resp)
}

// refuseEnvelope audits a refused remote call.
func (n *Node) refuseEnvelope(peer string, envelope []byte, reason string) {
	resource := "peer/" + peer
	if peer == "" {
		resource = "peer/unknown"
	}
	rec := &oar.Record{
		Actor: oar.Actor{ID: "node"}, Action: "fleet.refuse-call", Resource: resource,
		Decision: &oar.Decision{Effect: "deny", Policies: []string{"fleet-envelope"}},
		Detail:   mustJSON(map[string]string{"reason": truncate(reason, 512)}),
	}
	if envelope != nil && json.Valid(envelope) && bytes.HasPrefix(bytes.TrimSpace(envelope), []byte("{")) {
		rec.Inputs = []oar.Digest{oar.DigestOf("envelope", envelope)}
	}
	if _, _, err := n.audit(context.Background(), rec); err != nil {
		n.log.Error("audit refused call", "err", err)
	}
}

func writeRemote(w http.ResponseWriter, resp *remoteResponse) {
	b, err := fleet.Marshal(resp)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// truncate cuts s to at most n bytes on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

// collectWriter gathers a response served for a peer.
type collectWriter struct {
	content strings.Builder
	result  api.ChatResult
}

func (c *collectWriter) Start(string, string) error { return nil }
func (c *collectWriter) Delta(d api.Delta) error {
	c.content.WriteString(d.Content)
	return nil
}
func (c *collectWriter) Finish(r *api.ChatResult) error {
	c.result = *r
	if c.content.Len() == 0 {
		c.content.WriteString(r.Content)
	}
	return nil
}
