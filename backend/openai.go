package backend

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// Options configures an OpenAI client.
type Options struct {
	// HTTPClient makes every request; it is required so that the node decides how the
	// client dials (egress.Guard.HTTPTransport). Its Timeout, if any, also bounds
	// streams; prefer bounding each call with its context.
	HTTPClient *http.Client
	// APIKey, if set, is sent as "Authorization: Bearer APIKey".
	APIKey string
	// MaxResponseBytes caps the bytes read from one response, streamed or not
	// (default DefaultMaxResponseBytes).
	MaxResponseBytes int64
}

// OpenAI is a client for a server that speaks the OpenAI chat completions and
// embeddings API. It is safe for concurrent use.
type OpenAI struct {
	base     string
	chatURL  string
	embedURL string
	client   *http.Client
	apiKey   string
	maxBytes int64

	// direct, when not nil, carries posts to a plain http:// server straight through
	// the node's Transport (see directPosts); chat, chatStream and embed are the heads.
	direct                  *Transport
	chat, chatStream, embed *directPost
}

var _ Backend = (*OpenAI)(nil)

// NewOpenAI returns a client for the server at baseURL.
//
// The base URL rule: an http or https URL with no user, query or fragment. If its path
// is empty or "/", "/v1" is appended; any other path is used as given, less a
// trailing slash. So "http://127.0.0.1:11434", "http://127.0.0.1:11434/" and
// "http://127.0.0.1:11434/v1/" all mean http://127.0.0.1:11434/v1, and a server
// behind a path prefix is given with its full path ("http://gw:8080/llm/v1"). Chat
// posts to {base}/chat/completions and Embed to {base}/embeddings.
func NewOpenAI(baseURL string, opts Options) (*OpenAI, error) {
	base, err := normBaseURL(baseURL)
	if err != nil {
		return nil, err
	}
	if opts.HTTPClient == nil {
		return nil, errors.New("backend: Options.HTTPClient is required (build it on egress.Guard.HTTPTransport so the model server is dialled through the egress guard)")
	}
	if opts.MaxResponseBytes < 0 {
		return nil, fmt.Errorf("backend: Options.MaxResponseBytes is %d; it must be positive, or 0 for the default", opts.MaxResponseBytes)
	}
	if opts.MaxResponseBytes == 0 {
		opts.MaxResponseBytes = DefaultMaxResponseBytes
	}
	o := &OpenAI{
		base:     base,
		chatURL:  base + "/chat/completions",
		embedURL: base + "/embeddings",
		client:   opts.HTTPClient,
		apiKey:   opts.APIKey,
		maxBytes: opts.MaxResponseBytes,
	}
	o.directPosts()
	return o, nil
}

