package invoke

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sios-project/sios/oar"
)

// The complete stage: the completion record — what came back, how long it took, the
// tools the model called, or why it failed — linked to the admission record. It is
// written in the background: the answer does not wait for it (Wait does).

func (p *Pipeline) complete(ctx context.Context, inv *Invocation, cv *conversation, sink Sink, failure *Error) error {
	detail := map[string]any{"latency_ms": time.Since(inv.started).Milliseconds()}
	rec := inv.record(oar.ActionBrainComplete)
	rec.Resource = "brain/" + inv.brain.ID
	rec.Links = []oar.Link{{Rel: "admission", RecordHash: inv.Record}}
	if inv.Peer != nil && inv.Peer.Grant != nil {
		detail["consent"] = inv.Peer.Grant.ID
	}
	if d := inv.descent; d != nil && d.record != "" {
		// What the holder released for this answer, and through it the holder's record.
		rec.Links = append(rec.Links, oar.Link{Rel: "consent", RecordHash: d.record})
		detail["consent"] = d.grant.ID
	}
	if cv != nil {
		detail["usage"], detail["finish_reason"], detail["tool_calls"], detail["backend"] = cv.usage, cv.finish, cv.toolCalls, cv.backend
		detail["model"], detail["path"] = oar.Bounded(cv.model, oar.MaxOutsideValue), cv.path
		switch {
		case failure != nil && cv.streamed.bytes > 0:
			// What the caller actually received before the answer broke off.
			rec.Outputs = []oar.Digest{cv.streamed.digest()}
			detail["streamed_bytes"] = cv.streamed.bytes
		case failure == nil:
			rec.Outputs = []oar.Digest{oar.DigestOf("completion", []byte(cv.content))}
		}
		if len(cv.clientCalls) > 0 {
			var calls []map[string]string
			for i, tc := range cv.clientCalls {
				calls = append(calls, map[string]string{"name": oar.Bounded(tc.Function.Name, oar.MaxOutsideValue), "call_id": oar.Bounded(tc.ID, oar.MaxOutsideValue)})
				if len(rec.Outputs) < oar.MaxDigests {
					rec.Outputs = append(rec.Outputs, oar.DigestOf(fmt.Sprintf("tool_call[%d].arguments", i), []byte(tc.Function.Arguments)))
				}
			}
			detail["client_tool_calls"] = calls
		}
	}
	if failure != nil {
		detail["error"] = failure.Code
	}
	rec.Detail = mustJSON(detail)
	p.appendLater(ctx, rec, "completion record")
	if failure != nil {
		return failure
	}
	return sink.Finish(&Result{Content: cv.content, FinishReason: cv.finish, Usage: cv.usage, ToolCalls: cv.clientCalls,
		Fingerprint: fingerprint(cv.backend, cv.model, inv.brain.ID)})
}

// codeOf is the code of an outcome, "internal" for an error that is not one.
func codeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
