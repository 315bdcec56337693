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
	empty := ""
	return c.event(c.chunk(&wireDelta{Role: "assistant", Content: &empty}, nil))
}

// completion is a chat completion or one chunk of its stream, as OpenAI sends them.
type completion struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	SystemFingerprint string       `json:"system_fingerprint"`
	Choices           []wireChoice `json:"choices"`
	Usage             *Usage       `json:"usage,omitempty"`
}

type wireChoice struct {
	Index        int          `json:"index"`
	Message      *wireMessage `json:"message,omitempty"`
	Delta        *wireDelta   `json:"delta,omitempty"`
	FinishReason *string      `json:"finish_reason"`
}

// wireMessage is the answer of a completion: its content is null when the model
// only called the caller's tools.
type wireMessage struct {
	Role      string         `json:"role"`
	Content   *string        `json:"content"`
	ToolCalls []wireToolCall `json:"tool_calls,omitempty"`
}

// wireDelta is what one chunk of a stream adds ({} in the last).
type wireDelta struct {
	Role      string         `json:"role,omitempty"`
	Content   *string        `json:"content,omitempty"`
	ToolCalls []wireToolCall `json:"tool_calls,omitempty"`
}

type wireToolCall struct {
	Index    *int         `json:"index,omitempty"`
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function wireFunction `json:"function"`
}

type wireFunction struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

func (c *chatWriter) chunk(delta *wireDelta, finish *string) *completion {
	return &completion{ID: c.id, Object: "chat.completion.chunk", Created: c.created, Model: c.model,
		SystemFingerprint: c.fingerprint, Choices: []wireChoice{{Delta: delta, FinishReason: finish}}}
}

func (c *chatWriter) Delta(content string) error {
	if !c.stream {
		c.content.WriteString(content)
		return nil
	}
	if content == "" {
		return nil
	}
	return c.event(c.chunk(&wireDelta{Content: &content}, nil))
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
		msg := &wireMessage{Role: "assistant", Content: &content}
		if len(r.ToolCalls) > 0 {
			msg.ToolCalls = wireToolCalls(r.ToolCalls, false)
			if content == "" {
				msg.Content = nil
			}
		}
		u := usageOf(r)
		answer := &completion{ID: c.id, Object: "chat.completion", Created: c.created, Model: c.model,
			SystemFingerprint: r.Fingerprint, Choices: []wireChoice{{Message: msg, FinishReason: &finish}}, Usage: &u}
		return writeJSONBytes(c.w, http.StatusOK, append(answer.appendJSON(make([]byte, 0, 512+len(content))), '\n'))
	}
	c.fingerprint = r.Fingerprint
	if len(r.ToolCalls) > 0 {
		if err := c.event(c.chunk(&wireDelta{ToolCalls: wireToolCalls(r.ToolCalls, true)}, nil)); err != nil {
			return err
		}
	}
	if err := c.event(c.chunk(&wireDelta{}, &finish)); err != nil {
		return err
	}
	if c.usage {
		u := usageOf(r)
		if err := c.event(&completion{ID: c.id, Object: "chat.completion.chunk", Created: c.created, Model: c.model,
			SystemFingerprint: c.fingerprint, Choices: []wireChoice{}, Usage: &u}); err != nil {
			return err
		}
	}
	return c.done()
}

// wireToolCalls is the model's calls of the caller's tools as OpenAI sends them; in a
// stream each carries its index.
func wireToolCalls(calls []backend.ToolCall, indexed bool) []wireToolCall {
	out := make([]wireToolCall, len(calls))
	for i, tc := range calls {
		out[i] = wireToolCall{ID: tc.ID, Type: "function", Function: wireFunction{Name: tc.Function.Name, Arguments: tc.Function.Arguments}}
		if indexed {
			out[i].Index = &i
		}
	}
	return out
}

func (c *chatWriter) event(v any) error {
	b := append(make([]byte, 0, 256), "data: "...)
	if cp, ok := v.(*completion); ok {
		b = cp.appendJSON(b)
	} else {
		j, err := json.Marshal(v)
		if err != nil {
			return err
		}
		b = append(b, j...)
	}
	b = append(b, "\n\n"...)
	http.NewResponseController(c.w).SetWriteDeadline(time.Now().Add(WriteStallTimeout))
	if _, err := c.w.Write(b); err != nil {
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