func normBaseURL(raw string) (string, error) {
	if !strings.Contains(raw, "://") {
		return "", fmt.Errorf("backend: base URL %q must be an http or https URL, e.g. http://127.0.0.1:11434/v1", raw)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("backend: base URL %q: %v", raw, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("backend: base URL %q: must be an http or https URL, e.g. http://127.0.0.1:11434/v1", raw)
	case u.Host == "":
		return "", fmt.Errorf("backend: base URL %q has no host", raw)
	case u.User != nil:
		return "", fmt.Errorf("backend: base URL %q: put credentials in Options.APIKey, not the URL", u.Redacted())
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return "", fmt.Errorf("backend: base URL %q must have no query or fragment", raw)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	if u.Path == "" {
		u.Path = "/v1"
	}
	return u.String(), nil
}

// BaseURL returns the normalised base URL, e.g. "http://127.0.0.1:11434/v1".
func (o *OpenAI) BaseURL() string { return o.base }

// wireChatRequest is the request body: ChatRequest plus the streaming switches.
type wireChatRequest struct {
	ChatRequest
	Stream        bool           `json:"stream,omitempty"`
	StreamOptions *streamOptions `json:"stream_options,omitempty"`
}

type streamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// decodeAnswer reads a model server's JSON answer (a completion, a stream chunk, an
// embeddings list) into v. It is lenient about members it does not know: servers add
// their own freely (Ollama's, vLLM's prompt_logprobs and kv_transfer_params,
// llama.cpp's timings, reasoning_content), and an answer must not fail for a newer
// server's extra. It refuses a member given twice, naming it: encoding/json would let
// the last one win, so an answer with two contents or two finish_reasons would be
// recorded as one the server may not have meant; and it matches names exactly, so a
// differently cased member is skipped as an unknown one rather than taken for the
// real one. Invalid UTF-8 is replaced by U+FFFD as encoding/json did: a model may cut
// a multi-byte character at a token boundary, and that is no reason to lose the
// answer. It is not jcs.DecodeStrict, which would also refuse noncharacters and lone
// surrogates in what the model wrote.
func decodeAnswer(b []byte, v any) error {
	return jsonv2.Unmarshal(b, v, jsontext.AllowInvalidUTF8(true))
}

// completion is a non-streamed chat completion.
type completion struct {
	ID      string             `json:"id"`
	Model   string             `json:"model"`
	Choices []completionChoice `json:"choices"`
	Usage   *Usage             `json:"usage"`
	Error   json.RawMessage    `json:"error"`
}

// completionChoice is one of a completion's choices.
type completionChoice struct {
	Message      wireMessage `json:"message"`
	FinishReason string      `json:"finish_reason"`
}

// wireMessage is a choice's message, or a chunk's delta of one: what the node reads
// of it.
type wireMessage struct {
	Content   string         `json:"content"`
	ToolCalls []wireToolCall `json:"tool_calls"`
}

// streamChunk is one chat.completion.chunk.
type streamChunk struct {
	ID      string          `json:"id"`
	Model   string          `json:"model"`
	Choices []streamChoice  `json:"choices"`
	Usage   *Usage          `json:"usage"`
	Error   json.RawMessage `json:"error"`
}

// streamChoice is one of a chunk's choices.
type streamChoice struct {
	Index        int         `json:"index"`
	Delta        wireMessage `json:"delta"`
	FinishReason string      `json:"finish_reason"`
}

// wireToolCall is a tool call or a fragment of one as servers send it.
type wireToolCall struct {
	Index    *int   `json:"index"`
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string     `json:"name"`
		Arguments jsonString `json:"arguments"`
	} `json:"function"`
}

// jsonString is a string member that some servers send as a JSON object instead
// (tool-call arguments); an object is kept as its JSON text.
type jsonString string

func (s *jsonString) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var v string
		if err := json.Unmarshal(b, &v); err != nil {
			return err
		}
		*s = jsonString(v)
		return nil
	}
	if string(b) == "null" {
		return nil
	}
	*s = jsonString(b)
	return nil
}

// Chat implements Backend.
func (o *OpenAI) Chat(ctx context.Context, req ChatRequest, onDelta func(Delta) error) (*ChatResponse, error) {
	if req.Model == "" {
		return nil, errors.New("backend: chat request has no model")
	}
	if len(req.Messages) == 0 {
		return nil, errors.New("backend: chat request has no messages")
	}
	wire := wireChatRequest{ChatRequest: withDefaultTypes(req)}
	if onDelta != nil {
		wire.Stream = true
		wire.StreamOptions = &streamOptions{IncludeUsage: true}
	}
	resp, body, err := o.post(ctx, o.chatURL, &wire, onDelta != nil, requestTexts(&req))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()

	if onDelta == nil || isJSON(resp.Header.Get("Content-Type")) {
		// Not streamed, or a server that ignored "stream": one delta with it all.
		out, err := o.readCompletion(ctx, body, &req)
		if err != nil {
			return nil, err
		}
		if onDelta != nil && (out.Content != "" || len(out.ToolCalls) > 0) {
			if err := onDelta(Delta{Content: out.Content, ToolCalls: out.ToolCalls}); err != nil {
				return nil, fmt.Errorf("backend: stream stopped by the caller: %w", err)
			}
		}
		return out, nil
	}
	return o.readStream(ctx, resp, body, &req, onDelta)
}

