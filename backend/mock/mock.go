// Package mock is an OpenAI-compatible model server for tests and benchmarks. It is
// not a model: every chat completion gets the same reply (or tool call) after a fixed
// service time, streamed when the client asks, and every text gets a deterministic
// embedding. It counts the requests it serves.
//
// Serve it on loopback:
//
//	srv := &mock.Server{Latency: 20 * time.Millisecond, Reply: "Hello"}
//	ts := httptest.NewServer(srv) // base URL ts.URL + "/v1"
//
// It answers POST …/chat/completions and POST …/embeddings (any path prefix, so both
// ts.URL and ts.URL+"/v1" work as a base URL) and answers anything else with an
// OpenAI-shaped 404.
package mock

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/sios-project/sios/backend"
)

// DefaultReply is the reply when Server.Reply is empty.
const DefaultReply = "OK"

// DefaultDimensions is the embedding size when Server.Dimensions is zero.
const DefaultDimensions = 8

// maxRequestBytes caps a request body.
const maxRequestBytes = 8 << 20

// Server is a mock model server; it is an http.Handler and safe for concurrent use.
// Set its fields before serving and do not change them while it serves.
type Server struct {
	// Latency is the service time: how long each request waits before its first byte
	// (chat and embeddings alike). A client that goes away stops the wait.
	Latency time.Duration
	// Reply is the assistant's answer (DefaultReply if empty). Streamed, it is sent
	// one word per chunk, each word with the space before it.
	Reply string
	// ToolCall, if set, is returned instead of text, with finish_reason "tool_calls".
	// Streamed, its arguments arrive in three fragments. An empty ID becomes
	// "call_mock_1".
	ToolCall *backend.ToolCall
	// ToolCallOnce makes ToolCall behave as a model that calls a tool and then answers:
	// a request whose last message is a tool result gets Reply instead.
	ToolCallOnce bool
	// OnlyOffered makes ToolCall behave as a model that calls only tools it was
	// offered: a request that does not offer a tool of ToolCall's name gets Reply.
	OnlyOffered bool
	// NoTools makes the server refuse any request that offers tools, with the 400
	// Ollama gives for a model without tool support.
	NoTools bool
	// Models, when set, are the only models it serves: another gets the 404 Ollama
	// gives for a model it has not pulled.
	Models []string
	// FailAfter, when positive, breaks a streamed answer off after that many content
	// chunks: the connection is closed mid-stream.
	FailAfter int
	// OmitUsage leaves usage out of streams even when the client asks for it
	// (stream_options.include_usage), as some servers do.
	OmitUsage bool
	// Dimensions is the embedding size (DefaultDimensions if zero).
	Dimensions int
	// Choose, if set, picks the value of each enum a json_schema answer fills, as a
	// model with opinions would: it is called with the request's model and the enum's
	// values, and a value it returns that is not among them means the first. It must
	// be safe for concurrent use.
	Choose func(model string, enum []any) any
	// LatencyOf, if set, is each model's service time, in place of Latency. It must be
	// safe for concurrent use.
	LatencyOf func(model string) time.Duration

	mu       sync.Mutex
	received [][]byte // guarded by mu; the latest maxKept request bodies

	requests atomic.Int64
	chats    atomic.Int64
	streams  atomic.Int64
	embeds   atomic.Int64
	seq      atomic.Int64
}

// maxKept bounds the request bodies Received keeps.
const maxKept = 256

// Received returns the bodies of the latest requests it answered (chat and
// embeddings), oldest first: what a model server would have seen.
func (s *Server) Received() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.received...)
}

// Requests is how many HTTP requests the server has received, valid or not.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Chats is how many chat completions it has answered, streamed or not.
func (s *Server) Chats() int64 { return s.chats.Load() }

// Streams is how many of those chat completions were streamed.
func (s *Server) Streams() int64 { return s.streams.Load() }

// Embeds is how many embeddings requests it has answered.
func (s *Server) Embeds() int64 { return s.embeds.Load() }

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	var route func(http.ResponseWriter, *http.Request, []byte)
	switch {
	case strings.HasSuffix(r.URL.Path, "/chat/completions"):
		route = s.chat
	case strings.HasSuffix(r.URL.Path, "/embeddings"):
		route = s.embeddings
	default:
		writeError(w, http.StatusNotFound, "no route for "+r.URL.Path)
		return
	}
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, r.Method+" is not allowed; use POST")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "request body too large or unreadable")
		return
	}
	s.mu.Lock()
	if len(s.received) == maxKept {
		s.received = s.received[1:]
	}
	s.received = append(s.received, body)
	s.mu.Unlock()
	route(w, r, body)
}

// wait sleeps for the service time; false if the client left first.
func (s *Server) wait(r *http.Request) bool { return s.sleep(r, s.Latency) }

// waitFor sleeps for model's service time; false if the client left first.
func (s *Server) waitFor(r *http.Request, model string) bool {
	if s.LatencyOf != nil {
		return s.sleep(r, s.LatencyOf(model))
	}
	return s.wait(r)
}

