package invoke

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
)

// The complete stage: the completion record — what came back, how long it took, the
// tools the model called, or why it failed — linked to the admission record. It is
// written in the background: the answer does not wait for it (Wait does).

func (p *Pipeline) complete(ctx context.Context, inv *Invocation, cv *conversation, sink Sink, failure *Error) error {
	detail := completionDetail(inv, cv, failure)
	rec := inv.record(oar.ActionBrainComplete)
	rec.Resource = "brain/" + inv.brain.ID
	rec.Links = []oar.Link{{Rel: "admission", RecordHash: inv.Record}}
	if d := inv.descent; d != nil && d.record != "" {
		// What the holder released for this answer, and through it the holder's record.
		rec.Links = append(rec.Links, oar.Link{Rel: "consent", RecordHash: d.record})
	}
	if cv != nil {
		switch {
		case failure != nil && cv.streamed.bytes > 0:
			// What the caller actually received before the answer broke off.
			rec.Outputs = []oar.Digest{cv.streamed.digest()}
		case failure == nil:
			rec.Outputs = []oar.Digest{oar.DigestOf("completion", []byte(cv.content))}
		}
		for i, tc := range cv.clientCalls {
			if len(rec.Outputs) < oar.MaxDigests {
				rec.Outputs = append(rec.Outputs, oar.DigestOf(fmt.Sprintf("tool_call[%d].arguments", i), []byte(tc.Function.Arguments)))
			}
		}
	}
	rec.Detail = detail.appendJSON(make([]byte, 0, 256))
	p.appendLater(ctx, rec, "completion record")
	if failure != nil {
		return failure
	}
	return sink.Finish(&Result{Content: cv.content, FinishReason: cv.finish, Usage: cv.usage, ToolCalls: cv.clientCalls,
		Fingerprint: fingerprint(cv.backend, cv.model, inv.brain.ID)})
}

// completionDetails is a completion record's detail: how long the request took, and
// what the conversation (if there was one) and the failure (if any) were. A struct,
// not a map: it is encoded for every answer.
type completionDetails struct {
	Backend         *string             `json:"backend,omitempty"`
	ClientToolCalls []map[string]string `json:"client_tool_calls,omitempty"`
	Consent         string              `json:"consent,omitempty"`
	Error           Code                `json:"error,omitempty"`
	FinishReason    *string             `json:"finish_reason,omitempty"`
	LatencyMS       int64               `json:"latency_ms"`
	Model           *string             `json:"model,omitempty"`
	Path            *string             `json:"path,omitempty"`
	StreamedBytes   int                 `json:"streamed_bytes,omitempty"`
	ToolCalls       *[]toolOutcome      `json:"tool_calls,omitempty"` // set (null when none) with a conversation
	Usage           *backend.Usage      `json:"usage,omitempty"`
}

// appendJSON appends d as encoding/json writes it (TestCompletionDetailJSONIsEncodingJSON,
// FuzzCompletionDetailJSON), without reflection; the tool-call lists, rare, are
// written by encoding/json.
func (d *completionDetails) appendJSON(b []byte) []byte {
	b = append(b, '{')
	str := func(name, v string) {
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, `":`...)
		b = jcs.AppendQuoted(b, v, true)
		b = append(b, ',')
	}
	if d.Backend != nil {
		str("backend", *d.Backend)
	}
	if len(d.ClientToolCalls) > 0 {
		b = append(b, `"client_tool_calls":`...)
		b = append(b, mustJSON(d.ClientToolCalls)...)
		b = append(b, ',')
	}
	if d.Consent != "" {
		str("consent", d.Consent)
	}
	if d.Error != "" {
		str("error", string(d.Error))
	}
	if d.FinishReason != nil {
		str("finish_reason", *d.FinishReason)
	}
	b = append(b, `"latency_ms":`...)
	b = strconv.AppendInt(b, d.LatencyMS, 10)
	b = append(b, ',')
	if d.Model != nil {
		str("model", *d.Model)
	}
	if d.Path != nil {
		str("path", *d.Path)
	}
	if d.StreamedBytes != 0 {
		b = append(b, `"streamed_bytes":`...)
		b = strconv.AppendInt(b, int64(d.StreamedBytes), 10)
		b = append(b, ',')
	}
	if d.ToolCalls != nil {
		b = append(b, `"tool_calls":`...)
		if *d.ToolCalls == nil {
			b = append(b, "null"...)
		} else {
			b = append(b, mustJSON(*d.ToolCalls)...)
		}
		b = append(b, ',')
	}
	if u := d.Usage; u != nil {
		b = append(b, `"usage":{"prompt_tokens":`...)
		b = strconv.AppendInt(b, int64(u.PromptTokens), 10)
		b = append(b, `,"completion_tokens":`...)
		b = strconv.AppendInt(b, int64(u.CompletionTokens), 10)
		b = append(b, `,"total_tokens":`...)
		b = strconv.AppendInt(b, int64(u.TotalTokens), 10)
		b = append(b, "},"...)
	}
	b[len(b)-1] = '}' // latency_ms is always there: the last byte is a comma
	return b
}

func completionDetail(inv *Invocation, cv *conversation, failure *Error) *completionDetails {
	d := &completionDetails{LatencyMS: time.Since(inv.started).Milliseconds()}
	if inv.Peer != nil && inv.Peer.Grant != nil {
		d.Consent = inv.Peer.Grant.ID
	}
	if inv.descent != nil && inv.descent.record != "" {
		d.Consent = inv.descent.grant.ID
	}
	if cv != nil {
		model := oar.Bounded(cv.model, oar.MaxOutsideValue)
		d.Usage, d.FinishReason, d.ToolCalls, d.Backend = &cv.usage, &cv.finish, &cv.toolCalls, &cv.backend
		d.Model, d.Path = &model, &cv.path
		if failure != nil && cv.streamed.bytes > 0 {
			d.StreamedBytes = cv.streamed.bytes
		}
		for _, tc := range cv.clientCalls {
			d.ClientToolCalls = append(d.ClientToolCalls, map[string]string{"name": oar.Bounded(tc.Function.Name, oar.MaxOutsideValue), "call_id": oar.Bounded(tc.ID, oar.MaxOutsideValue)})
		}
	}
	if failure != nil {
		d.Error = failure.Code
	}
	return d
}

// codeOf is the code of an outcome, "internal" for an error that is not one.
func codeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return CodeInternal
}
