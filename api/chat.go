package api

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// ChatRequest is the subset of OpenAI's chat completion request the node honours.
// Other members clients send (top_p, seed, …) are accepted and ignored.
type ChatRequest struct {
	Model               string         `json:"model"`
	Messages            []ChatMessage  `json:"messages"`
	Stream              bool           `json:"stream"`
	StreamOptions       *StreamOptions `json:"stream_options,omitempty"`
	MaxTokens           *int           `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int           `json:"max_completion_tokens,omitempty"`
	Temperature         *float64       `json:"temperature,omitempty"`
	Tools               []any          `json:"tools,omitempty"`
	User                string         `json:"user,omitempty"`

	// Classification is the caller's declared classification of the data it sends
	// (header X-Sios-Classification); empty means OFFICIAL.
	Classification string `json:"-"`
}

// StreamOptions are OpenAI's stream options.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// ChatMessage is one message. Content may arrive as a string or as an array of parts;
// only text parts are accepted.
type ChatMessage struct {
	Role       string  `json:"role"`
	Content    Content `json:"content"`
	Name       string  `json:"name,omitempty"`
	ToolCallID string  `json:"tool_call_id,omitempty"`
}

// Content is message text, decoded from a string or from text parts.
type Content string

// UnmarshalJSON accepts "text", null, or [{"type":"text","text":"…"}, …].
func (c *Content) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*c = ""
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*c = Content(s)
		return nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(b, &parts); err != nil {
		return fmt.Errorf("content must be a string or an array of text parts")
	}
	var sb strings.Builder
	for _, p := range parts {
		if p.Type != "text" {
			return fmt.Errorf("content part type %q is not supported (only text)", p.Type)
		}
		sb.WriteString(p.Text)
	}
	*c = Content(sb.String())
	return nil
}

// MaxOutputTokens is the caller's token limit, if any.
func (r *ChatRequest) MaxOutputTokens() int {
	switch {
	case r.MaxCompletionTokens != nil:
		return *r.MaxCompletionTokens
	case r.MaxTokens != nil:
		return *r.MaxTokens
	}
	return 0
}

// Usage is token accounting, as OpenAI reports it.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// Validate applies the API's rules to a chat request; a peer's payload passes the same
// rules (ParsePeerPayload).
func (r *ChatRequest) Validate() error {
	if r.Model == "" {
		return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "missing_model", Param: "model",
			Message: "model is required: a brain id, or \"auto\" for the router (GET /v1/models lists them)"}
	}
	if len(r.Model) > MaxModelName {
		return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_model", Param: "model",
			Message: fmt.Sprintf("model is longer than %d bytes (MaxModelName)", MaxModelName)}
	}
	if len(r.Messages) == 0 {
		return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "missing_messages", Param: "messages",
			Message: "messages must hold at least one message"}
	}
	if len(r.Messages) > MaxMessages {
		return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "too_many_messages", Param: "messages",
			Message: fmt.Sprintf("more than %d messages (MaxMessages)", MaxMessages)}
	}
	for i, m := range r.Messages {
		switch m.Role {
		case "system", "developer", "user", "assistant", "tool":
		default:
			return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_role",
				Param: fmt.Sprintf("messages[%d].role", i), Message: fmt.Sprintf("messages[%d].role %q is not a chat role", i, m.Role)}
		}
	}
	if len(r.Tools) > 0 {
		return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "client_tools_unsupported", Param: "tools",
			Message: "client-side tools are not accepted: a brain's tools run inside the node's perimeter, under its allowlist and policy"}
	}
	if n := r.MaxOutputTokens(); n < 0 {
		return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_max_tokens", Param: "max_tokens",
			Message: "max_tokens must not be negative"}
	}
	return nil
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
	var req ChatRequest
	if err := decodeBody(w, r, &req); err != nil {
		return err
	}
	req.Classification = classificationHeader(r)
	if err := req.Validate(); err != nil {
		return err
	}
	cw := &chatWriter{w: w, stream: req.Stream, id: "chatcmpl-" + randomID(), created: time.Now().Unix(),
		usage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage}
	err := s.gw.Chat(r.Context(), req.Invocation(p), cw)
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

// Invocation is the pipeline's request for this chat request, made by p.
func (r *ChatRequest) Invocation(p *policy.Principal) *invoke.Invocation {
	inv := &invoke.Invocation{Principal: p, Model: r.Model, Temperature: r.Temperature, Stream: r.Stream,
		Classification: r.Classification, Messages: make([]invoke.Message, len(r.Messages))}
	if m := r.MaxOutputTokens(); m > 0 {
		inv.MaxTokens = &m
	}
	for i, m := range r.Messages {
		inv.Messages[i] = invoke.Message{Role: m.Role, Content: string(m.Content), Name: m.Name, ToolCallID: m.ToolCallID}
	}
	return inv
}

// ParsePeerPayload reads a remote call's payload (the chat request a peer's principal
// made) for brain, by exactly the rules of the API's own chat requests.
func ParsePeerPayload(payload []byte, brain, classification string) (*ChatRequest, *Error) {
	var req ChatRequest
	if err := json.Unmarshal(payload, &req); err != nil {
		return nil, Errorf(http.StatusBadRequest, "invalid_payload", "payload: %s", jsonProblem(err))
	}
	req.Model, req.Classification, req.Stream = brain, classification, false
	if err := req.Validate(); err != nil {
		var ae *Error
		if errors.As(err, &ae) {
			return nil, ae
		}
		return nil, Errorf(http.StatusBadRequest, "invalid_payload", "payload: %v", err)
	}
	return &req, nil
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
}

func (c *chatWriter) Start(brain string, receipt *oar.Receipt) error {
	c.model = brain
	h := c.w.Header()
	h.Set("X-Sios-Brain", brain)
	if receipt != nil {
		h.Set(ReceiptHeader, EncodeReceipt(receipt))
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
		"choices": []any{map[string]any{"index": 0, "delta": delta, "finish_reason": finish}},
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
		writeJSON(c.w, http.StatusOK, map[string]any{
			"id": c.id, "object": "chat.completion", "created": c.created, "model": c.model,
			"choices": []any{map[string]any{"index": 0, "message": map[string]any{"role": "assistant", "content": content},
				"finish_reason": finish}},
			"usage": usageOf(r),
		})
		return nil
	}
	if err := c.event(c.chunk(map[string]any{}, &finish)); err != nil {
		return err
	}
	if c.usage {
		u := usageOf(r)
		if err := c.event(map[string]any{"id": c.id, "object": "chat.completion.chunk", "created": c.created,
			"model": c.model, "choices": []any{}, "usage": u}); err != nil {
			return err
		}
	}
	return c.done()
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