func (s *Server) sleep(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

type chatRequest struct {
	Model          string            `json:"model"`
	Messages       []json.RawMessage `json:"messages"`
	Stream         bool              `json:"stream"`
	Tools          []backend.Tool    `json:"tools"`
	Stop           []string          `json:"stop"`
	ResponseFormat *struct {
		Type       string `json:"type"`
		JSONSchema *struct {
			Schema json.RawMessage `json:"schema"`
		} `json:"json_schema"`
	} `json:"response_format"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type toolCall struct {
	Index    *int   `json:"index,omitempty"`
	ID       string `json:"id,omitempty"`
	Type     string `json:"type,omitempty"`
	Function struct {
		Name      string `json:"name,omitempty"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type message struct {
	Role      string     `json:"role,omitempty"`
	Content   *string    `json:"content,omitempty"`
	ToolCalls []toolCall `json:"tool_calls,omitempty"`
}

type choice struct {
	Index        int      `json:"index"`
	Message      *message `json:"message,omitempty"`
	Delta        *message `json:"delta,omitempty"`
	FinishReason *string  `json:"finish_reason"`
}

type completion struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"`
	Created int64    `json:"created"`
	Model   string   `json:"model"`
	Choices []choice `json:"choices"`
	Usage   *usage   `json:"usage,omitempty"`
}

func (s *Server) chat(w http.ResponseWriter, r *http.Request, body []byte) {
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "the request is not valid JSON")
		return
	}
	if req.Model == "" || len(req.Messages) == 0 {
		writeError(w, http.StatusBadRequest, "model and messages are required")
		return
	}
	if len(s.Models) > 0 && !slices.Contains(s.Models, req.Model) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("model %q not found, try pulling it first", req.Model))
		return
	}
	if s.NoTools && len(req.Tools) > 0 {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("registry.ollama.ai/library/%s:latest does not support tools", req.Model))
		return
	}
	if !s.waitFor(r, req.Model) {
		return
	}
	s.chats.Add(1)
	id := fmt.Sprintf("chatcmpl-mock-%d", s.seq.Add(1))
	reply := s.Reply
	if reply == "" {
		reply = DefaultReply
	}
	if rf := req.ResponseFormat; rf != nil && rf.Type == "json_object" {
		b, _ := json.Marshal(map[string]string{"answer": reply})
		reply = string(b)
	} else if rf != nil && rf.Type == "json_schema" && rf.JSONSchema != nil {
		b, _ := json.Marshal(s.conform(req.Model, rf.JSONSchema.Schema, reply))
		reply = string(b)
	}
	for _, stop := range req.Stop {
		if i := strings.Index(reply, stop); stop != "" && i >= 0 {
			reply = reply[:i]
		}
	}
	finish := "stop"
	var tc *toolCall
	offered := s.ToolCall != nil && (!s.OnlyOffered || slices.ContainsFunc(req.Tools, func(t backend.Tool) bool { return t.Function.Name == s.ToolCall.Function.Name }))
	if offered && !(s.ToolCallOnce && lastRole(req.Messages) == "tool") {
		finish = "tool_calls"
		tc = &toolCall{ID: s.ToolCall.ID, Type: "function"}
		if tc.ID == "" {
			tc.ID = "call_mock_1"
		}
		tc.Function.Name = s.ToolCall.Function.Name
		tc.Function.Arguments = s.ToolCall.Function.Arguments
		reply = ""
	}
	completionText := reply
	if tc != nil {
		completionText = tc.Function.Name + tc.Function.Arguments
	}
	u := usage{PromptTokens: (len(body) + 3) / 4, CompletionTokens: len(strings.Fields(completionText)) + 1}
	u.TotalTokens = u.PromptTokens + u.CompletionTokens
	out := completion{ID: id, Created: time.Now().Unix(), Model: req.Model}

	if !req.Stream {
		out.Object = "chat.completion"
		m := &message{Role: "assistant"}
		if tc != nil {
			m.ToolCalls = []toolCall{*tc}
		} else {
			m.Content = &reply
		}
		out.Choices = []choice{{Message: m, FinishReason: &finish}}
		out.Usage = &u
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(&out)
		return
	}

	s.streams.Add(1)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	flusher, _ := w.(http.Flusher)
	out.Object = "chat.completion.chunk"
	send := func(c completion) bool {
		b, _ := json.Marshal(&c)
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	delta := func(m *message, finish *string) completion {
		c := out
		c.Choices = []choice{{Delta: m, FinishReason: finish}}
		return c
	}
	empty := ""
	if !send(delta(&message{Role: "assistant", Content: &empty}, nil)) {
		return
	}
	if tc != nil {
		zero := 0
		head := toolCall{Index: &zero, ID: tc.ID, Type: tc.Type}
		head.Function.Name = tc.Function.Name
		if !send(delta(&message{ToolCalls: []toolCall{head}}, nil)) {
			return
		}
		for _, frag := range split3(tc.Function.Arguments) {
			f := toolCall{Index: &zero}
			f.Function.Arguments = frag
			if !send(delta(&message{ToolCalls: []toolCall{f}}, nil)) {
				return
			}
		}
	} else {
		for i, word := range words(reply) {
			if s.FailAfter > 0 && i == s.FailAfter {
				panic(http.ErrAbortHandler) // the connection breaks mid-answer
			}
			if !send(delta(&message{Content: &word}, nil)) {
				return
			}
		}
	}
	if !send(delta(&message{}, &finish)) {
		return
	}
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage && !s.OmitUsage {
		c := out
		c.Choices = []choice{}
		c.Usage = &u
		if !send(c) {
			return
		}
	}
	io.WriteString(w, "data: [DONE]\n\n")
}

