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
//
// With Dialect set it answers as that server does (Ollama, llama.cpp's llama-server,
// vLLM): the members each puts in its bodies and stream chunks, where it puts usage,
// how it encodes tool calls, its error bodies and messages, and how it reports a
// failure mid-stream. backend/testdata/golden holds those servers' recorded answers,
// and the tests check that the mock's have the same shape.
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
	// Dialect shapes the answers as a real server's: "" (a plain OpenAI-compatible
	// server, the default), "ollama", "llamacpp" (llama-server) or "vllm". Another
	// value is answered with a 500 naming it.
	Dialect string
	// ToolCall, if set, is returned instead of text, with finish_reason "tool_calls".
	// Streamed, its arguments arrive in three fragments (Ollama streams a call
	// whole). An empty ID becomes "call_mock_1" (in a Dialect, an id of that
	// server's form).
	ToolCall *backend.ToolCall
	// ToolCalls, if set, are several calls returned together, as ToolCall is (which
	// they replace). The call-only-if-offered rule of OnlyOffered applies to each.
	ToolCalls []backend.ToolCall
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
	// StreamError, if set, makes a FailAfter failure a server-reported one instead of
	// a broken connection: the stream carries this error the way the Dialect's server
	// reports one (an "error" chunk; for Ollama an empty chunk and the end of the
	// body, which is all its OpenAI layer passes on).
	StreamError string
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
	d, ok := dialectNamed(s.Dialect)
	if !ok {
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("mock: unknown Dialect %q (use \"\", \"ollama\", \"llamacpp\" or \"vllm\")", s.Dialect))
		return
	}
	var route func(*dialect, http.ResponseWriter, *http.Request, []byte)
	switch {
	case strings.HasSuffix(r.URL.Path, "/chat/completions"):
		route = s.chat
	case strings.HasSuffix(r.URL.Path, "/embeddings"):
		route = s.embeddings
	default:
		d.fail(w, http.StatusNotFound, "no route for "+r.URL.Path)
		return
	}
	if r.Method != http.MethodPost {
		d.fail(w, http.StatusMethodNotAllowed, r.Method+" is not allowed; use POST")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if err != nil {
		d.fail(w, http.StatusRequestEntityTooLarge, "request body too large or unreadable")
		return
	}
	s.mu.Lock()
	if len(s.received) == maxKept {
		s.received = s.received[1:]
	}
	s.received = append(s.received, body)
	s.mu.Unlock()
	route(d, w, r, body)
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

// answer is what the model says to one chat request, before a dialect shapes it.
type answer struct {
	seq          int64
	id           string
	created      int64
	model        string
	reply        string // the text, when calls is empty
	calls        []call // the tool calls, if any
	finish       string // "stop" or "tool_calls"
	usage        usage  // the server's own count
	includeUsage bool   // the client asked for usage in the stream
	failAfter    int    // see Server.FailAfter
	streamError  string // see Server.StreamError
}

// call is one tool call of an answer.
type call struct {
	id, name, arguments string
}

func (s *Server) chat(d *dialect, w http.ResponseWriter, r *http.Request, body []byte) {
	var req chatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		d.fail(w, http.StatusBadRequest, "the request is not valid JSON")
		return
	}
	if req.Model == "" || len(req.Messages) == 0 {
		d.fail(w, http.StatusBadRequest, "model and messages are required")
		return
	}
	if len(s.Models) > 0 && !slices.Contains(s.Models, req.Model) {
		d.unknownModel(w, req.Model)
		return
	}
	if s.NoTools && len(req.Tools) > 0 {
		d.noTools(w, req.Model)
		return
	}
	if !s.waitFor(r, req.Model) {
		return
	}
	s.chats.Add(1)
	seq := s.seq.Add(1)
	a := &answer{seq: seq, id: d.chatID(seq), created: time.Now().Unix(), model: req.Model, finish: "stop",
		failAfter: s.FailAfter, streamError: s.StreamError}
	a.includeUsage = req.StreamOptions != nil && req.StreamOptions.IncludeUsage && !s.OmitUsage
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
	a.reply = reply
	if !(s.ToolCallOnce && lastRole(req.Messages) == "tool") {
		a.calls = s.callsFor(d, seq, req.Tools)
	}
	completionText := reply
	if len(a.calls) > 0 {
		a.finish, a.reply, completionText = "tool_calls", "", ""
		for _, c := range a.calls {
			completionText += c.name + c.arguments
		}
	}
	a.usage = usage{PromptTokens: (len(body) + 3) / 4, CompletionTokens: len(strings.Fields(completionText)) + 1}
	a.usage.TotalTokens = a.usage.PromptTokens + a.usage.CompletionTokens

	if !req.Stream {
		writeJSON(w, http.StatusOK, d.jsonType, d.completion(a))
		return
	}
	s.streams.Add(1)
	w.Header().Set("Content-Type", d.streamType)
	w.Header().Set("Cache-Control", "no-cache")
	flusher, _ := w.(http.Flusher)
	send := func(data string) bool {
		if _, err := io.WriteString(w, "data: "+data+"\n\n"); err != nil {
			return false
		}
		if flusher != nil {
			flusher.Flush()
		}
		return true
	}
	sent := 0 // content chunks
	for _, ev := range d.stream(a) {
		if ev.content && a.failAfter > 0 && sent == a.failAfter {
			if a.streamError == "" {
				panic(http.ErrAbortHandler) // the connection breaks mid-answer
			}
			for _, tail := range d.streamFailure(a) {
				if !send(tail) {
					return
				}
			}
			return
		}
		if ev.content {
			sent++
		}
		if !send(ev.data) {
			return
		}
	}
}

