package invoke

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
)

// The execute stage for a brain only peers offer: the request goes to the best peer
// policy allows, as an envelope signed by this node over the fleet's mutual TLS. The
// peer verifies it, applies its own policy through its own pipeline, and answers with
// a signed reply; both nodes audit the call, and this node's completion record
// carries the envelope and the reply as parties.

// payload is a remote call's payload: the chat request as the target's API would take
// it; the target's brain decides which members it accepts.
type payload struct {
	Messages          []Message       `json:"messages"`
	MaxTokens         *int            `json:"max_tokens,omitempty"`
	Temperature       *float64        `json:"temperature,omitempty"`
	TopP              *float64        `json:"top_p,omitempty"`
	FrequencyPenalty  *float64        `json:"frequency_penalty,omitempty"`
	PresencePenalty   *float64        `json:"presence_penalty,omitempty"`
	Stop              []string        `json:"stop,omitempty"`
	Seed              *int64          `json:"seed,omitempty"`
	ResponseFormat    json.RawMessage `json:"response_format,omitempty"`
	User              string          `json:"user,omitempty"`
	Options           json.RawMessage `json:"options,omitempty"`
	Tools             []backend.Tool  `json:"tools,omitempty"`
	ToolChoice        json.RawMessage `json:"tool_choice,omitempty"`
	ParallelToolCalls *bool           `json:"parallel_tool_calls,omitempty"`
}

// remoteResult is what one call to a peer came to.
type remoteResult struct {
	peer        string
	envelope    []byte
	reply       []byte // verified signed reply, nil if none
	replyRecord string // the record hash the reply names, if any
	output      []byte // the output an ok reply's digest covers
	out         fleet.CallOutput
	outDigest   string
	err         *Error
	unreachable bool // no answer at all: another peer may be tried
}

func (p *Pipeline) executeRemote(ctx context.Context, inv *Invocation, sink Sink) error {
	b := inv.remote.brain
	prm := inv.Params
	body, err := json.Marshal(payload{Messages: inv.Messages, MaxTokens: inv.MaxTokens, Temperature: prm.Temperature,
		TopP: prm.TopP, FrequencyPenalty: prm.FrequencyPenalty, PresencePenalty: prm.PresencePenalty, Stop: prm.Stop,
		Seed: prm.Seed, ResponseFormat: prm.ResponseFormat, User: prm.User, Options: prm.Options, Tools: prm.Tools,
		ToolChoice: prm.ToolChoice, ParallelToolCalls: prm.ParallelToolCalls})
	if err != nil {
		return err
	}
	cctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	var res *remoteResult
	for _, c := range inv.peers {
		if c.grant != nil && (inv.used == nil || c.grant.Grant.ID != inv.used.Grant.ID) {
			continue // its data may go there only under a grant whose use was not recorded
		}
		var grant []byte
		if c.grant != nil {
			grant = inv.used.Raw
		}
		res = p.callPeer(cctx, inv, c.peer, body, grant)
		if !res.unreachable {
			break
		}
	}
	rc, rerr := p.receipt(ctx, inv)
	p.completeRemote(ctx, inv, res)
	if res.err != nil {
		res.err.Receipt = rc
		return res.err
	}
	if rerr != nil {
		return rerr
	}
	if err := sink.Start(b.ID, rc); err != nil {
		return err
	}
	if inv.Stream && res.out.Content != "" {
		if err := sink.Delta(res.out.Content); err != nil {
			return err
		}
	}
	u := res.out.Usage
	var calls []backend.ToolCall
	if len(res.out.ToolCalls) > 0 {
		jcs.DecodeStrict(res.out.ToolCalls, &calls) // verified under the reply's output digest
	}
	return sink.Finish(&Result{Content: res.out.Content, FinishReason: res.out.FinishReason,
		Usage: usageOf(u.PromptTokens, u.CompletionTokens, u.TotalTokens), ToolCalls: calls,
		Fingerprint: fingerprint("peer/"+res.peer, "", b.ID)})
}

// callPeer sends one signed envelope to peer, carrying grant (fed-call/2) when the
// peer is of another institution, and verifies the answer.
func (p *Pipeline) callPeer(ctx context.Context, inv *Invocation, peer fleet.Peer, body, grant []byte) *remoteResult {
	pr, b := inv.Principal, inv.remote.brain
	res := &remoteResult{peer: peer.NodeID}
	now := time.Now()
	id := p.cfg.Identity
	env, err := fleet.SealEnvelope(id.Key, fleet.Envelope{
		Origin: id.ID(), Target: peer.NodeID, Issued: oar.FormatTime(now), Expires: oar.FormatTime(now.Add(remoteTimeout)),
		Principal: pr.ID, Tenant: pr.Tenant, Clearance: pr.Clearance.String(), Classification: inv.data.String(),
		Brain: b.ID, PayloadDigest: sha256Hex(body), Consent: grant,
	})
	if err != nil {
		p.cfg.Log.Error("seal envelope", "err", err)
		res.err = errorf(CodeInternal, "could not sign the remote call")
		return res
	}
	res.envelope = env
	asked := time.Now()
	ans, err := p.fleetOf().Invoke(ctx, peer, &fleet.CallRequest{Envelope: env, Payload: body})
	inv.waited += time.Since(asked)
	p.checkAnswer(ctx, "brain "+b.ID, peer, ans, err, res)
	if res.err != nil || res.output == nil {
		return res
	}
	if err := jcs.DecodeStrict(res.output, &res.out); err != nil {
		p.cfg.Log.Warn("remote reply refused", "peer", peer.NodeID, "reason", "output: "+err.Error())
		res.err = errorf(CodeRemoteInvalidReply, "brain %s: peer %s answered with a reply that does not verify (output: %v)", b.ID, peer.NodeID, err)
	}
	return res
}