func (o *OpenAI) readCompletion(ctx context.Context, body io.Reader, req *ChatRequest) (*ChatResponse, error) {
	buf := getBuf()
	defer putBuf(buf)
	if _, err := buf.ReadFrom(body); err != nil {
		return nil, o.readErr(ctx, o.chatURL, err)
	}
	var c completion
	if err := decodeCompletion(buf.Bytes(), &c); err != nil {
		return nil, fmt.Errorf("backend: POST %s: response is not a chat completion: %v", o.chatURL, err)
	}
	if len(c.Error) > 0 && string(c.Error) != "null" {
		return nil, fmt.Errorf("backend: POST %s: %w", o.chatURL, &Error{Status: http.StatusOK, Message: cleanMessage(errorField(c.Error), requestTexts(req))})
	}
	if len(c.Choices) == 0 {
		return nil, fmt.Errorf("backend: POST %s: the chat completion has no choices", o.chatURL)
	}
	if len(c.Choices[0].Message.ToolCalls) > MaxToolCalls {
		return nil, fmt.Errorf("backend: POST %s: %d tool calls, more than %d (MaxToolCalls)", o.chatURL, len(c.Choices[0].Message.ToolCalls), MaxToolCalls)
	}
	ch := c.Choices[0]
	out := &ChatResponse{ID: c.ID, Model: c.Model, Content: ch.Message.Content, FinishReason: ch.FinishReason}
	for i, w := range ch.Message.ToolCalls {
		out.ToolCalls = append(out.ToolCalls, ToolCall{
			Index:    i,
			ID:       w.ID,
			Type:     cmp.Or(w.Type, "function"),
			Function: FunctionCall{Name: w.Function.Name, Arguments: string(w.Function.Arguments)},
		})
	}
	finish(out, c.Usage, req)
	return out, nil
}

func (o *OpenAI) readStream(ctx context.Context, resp *http.Response, body io.Reader, req *ChatRequest, onDelta func(Delta) error) (*ChatResponse, error) {
	br := bufio.NewReader(body)
	sse := newSSEReader(br, MaxEventBytes)
	asm := assembler{byIndex: make(map[int]int)}
	done := false
	for !done {
		ev, err := sse.next()
		if err == io.EOF {
			if !asm.finished {
				return nil, fmt.Errorf("backend: POST %s: the stream ended before the model finished (no finish_reason and no [DONE])", o.chatURL)
			}
			break
		}
		if err != nil {
			return nil, o.readErr(ctx, o.chatURL, err)
		}
		if ev.typ == "error" {
			return nil, fmt.Errorf("backend: POST %s: %w", o.chatURL, &Error{Message: cleanMessage(serverMessage(ev.data), requestTexts(req))})
		}
		if string(bytes.TrimSpace(ev.data)) == "[DONE]" {
			if !asm.finished {
				// A server that fails mid-answer may still close with [DONE] (llama-server
				// did, after an error line); without a finish reason the answer is cut short.
				return nil, fmt.Errorf("backend: POST %s: the stream ended ([DONE]) before the model finished (no finish_reason); the answer is incomplete", o.chatURL)
			}
			done = true
			break
		}
		var chunk streamChunk
		if err := decodeChunk(ev.data, &chunk); err != nil {
			return nil, fmt.Errorf("backend: POST %s: malformed stream chunk: %v", o.chatURL, err)
		}
		if len(chunk.Error) > 0 && string(chunk.Error) != "null" {
			return nil, fmt.Errorf("backend: POST %s: %w", o.chatURL, &Error{Message: cleanMessage(errorField(chunk.Error), requestTexts(req))})
		}
		d, err := asm.add(&chunk)
		if err != nil {
			return nil, fmt.Errorf("backend: POST %s: %v", o.chatURL, err)
		}
		if d.Content != "" || len(d.ToolCalls) > 0 {
			if err := onDelta(d); err != nil {
				return nil, fmt.Errorf("backend: stream stopped by the caller: %w", err)
			}
		}
	}
	if done {
		drain(br, resp.Body)
	}
	out := asm.response()
	finish(out, asm.usage, req)
	return out, nil
}