// conform makes a value of a JSON schema, as a model in JSON-schema mode would: an
// object with every property, the first of an enum (or the one Choose picks), text for
// strings.
func (s *Server) conform(model string, schema json.RawMessage, text string) any {
	var sc struct {
		Type       string                     `json:"type"`
		Enum       []any                      `json:"enum"`
		Properties map[string]json.RawMessage `json:"properties"`
	}
	json.Unmarshal(schema, &sc)
	switch {
	case len(sc.Enum) > 0:
		if s.Choose != nil {
			if v := s.Choose(model, sc.Enum); slices.Contains(sc.Enum, v) {
				return v
			}
		}
		return sc.Enum[0]
	case sc.Type == "object":
		out := map[string]any{}
		for k, v := range sc.Properties {
			out[k] = s.conform(model, v, text)
		}
		return out
	case sc.Type == "number":
		return 0.75
	case sc.Type == "integer":
		return 1
	case sc.Type == "boolean":
		return true
	case sc.Type == "array":
		return []any{}
	}
	return text
}

// lastRole is the role of the request's last message.
func lastRole(msgs []json.RawMessage) string {
	if len(msgs) == 0 {
		return ""
	}
	var m struct {
		Role string `json:"role"`
	}
	json.Unmarshal(msgs[len(msgs)-1], &m)
	return m.Role
}

// words splits s before each space, so the pieces concatenate back to s.
func words(s string) []string {
	var out []string
	for len(s) > 0 {
		i := strings.IndexByte(s[1:], ' ')
		if i < 0 {
			out = append(out, s)
			break
		}
		out = append(out, s[:i+1])
		s = s[i+1:]
	}
	return out
}

// split3 cuts s into three pieces on rune boundaries (some may be empty).
func split3(s string) []string {
	cut := func(n int) int {
		for n > 0 && n < len(s) && !utf8.RuneStart(s[n]) {
			n--
		}
		return n
	}
	a, b := cut(len(s)/3), cut(2*len(s)/3)
	return []string{s[:a], s[a:b], s[b:]}
}

func (s *Server) embeddings(w http.ResponseWriter, r *http.Request, body []byte) {
	var req struct {
		Model string          `json:"model"`
		Input json.RawMessage `json:"input"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "the request is not valid JSON")
		return
	}
	var inputs []string
	if err := json.Unmarshal(req.Input, &inputs); err != nil {
		var one string
		if err := json.Unmarshal(req.Input, &one); err != nil {
			writeError(w, http.StatusBadRequest, "input must be a string or an array of strings")
			return
		}
		inputs = []string{one}
	}
	if req.Model == "" || len(inputs) == 0 {
		writeError(w, http.StatusBadRequest, "model and input are required")
		return
	}
	if !s.wait(r) {
		return
	}
	s.embeds.Add(1)
	dim := s.Dimensions
	if dim <= 0 {
		dim = DefaultDimensions
	}
	type item struct {
		Object    string    `json:"object"`
		Index     int       `json:"index"`
		Embedding []float32 `json:"embedding"`
	}
	out := struct {
		Object string `json:"object"`
		Data   []item `json:"data"`
		Model  string `json:"model"`
		Usage  usage  `json:"usage"`
	}{Object: "list", Model: req.Model}
	tokens := 0
	for i, in := range inputs {
		out.Data = append(out.Data, item{Object: "embedding", Index: i, Embedding: Embedding(in, dim)})
		tokens += len(strings.Fields(in)) + 1 // its own count, as a tokenizer would give
	}
	out.Usage = usage{PromptTokens: tokens, TotalTokens: tokens}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(&out)
}

// Embedding is the vector the mock gives text: dim numbers derived from SHA-256 of the
// text, scaled to unit length.
func Embedding(text string, dim int) []float32 {
	v := make([]float32, dim)
	var sum float64
	var block [sha256.Size]byte
	for i := range v {
		if i%(sha256.Size/4) == 0 {
			var ctr [8]byte
			binary.BigEndian.PutUint64(ctr[:], uint64(i))
			block = sha256.Sum256(append(ctr[:], text...))
		}
		off := 4 * (i % (sha256.Size / 4))
		x := float64(binary.BigEndian.Uint32(block[off:]))/float64(math.MaxUint32)*2 - 1
		v[i] = float32(x)
		sum += x * x
	}
	if norm := math.Sqrt(sum); norm > 0 {
		for i := range v {
			v[i] = float32(float64(v[i]) / norm)
		}
	}
	return v
}

// writeError answers in OpenAI's error shape.
func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{
		"message": msg,
		"type":    "invalid_request_error",
		"code":    status,
	}})
}
