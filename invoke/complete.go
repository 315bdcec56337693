package invoke

import (
	"context"
	"errors"
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
	if cv != nil {
		rec.Outputs = []oar.Digest{oar.DigestOf("completion", []byte(cv.content))}
		detail["usage"], detail["finish_reason"], detail["tool_calls"], detail["backend"] = cv.usage, cv.finish, cv.toolCalls, cv.backend
	}
	if failure != nil {
		detail["error"] = failure.Code
	}
	rec.Detail = mustJSON(detail)
	p.appendLater(ctx, rec, "completion record")
	if failure != nil {
		return failure
	}
	return sink.Finish(&Result{Content: cv.content, FinishReason: cv.finish, Usage: cv.usage})
}

// codeOf is the code of an outcome, "internal" for an error that is not one.
func codeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