// callsFor returns the tool calls the model makes: the configured ones, less those
// not offered when OnlyOffered is set, with ids of the dialect's form where none is set.
func (s *Server) callsFor(d *dialect, seq int64, offered []backend.Tool) []call {
	calls := s.ToolCalls
	if len(calls) == 0 && s.ToolCall != nil {
		calls = []backend.ToolCall{*s.ToolCall}
	}
	var out []call
	for _, tc := range calls {
		if s.OnlyOffered && !slices.ContainsFunc(offered, func(t backend.Tool) bool { return t.Function.Name == tc.Function.Name }) {
			continue
		}
		id := tc.ID
		if id == "" {
			id = d.callID(seq, len(out))
		}
		out = append(out, call{id: id, name: tc.Function.Name, arguments: tc.Function.Arguments})
	}
	return out
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

func (s *Server) embeddings(d *dialect, w http.ResponseWriter, r *http.Request, body []byte) {
	var req struct {
		Model string          `json:"model"`
		Input json.RawMessage `json:"input"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		d.fail(w, http.StatusBadRequest, "the request is not valid JSON")
		return
	}
	var inputs []string
	if err := json.Unmarshal(req.Input, &inputs); err != nil {
		var one string
		if err := json.Unmarshal(req.Input, &one); err != nil {
			d.fail(w, http.StatusBadRequest, "input must be a string or an array of strings")
			return
		}
		inputs = []string{one}
	}
	if req.Model == "" || len(inputs) == 0 {
		d.fail(w, http.StatusBadRequest, "model and input are required")
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
	vectors := make([][]float32, len(inputs))
	tokens := 0
	for i, in := range inputs {
		vectors[i] = Embedding(in, dim)
		tokens += len(strings.Fields(in)) + 1 // its own count, as a tokenizer would give
	}
	writeJSON(w, http.StatusOK, d.jsonType, d.embeddingList(s.seq.Add(1), req.Model, vectors, tokens))
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
	writeJSON(w, status, "application/json", openAIError(status, msg))
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	w.Header().Set("Content-Type", contentType)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