// drain reads what is left after [DONE] (normally just the end of the chunked body)
// so the connection can be reused, but never waits long on a server that holds the
// stream open.
func drain(r io.Reader, body io.Closer) {
	t := time.AfterFunc(250*time.Millisecond, func() { body.Close() })
	defer t.Stop()
	io.Copy(io.Discard, io.LimitReader(r, maxDrainBytes))
}

// assembler merges stream chunks into a response.
type assembler struct {
	id, model string
	content   strings.Builder
	calls     []ToolCall
	args      []*strings.Builder // per call
	byIndex   map[int]int        // server's tool-call index → position in calls
	finish    string
	finished  bool
	usage     *Usage
}

// add merges a chunk and returns what it adds, as a Delta. Only the first choice is
// read: the node never asks for more than one.
func (a *assembler) add(c *streamChunk) (Delta, error) {
	if a.id == "" {
		a.id = c.ID
	}
	if a.model == "" {
		a.model = c.Model
	}
	if c.Usage != nil {
		u := *c.Usage
		a.usage = &u
	}
	var d Delta
	for i := range c.Choices {
		ch := &c.Choices[i]
		if ch.Index != 0 {
			continue
		}
		if ch.FinishReason != "" {
			a.finish, a.finished = ch.FinishReason, true
		}
		d.Content = ch.Delta.Content
		a.content.WriteString(ch.Delta.Content)
		for _, f := range ch.Delta.ToolCalls {
			pos, err := a.position(&f)
			if err != nil {
				return Delta{}, err
			}
			call := &a.calls[pos]
			if call.ID == "" {
				call.ID = f.ID
			}
			if call.Type == "" {
				call.Type = f.Type
			}
			if call.Function.Name == "" {
				call.Function.Name = f.Function.Name
			}
			a.args[pos].WriteString(string(f.Function.Arguments))
			d.ToolCalls = append(d.ToolCalls, ToolCall{
				Index:    pos,
				ID:       f.ID,
				Type:     f.Type,
				Function: FunctionCall{Name: f.Function.Name, Arguments: string(f.Function.Arguments)},
			})
		}
	}
	return d, nil
}

// position finds the call a fragment belongs to: by its index, or, from servers that
// send none, the last call unless the fragment brings a new id.
func (a *assembler) position(f *wireToolCall) (int, error) {
	if f.Index != nil {
		if pos, ok := a.byIndex[*f.Index]; ok && !a.startsAnother(pos, f) {
			return pos, nil
		}
	} else if n := len(a.calls); n > 0 && (f.ID == "" || f.ID == a.calls[n-1].ID) {
		return n - 1, nil
	}
	if len(a.calls) == MaxToolCalls {
		return 0, fmt.Errorf("more than %d tool calls (MaxToolCalls)", MaxToolCalls)
	}
	pos := len(a.calls)
	a.calls = append(a.calls, ToolCall{Index: pos})
	a.args = append(a.args, new(strings.Builder))
	if f.Index != nil {
		a.byIndex[*f.Index] = pos
	}
	return pos, nil
}

// startsAnother reports whether a fragment at the index of the call at pos is in fact
// a new call: it names a function, brings an id other than the call's, and the call's
// arguments are already complete JSON. Ollama 0.8 and 0.9 streamed every tool call
// whole and all at index 0, told apart only by their ids. A new id without a name, or
// while the arguments are still open, continues the call (some servers change the id
// mid-call).
func (a *assembler) startsAnother(pos int, f *wireToolCall) bool {
	c := &a.calls[pos]
	return f.Function.Name != "" && f.ID != "" && c.ID != "" && f.ID != c.ID && json.Valid([]byte(a.args[pos].String()))
}

