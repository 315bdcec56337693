package api

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

func (s *Server) chat(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
	body, err := readBody(w, r)
	if err != nil {
		return err
	}
	req, perr := ParseChatRequest(body)
	if perr != nil {
		return perr
	}
	req.Classification = classificationHeader(r)
	grant, err := ParseConsentHeader(r.Header.Values(ConsentHeader))
	if err != nil {
		return err
	}
	cw := &chatWriter{w: w, stream: req.Stream, id: "chatcmpl-" + randomID(), created: time.Now().Unix(),
		usage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage}
	inv := req.Invocation(p)
	inv.Consent = grant
	err = s.gw.Chat(r.Context(), inv, cw)
	if err != nil && cw.started {
		// The stream is open: report in it, in OpenAI's shape, and end it.
		ae, ok := asError(err)
		if !ok {
			s.log.Error("chat failed mid-stream", "err", err)
			ae = Errorf(http.StatusInternalServerError, "internal_error", "the node could not complete the request; see its log")
		}
		var b errorBody
		b.Error.Message, b.Error.Type, b.Error.Code = ae.Message, ae.Type, ae.Code
		cw.event(b)
		cw.done()
		return nil
	}
	return err
}

// chatWriter renders a chat as one JSON response or as an SSE stream.
type chatWriter struct {
	w       http.ResponseWriter
	stream  bool
	usage   bool
	id      string
	created int64
	model   string
	started bool
	content strings.Builder
	// fingerprint is the system_fingerprint of the answer, once known.
	fingerprint string
}

func (c *chatWriter) Start(brain string, receipt *oar.Receipt) error {
	c.model = brain
	h := c.w.Header()
	h.Set("X-Sios-Brain", brain)
	if receipt != nil {
		setReceipt(h, c.w, receipt)
	}
	if !c.stream {
		return nil
	}
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	c.w.WriteHeader(http.StatusOK)
	c.started = true
	return c.event(c.chunk(map[string]any{"role": "assistant", "content": ""}, nil))
}

func (c *chatWriter) chunk(delta map[string]any, finish *string) map[string]any {
	return map[string]any{
		"id": c.id, "object": "chat.completion.chunk", "created": c.created, "model": c.model,
		"system_fingerprint": c.fingerprint,
		"choices":            []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}},
	}
}

func (c *chatWriter) Delta(content string) error {
	if !c.stream {
		c.content.WriteString(content)
		return nil
	}
	if content == "" {
		return nil
	}
	return c.event(c.chunk(map[string]any{"content": content}, nil))
}

func (c *chatWriter) Finish(r *invoke.Result) error {
	finish := r.FinishReason
	if finish == "" {
		finish = "stop"
	}
	if !c.stream {
		content := r.Content
		if content == "" {
			content = c.content.String()
		}
		msg := map[string]any{"role": "assistant", "content": content}
		if len(r.ToolCalls) > 0 {
			msg["tool_calls"] = wireToolCalls(r.ToolCalls, false)
			if content == "" {
				msg["content"] = nil
			}
		}
		writeJSON(c.w, http.StatusOK, map[string]any{
			"id": c.id, "object": "chat.completion", "created": c.created, "model": c.model,
			"system_fingerprint": r.Fingerprint,
			"choices":            []any{map[string]any{"index": 0, "message": msg, "finish_reason": finish}},
			"usage":              usageOf(r),
		})
		return nil
	}
	c.fingerprint = r.Fingerprint
	if len(r.ToolCalls) > 0 {
		if err := c.event(c.chunk(map[string]any{"tool_calls": wireToolCalls(r.ToolCalls, true)}, nil)); err != nil {
			return err
		}
	}
	if err := c.event(c.chunk(map[string]any{}, &finish)); err != nil {
		return err
	}
	if c.usage {
		u := usageOf(r)
		if err := c.event(map[string]any{"id": c.id, "object": "chat.completion.chunk", "created": c.created,
			"model": c.model, "system_fingerprint": c.fingerprint, "choices": []any{}, "usage": u}); err != nil {
			return err
		}
	}
	return c.done()
}

// wireToolCalls is the model's calls of the caller's tools as OpenAI sends them; in a
// stream each carries its index.
func wireToolCalls(calls []backend.ToolCall, indexed bool) []any {
	out := make([]any, len(calls))
	for i, tc := range calls {
		m := map[string]any{"id": tc.ID, "type": "function",
			"function": map[string]any{"name": tc.Function.Name, "arguments": tc.Function.Arguments}}
		if indexed {
			m["index"] = i
		}
		out[i] = m
	}
	return out
}

func (c *chatWriter) event(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	http.NewResponseController(c.w).SetWriteDeadline(time.Now().Add(WriteStallTimeout))
	if _, err := fmt.Fprintf(c.w, "data: %s\n\n", b); err != nil {
		return err
	}
	if f, ok := c.w.(http.Flusher); ok {
		f.Flush()
	}
	return nil
}

func (c *chatWriter) done() error {
	_, err := fmt.Fprint(c.w, "data: [DONE]\n\n")
	if f, ok := c.w.(http.Flusher); ok {
		f.Flush()
	}
	return err
}

func randomID() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func usageOf(r *invoke.Result) Usage {
	return Usage{PromptTokens: r.Usage.PromptTokens, CompletionTokens: r.Usage.CompletionTokens, TotalTokens: r.Usage.TotalTokens}
}
