package invoke

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sios-project/sios/oar"
)

// The admit stage: the perimeter's rate limits (the principal's across all brains,
// then the brain's own), then the admission record, made durable before any byte of
// the request goes to a backend or a peer; its receipt goes out with the answer.

func (p *Pipeline) admit(ctx context.Context, inv *Invocation) error {
	pr := inv.Principal
	if ok, wait := p.limits.Take("principal/"+pr.Tenant+"/"+pr.ID, p.cfg.PrincipalPerMinute, p.cfg.PrincipalBurst); !ok {
		inv.Decision = &oar.Decision{Effect: "deny", Policies: []string{"rate-limit-principal"}}
		return p.refuse(ctx, inv, &Error{Code: CodeRateLimited, RetryAfter: wait,
			Message: fmt.Sprintf("principal %s is over its rate limit; retry after %s", pr.ID, wait.Round(time.Millisecond))})
	}
	if b := inv.brain; b != nil {
		if ok, wait := p.limits.Take("brain/"+b.ID, b.RateLimit.RequestsPerMinute, b.RateLimit.Burst); !ok {
			inv.Decision = &oar.Decision{Effect: "deny", Policies: []string{"rate-limit-brain"}}
			return p.refuse(ctx, inv, &Error{Code: CodeRateLimited, RetryAfter: wait,
				Message: fmt.Sprintf("brain %s is over its rate limit of %d requests per minute; retry after %s",
					b.ID, b.RateLimit.RequestsPerMinute, wait.Round(time.Millisecond))})
		}
	}
	if inv.remote != nil {
		inv.note("route", "remote")
		inv.note("peer", inv.peers[0].peer.NodeID)
	}
	// The admission record is durable before anything leaves for a backend or a peer:
	// a request whose record cannot be written is not served.
	rec := inv.admissionRecord()
	h, err := p.prepare(rec)
	if err != nil {
		return err
	}
	inv.admission, inv.Record = rec, h
	rc, err := p.appendNow(ctx, rec)
	if err != nil {
		p.cfg.Log.Error("admission record", "err", err)
		return errAudit()
	}
	inv.receipt = rc
	return nil
}

// admissionRecord is the record of the request as the stages so far decided it.
func (inv *Invocation) admissionRecord() *oar.Record {
	rec := inv.record(oar.ActionBrainInvoke)
	if inv.data.Valid() {
		rec.Classification = inv.data.String()
	}
	msgs, _ := json.Marshal(inv.Messages)
	rec.Inputs = []oar.Digest{oar.DigestOf("messages", msgs)}
	// Each image and each result of the caller's own tools, digested on its own.
	var results []map[string]string
	for i, m := range inv.Messages {
		for j, part := range m.Parts {
			if part.Type == "image_url" && part.ImageURL != nil && len(rec.Inputs) < oar.MaxDigests {
				rec.Inputs = append(rec.Inputs, oar.DigestOf(fmt.Sprintf("messages[%d].content[%d].image", i, j), []byte(part.ImageURL.URL)))
			}
		}
		if m.Role == "tool" {
			results = append(results, map[string]string{"call_id": oar.Bounded(m.ToolCallID, oar.MaxOutsideValue), "name": oar.Bounded(toolNameOf(inv.Messages[:i], m.ToolCallID), oar.MaxOutsideValue)})
			if len(rec.Inputs) < oar.MaxDigests {
				rec.Inputs = append(rec.Inputs, oar.DigestOf(fmt.Sprintf("messages[%d].tool_result", i), []byte(m.Content)))
			}
		}
	}
	if len(results) > 0 {
		inv.noteAny("client_tool_results", results)
	}
	if len(inv.Params.Tools) > 0 {
		var names []string
		for _, t := range inv.Params.Tools {
			names = append(names, oar.Bounded(t.Function.Name, oar.MaxOutsideValue))
		}
		inv.noteAny("client_tools", names)
	}
	rec.Resource = "brain/" + inv.brainID()
	rec.Decision = inv.Decision
	if inv.Peer != nil {
		// Served for a peer: the record carries the peer's signed envelope.
		rec.Parties = []json.RawMessage{inv.Peer.Envelope}
		inv.note("origin", inv.Peer.Origin)
		inv.note("call", inv.Peer.Call)
	}
	if len(inv.detail) > 0 {
		rec.Detail = mustJSON(inv.detail)
	}
	return rec
}

// toolNameOf is the name of the tool the call id was made to, from the assistant
// messages before it.
func toolNameOf(before []Message, callID string) string {
	for i := len(before) - 1; i >= 0; i-- {
		for _, tc := range before[i].ToolCalls {
			if tc.ID == callID {
				return tc.Function.Name
			}
		}
	}
	return ""
}