func (a *assembler) response() *ChatResponse {
	out := &ChatResponse{ID: a.id, Model: a.model, Content: a.content.String(), FinishReason: a.finish}
	for i := range a.calls {
		c := a.calls[i]
		c.Type = cmp.Or(c.Type, "function")
		c.Function.Arguments = a.args[i].String()
		out.ToolCalls = append(out.ToolCalls, c)
	}
	return out
}

// finish fills in the finish reason if the server gave none and the usage, estimating
// it if the server reported none.
func finish(out *ChatResponse, u *Usage, req *ChatRequest) {
	if out.FinishReason == "" {
		out.FinishReason = "stop"
		if len(out.ToolCalls) > 0 {
			out.FinishReason = "tool_calls"
		}
	}
	if u != nil && u.PromptTokens+u.CompletionTokens+u.TotalTokens > 0 {
		out.Usage = *u
		if out.Usage.TotalTokens == 0 {
			out.Usage.TotalTokens = u.PromptTokens + u.CompletionTokens
		}
		return
	}
	prompt := 0
	for _, m := range req.Messages {
		prompt += 4 + estimateTokens(len(m.Content)+len(m.Name))
		for _, tc := range m.ToolCalls {
			prompt += estimateTokens(len(tc.Function.Name) + len(tc.Function.Arguments))
		}
	}
	for _, t := range req.Tools {
		prompt += estimateTokens(len(t.Function.Name) + len(t.Function.Description) + len(t.Function.Parameters))
	}
	completion := estimateTokens(len(out.Content))
	for _, tc := range out.ToolCalls {
		completion += estimateTokens(len(tc.Function.Name) + len(tc.Function.Arguments))
	}
	out.Usage = Usage{PromptTokens: prompt, CompletionTokens: completion, TotalTokens: prompt + completion}
	out.UsageEstimated = true
}

// estimateTokens guesses a token count from bytes of text: about four per token.
func estimateTokens(n int) int { return (n + 3) / 4 }

// Embed implements Backend.
func (o *OpenAI) Embed(ctx context.Context, model string, input []string) ([][]float32, Usage, error) {
	if model == "" {
		return nil, Usage{}, errors.New("backend: embeddings request has no model")
	}
	if len(input) == 0 {
		return nil, Usage{}, errors.New("backend: embeddings request has no input")
	}
	req := struct {
		Model string   `json:"model"`
		Input []string `json:"input"`
	}{model, input}
	resp, body, err := o.post(ctx, o.embedURL, &req, false, input)
	if err != nil {
		return nil, Usage{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(body)
	if err != nil {
		return nil, Usage{}, o.readErr(ctx, o.embedURL, err)
	}
	var r struct {
		Data []struct {
			Index     int             `json:"index"`
			Embedding json.RawMessage `json:"embedding"`
		} `json:"data"`
		Usage *Usage `json:"usage"`
	}
	if err := decodeAnswer(raw, &r); err != nil {
		return nil, Usage{}, fmt.Errorf("backend: POST %s: response is not an embeddings list: %v", o.embedURL, err)
	}
	if len(r.Data) != len(input) {
		return nil, Usage{}, fmt.Errorf("backend: POST %s: %d embeddings for %d inputs", o.embedURL, len(r.Data), len(input))
	}
	out := make([][]float32, len(input))
	for _, d := range r.Data {
		if d.Index < 0 || d.Index >= len(input) || out[d.Index] != nil {
			return nil, Usage{}, fmt.Errorf("backend: POST %s: embedding index %d is out of range or repeated", o.embedURL, d.Index)
		}
		v, err := decodeEmbedding(d.Embedding)
		if err != nil || len(v) == 0 {
			return nil, Usage{}, fmt.Errorf("backend: POST %s: embedding %d is not a vector of numbers", o.embedURL, d.Index)
		}
		if len(v) != len(out[0]) && out[0] != nil {
			return nil, Usage{}, fmt.Errorf("backend: POST %s: embeddings differ in dimension (%d and %d)", o.embedURL, len(out[0]), len(v))
		}
		out[d.Index] = v
	}
	dim := len(out[0])
	for i, v := range out {
		if len(v) != dim {
			return nil, Usage{}, fmt.Errorf("backend: POST %s: embeddings differ in dimension (%d and %d at %d)", o.embedURL, dim, len(v), i)
		}
	}
	// The server's own count; an estimate (about four bytes a token) when it sent none.
	var u Usage
	if r.Usage != nil && r.Usage.PromptTokens > 0 {
		u = *r.Usage
		if u.TotalTokens == 0 {
			u.TotalTokens = u.PromptTokens
		}
	} else {
		for _, in := range input {
			u.PromptTokens += estimateTokens(len(in))
		}
		u.TotalTokens = u.PromptTokens
	}
	return out, u, nil
}

// decodeEmbedding reads an array of numbers or OpenAI's base64 of little-endian
// float32s.
func decodeEmbedding(raw json.RawMessage) ([]float32, error) {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b)%4 != 0 {
			return nil, errors.New("bad base64 embedding")
		}
		v := make([]float32, len(b)/4)
		for i := range v {
			v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		}
		return v, nil
	}
	var v []float32
	err := json.Unmarshal(raw, &v)
	return v, err
}