// checkAnswer verifies a peer's answer to the envelope in res (the outcome of sending
// it: ans or err) and fills res: the signed reply once it verifies (the peer's key
// from the fleet log, the peer as responder, the envelope's call hash), and the output
// of an ok reply, matching its output_digest; else the outcome to give the caller.
// what names the call for the caller ("brain B").
func (p *Pipeline) checkAnswer(ctx context.Context, what string, peer fleet.Peer, ans *fleet.CallAnswer, err error, res *remoteResult) {
	bad := func(why string) {
		p.cfg.Log.Warn("remote reply refused", "peer", peer.NodeID, "reason", why)
		res.err = errorf(CodeRemoteInvalidReply, "%s: peer %s answered with a reply that does not verify (%s)", what, peer.NodeID, why)
	}
	switch {
	case errors.Is(err, fleet.ErrMalformedAnswer):
		bad(err.Error()) // names the limit or the member
		return
	case err != nil:
		p.cfg.Log.Warn("remote call failed", "peer", peer.NodeID, "err", err)
		// Another peer is tried only if this one never got the call: a call that may
		// have been served must not run twice.
		var oe *net.OpError
		res.unreachable = ctx.Err() == nil && errors.As(err, &oe) && oe.Op == "dial"
		res.err = errorf(CodeRemoteUnreachable, "%s: peer %s could not be reached", what, peer.NodeID)
		if errors.Is(err, context.DeadlineExceeded) {
			res.err = errorf(CodeRemoteTimeout, "%s: peer %s did not answer within %s", what, peer.NodeID, remoteTimeout)
		}
		return
	}
	rr := ans.Response
	if rr.Reply == nil {
		// The peer refused the envelope itself.
		if rr.Error != nil && rr.Error.Status >= 400 {
			res.err = &Error{Code: Code(rr.Error.Code), RetryAfter: ans.RetryAfter,
				Message: fmt.Sprintf("peer %s refused the call: %s", peer.NodeID, rr.Error.Message)}
			return
		}
		bad("no signed reply")
		return
	}
	reply, err := fleet.ParseReply(rr.Reply)
	if err != nil {
		bad(err.Error())
		return
	}
	key, ok := p.cfg.FleetLog.Key(peer.NodeID)
	if !ok {
		bad("peer's identity is not in the fleet log")
		return
	}
	if err := reply.Verify(key); err != nil {
		bad(err.Error())
		return
	}
	if reply.Responder != peer.NodeID || reply.Call != fleet.CallHash(res.envelope) {
		bad("the reply answers another call")
		return
	}
	res.reply, res.replyRecord = rr.Reply, reply.Record
	if reply.Status != fleet.ReplyOK {
		code := Code(reply.Error)
		if code == "" {
			code = CodeRemoteError
		}
		res.err = &Error{Code: code, RetryAfter: ans.RetryAfter, Message: fmt.Sprintf("peer %s: %s", peer.NodeID, reply.Message)}
		return
	}
	if reply.OutputDigest != sha256Hex(rr.Output) {
		bad("output does not match the reply's output_digest")
		return
	}
	res.output, res.outDigest = rr.Output, reply.OutputDigest
}

// completeRemote writes the origin's completion record: linked to the admission, with
// the envelope and the peer's signed reply as parties.
func (p *Pipeline) completeRemote(ctx context.Context, inv *Invocation, res *remoteResult) {
	detail := map[string]any{"latency_ms": time.Since(inv.started).Milliseconds(), "peer": res.peer, "route": "remote"}
	if inv.used != nil {
		detail["consent"] = inv.used.Grant.ID
	}
	rec := inv.record(oar.ActionBrainComplete)
	rec.Resource = "brain/" + inv.remote.brain.ID
	rec.Links = []oar.Link{{Rel: "admission", RecordHash: inv.Record}}
	if res.envelope != nil {
		rec.Parties = append(rec.Parties, res.envelope)
	}
	if res.reply != nil {
		rec.Parties = append(rec.Parties, res.reply)
	}
	if res.err == nil {
		rec.Outputs = []oar.Digest{{Name: "remote_output", SHA256: res.outDigest}}
		detail["usage"], detail["finish_reason"] = res.out.Usage, oar.Bounded(res.out.FinishReason, 64)
	} else {
		detail["error"] = oar.Bounded(string(res.err.Code), 64)
	}
	rec.Detail = mustJSON(detail)
	p.appendLater(ctx, rec, "completion record")
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