// directPosts sets o.direct and the heads of its posts when every request o makes can
// skip net/http's client and request writer and be the same bytes on the wire: the
// client is the node's *Transport with no timeout, cookie jar or redirect rule of its
// own (a redirect is followed by the client, below), the base URL is plain http://
// whose host, path and the API key are printable ASCII that Request.Write writes as
// they are.
func (o *OpenAI) directPosts() {
	t, ok := o.client.Transport.(*Transport)
	if !ok || o.client.Timeout != 0 || o.client.Jar != nil || o.client.CheckRedirect != nil {
		return
	}
	plain := func(v string, extra string) bool {
		for i := 0; i < len(v); i++ {
			c := v[i]
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte(extra, c) >= 0) {
				return false
			}
		}
		return true
	}
	if !plain(o.apiKey, "-._~+/=") {
		return
	}
	head := func(endpoint, accept string) *directPost {
		u, err := url.Parse(endpoint)
		if err != nil || u.Scheme != "http" || u.Host == "" || !plain(u.Host, "-.:[]") || !plain(u.RequestURI(), "-._~/") {
			return nil
		}
		host := u.Host
		if u.Port() == "" {
			host = net.JoinHostPort(u.Hostname(), "80")
		}
		p := &directPost{URL: u, Host: host}
		p.Pre = []byte("POST " + u.RequestURI() + " HTTP/1.1\r\nHost: " + u.Host + "\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: ")
		post := "\r\nAccept: " + accept + "\r\n"
		if o.apiKey != "" {
			post += "Authorization: Bearer " + o.apiKey + "\r\n"
		}
		p.Rest = []byte(post + "Content-Type: application/json\r\n\r\n")
		return p
	}
	o.chat, o.chatStream, o.embed = head(o.chatURL, "application/json"), head(o.chatURL, "text/event-stream"), head(o.embedURL, "application/json")
	if o.chat != nil && o.chatStream != nil && o.embed != nil {
		o.direct = t
	}
}

// post sends body as JSON and returns the response with its body capped at
// MaxResponseBytes. A non-2xx answer becomes an *Error; sent lists request text to
// cut from the server's message.
func (o *OpenAI) post(ctx context.Context, endpoint string, body any, stream bool, sent []string) (*http.Response, io.Reader, error) {
	var b []byte
	var err error
	pooled := getBuf()
	if w, ok := body.(*wireChatRequest); ok {
		b, err = w.appendJSON(pooled.AvailableBuffer())
	} else {
		b, err = json.Marshal(body)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("backend: encoding the request: %v", err)
	}
	if o.direct != nil {
		p := o.embed
		switch {
		case endpoint == o.chatURL && stream:
			p = o.chatStream
		case endpoint == o.chatURL:
			p = o.chat
		}
		resp, err := o.direct.post(ctx, p, b)
		if err != nil || !isRedirect(resp.StatusCode) {
			// Sent, and not to be sent again: its buffer serves another request.
			if cap(b) > pooled.Cap() {
				pooled = bytes.NewBuffer(b[:0])
			}
			putBuf(pooled)
		}
		if err != nil {
			// As net/http's client reports it: Post "URL": the cause.
			err = &url.Error{Op: "Post", URL: endpoint, Err: err}
		}
		switch {
		case err == nil && isRedirect(resp.StatusCode):
			// Followed by net/http's client, as before: sent again below.
			io.Copy(io.Discard, io.LimitReader(resp.Body, MaxErrorBytes))
			resp.Body.Close()
		default:
			return o.answer(ctx, endpoint, resp, err, sent)
		}
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(b))
	if err != nil {
		return nil, nil, fmt.Errorf("backend: %v", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if stream {
		hreq.Header.Set("Accept", "text/event-stream")
	} else {
		hreq.Header.Set("Accept", "application/json")
	}
	if o.apiKey != "" {
		hreq.Header.Set("Authorization", "Bearer "+o.apiKey)
	}
	resp, err := o.client.Do(hreq)
	return o.answer(ctx, endpoint, resp, err, sent)
}

// isRedirect reports the statuses net/http's client follows for a POST with a body.
func isRedirect(status int) bool {
	switch status {
	case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
		return true
	}
	return false
}

// answer is post's outcome from the response (or the error) of sending it.
func (o *OpenAI) answer(ctx context.Context, endpoint string, resp *http.Response, err error, sent []string) (*http.Response, io.Reader, error) {
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("backend: POST %s: %w", endpoint, ctx.Err())
		}
		return nil, nil, fmt.Errorf("backend: %w", err)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		defer resp.Body.Close()
		eb, _ := io.ReadAll(io.LimitReader(resp.Body, MaxErrorBytes))
		return nil, nil, fmt.Errorf("backend: POST %s: %w", endpoint, &Error{Status: resp.StatusCode, Message: cleanMessage(serverMessage(eb), sent)})
	}
	return resp, &limitedBody{r: resp.Body, limit: o.maxBytes}, nil
}

// readErr explains a failed read of a response body.
func (o *OpenAI) readErr(ctx context.Context, endpoint string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("backend: POST %s: %w", endpoint, ctx.Err())
	}
	return fmt.Errorf("backend: POST %s: reading the response: %w", endpoint, err)
}

// limitedBody fails a read that would take the response past limit bytes.
type limitedBody struct {
	r     io.Reader
	limit int64
	read  int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.read > l.limit {
		return 0, l.tooLarge()
	}
	if room := l.limit - l.read + 1; int64(len(p)) > room {
		p = p[:room]
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	if l.read > l.limit {
		return n - int(l.read-l.limit), l.tooLarge()
	}
	return n, err
}

func (l *limitedBody) tooLarge() error {
	return fmt.Errorf("the response is larger than %d bytes (Options.MaxResponseBytes)", l.limit)
}

func isJSON(contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	return mt == "application/json"
}

// withDefaultTypes gives tools and tool calls without a type the type "function",
// copying only the slices it changes.
func withDefaultTypes(req ChatRequest) ChatRequest {
	if slices.ContainsFunc(req.Tools, func(t Tool) bool { return t.Type == "" }) {
		req.Tools = slices.Clone(req.Tools)
		for i := range req.Tools {
			req.Tools[i].Type = cmp.Or(req.Tools[i].Type, "function")
		}
	}
	untyped := func(m Message) bool {
		return slices.ContainsFunc(m.ToolCalls, func(tc ToolCall) bool { return tc.Type == "" })
	}
	if slices.ContainsFunc(req.Messages, untyped) {
		req.Messages = slices.Clone(req.Messages)
		for i := range req.Messages {
			if untyped(req.Messages[i]) {
				calls := slices.Clone(req.Messages[i].ToolCalls)
				for k := range calls {
					calls[k].Type = cmp.Or(calls[k].Type, "function")
				}
				req.Messages[i].ToolCalls = calls
			}
		}
	}
	return req
}
