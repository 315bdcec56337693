package backend_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/backend/mock"
	"github.com/sios-project/sios/egress"
)

// serve starts h on 127.0.0.1 and returns a client for it that dials through an
// egress guard allowing only that server, as the node does.
func serve(t testing.TB, h http.Handler, opts backend.Options) (*backend.OpenAI, *httptest.Server) {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	g, err := egress.New([]egress.Rule{{Host: "127.0.0.1", Port: ts.Listener.Addr().(*net.TCPAddr).Port}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := &backend.Transport{Dial: g.DialContext, TLS: g.HTTPTransport()}
	t.Cleanup(tr.CloseIdleConnections)
	opts.HTTPClient = &http.Client{Transport: tr}
	c, err := backend.NewOpenAI(ts.URL, opts)
	if err != nil {
		t.Fatal(err)
	}
	return c, ts
}

func userMessage(text string) backend.ChatRequest {
	return backend.ChatRequest{Model: "llama3.2", Messages: []backend.Message{{Role: "user", Content: text}}}
}

// sseHandler answers every request with the given raw event-stream body.
func sseHandler(body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, body)
	})
}

// collect returns an onDelta that records deltas.
func collect() (*[]backend.Delta, func(backend.Delta) error) {
	var ds []backend.Delta
	return &ds, func(d backend.Delta) error { ds = append(ds, d); return nil }
}

func TestChat(t *testing.T) {
	m := &mock.Server{Reply: "Hello there, world."}
	var got struct {
		auth string
		body map[string]any
	}
	rec := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.auth = r.Header.Get("Authorization")
		b, _ := io.ReadAll(r.Body)
		json.Unmarshal(b, &got.body)
		r.Body = io.NopCloser(strings.NewReader(string(b)))
		m.ServeHTTP(w, r)
	})
	c, _ := serve(t, rec, backend.Options{APIKey: "sk-local"})
	temp := 0.2
	req := userMessage("Say hello")
	req.MaxTokens = 64
	req.Temperature = &temp
	req.Tools = []backend.Tool{{Function: backend.FunctionDef{Name: "lookup", Parameters: json.RawMessage(`{"type":"object"}`)}}}
	resp, err := c.Chat(context.Background(), req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Content != "Hello there, world." || resp.FinishReason != "stop" || resp.Model != "llama3.2" ||
		!strings.HasPrefix(resp.ID, "chatcmpl-mock-") || resp.UsageEstimated || resp.Usage.TotalTokens == 0 {
		t.Fatalf("response %+v", resp)
	}
	if got.auth != "Bearer sk-local" {
		t.Errorf("Authorization %q", got.auth)
	}
	want := map[string]any{
		"model":       "llama3.2",
		"messages":    []any{map[string]any{"role": "user", "content": "Say hello"}},
		"max_tokens":  float64(64),
		"temperature": 0.2,
		"tools": []any{map[string]any{"type": "function", "function": map[string]any{
			"name": "lookup", "parameters": map[string]any{"type": "object"}}}},
	}
	if a, b := fmt.Sprint(got.body), fmt.Sprint(want); a != b {
		t.Errorf("request body\n got %s\nwant %s", a, b)
	}
	if req.Tools[0].Type != "" {
		t.Error("Chat changed the caller's request")
	}
	if m.Chats() != 1 || m.Streams() != 0 {
		t.Errorf("mock counted %d chats, %d streams", m.Chats(), m.Streams())
	}
}

func TestChatToolCall(t *testing.T) {
	call := &backend.ToolCall{ID: "call_7", Function: backend.FunctionCall{Name: "weather", Arguments: `{"city":"Zürich","days":3}`}}
	c, _ := serve(t, &mock.Server{ToolCall: call}, backend.Options{})
	for _, streamed := range []bool{false, true} {
		t.Run(fmt.Sprintf("streamed=%v", streamed), func(t *testing.T) {
			ds, onDelta := collect()
			if !streamed {
				onDelta = nil
			}
			resp, err := c.Chat(context.Background(), userMessage("weather?"), onDelta)
			if err != nil {
				t.Fatal(err)
			}
			want := backend.ToolCall{Index: 0, ID: "call_7", Type: "function", Function: call.Function}
			if resp.FinishReason != "tool_calls" || resp.Content != "" || len(resp.ToolCalls) != 1 || resp.ToolCalls[0] != want {
				t.Fatalf("response %+v", resp)
			}
			if !streamed {
				return
			}
			// The arguments came in fragments after a head naming the call.
			var args string
			for _, d := range *ds {
				for _, tc := range d.ToolCalls {
					if tc.Index != 0 {
						t.Fatalf("fragment index %d", tc.Index)
					}
					args += tc.Function.Arguments
				}
			}
			if len(*ds) < 3 || args != call.Function.Arguments || (*ds)[0].ToolCalls[0].Function.Name != "weather" {
				t.Fatalf("deltas %+v", *ds)
			}
		})
	}
}

func TestChatStream(t *testing.T) {
	m := &mock.Server{Reply: "The quick brown fox"}
	c, _ := serve(t, m, backend.Options{})
	ds, onDelta := collect()
	resp, err := c.Chat(context.Background(), userMessage("go"), onDelta)
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, d := range *ds {
		parts = append(parts, d.Content)
	}
	if fmt.Sprintf("%q", parts) != `["The" " quick" " brown" " fox"]` {
		t.Errorf("deltas %q", parts)
	}
	if resp.Content != "The quick brown fox" || resp.FinishReason != "stop" || resp.UsageEstimated || resp.Usage.CompletionTokens != 5 {
		t.Errorf("response %+v", resp)
	}
	if m.Streams() != 1 {
		t.Errorf("mock streamed %d times", m.Streams())
	}

	// A server that sends no usage: the usage is estimated and says so.
	c2, _ := serve(t, &mock.Server{Reply: "abcdefgh", OmitUsage: true}, backend.Options{})
	resp, err = c2.Chat(context.Background(), userMessage("go"), func(backend.Delta) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if !resp.UsageEstimated || resp.Usage.CompletionTokens != 2 || resp.Usage.PromptTokens == 0 ||
		resp.Usage.TotalTokens != resp.Usage.PromptTokens+resp.Usage.CompletionTokens {
		t.Errorf("estimated usage %+v (estimated=%v)", resp.Usage, resp.UsageEstimated)
	}
}

// TestChatStreamWireDetails: CRLF lines, comments, a data field split over two lines,
// two tool calls whose fragments interleave, a role-only chunk, a usage chunk with no
// choices, and [DONE].
func TestChatStreamWireDetails(t *testing.T) {
	body := strings.Join([]string{
		": keep-alive",
		`data: {"id":"c1","model":"m","choices":[{"index":0,"delta":{"role":"assistant"}}]}`,
		"",
		`data: {"id":"c1","choices":[{"index":0,"delta":{"tool_calls":[`,
		`data: {"index":0,"id":"call_a","type":"function","function":{"name":"first","arguments":""}}]}}]}`,
		"",
		`data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"id":"call_b","type":"function","function":{"name":"second","arguments":"{\"b\":"}}]}}]}`,
		"",
		`data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}}]}}]}`,
		"",
		`data:{"choices":[{"index":0,"delta":{"tool_calls":[{"index":1,"function":{"arguments":"2}"}},{"index":0,"function":{"arguments":"1}"}}]}}]}`,
		"",
		"event: message",
		`data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}`,
		"",
		`data: {"choices":[],"usage":{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}`,
		"",
		"data: [DONE]",
		"", "",
	}, "\r\n")
	c, _ := serve(t, sseHandler(body), backend.Options{})
	ds, onDelta := collect()
	resp, err := c.Chat(context.Background(), userMessage("x"), onDelta)
	if err != nil {
		t.Fatal(err)
	}
	want := []backend.ToolCall{
		{Index: 0, ID: "call_a", Type: "function", Function: backend.FunctionCall{Name: "first", Arguments: `{"a":1}`}},
		{Index: 1, ID: "call_b", Type: "function", Function: backend.FunctionCall{Name: "second", Arguments: `{"b":2}`}},
	}
	if fmt.Sprint(resp.ToolCalls) != fmt.Sprint(want) {
		t.Fatalf("tool calls\n got %+v\nwant %+v", resp.ToolCalls, want)
	}
	if resp.ID != "c1" || resp.Model != "m" || resp.FinishReason != "tool_calls" || resp.UsageEstimated ||
		resp.Usage != (backend.Usage{PromptTokens: 11, CompletionTokens: 7, TotalTokens: 18}) {
		t.Fatalf("response %+v", resp)
	}
	if len(*ds) != 4 || len((*ds)[3].ToolCalls) != 2 || (*ds)[3].ToolCalls[0].Index != 1 {
		t.Fatalf("deltas %+v", *ds)
	}
}

func TestEmbed(t *testing.T) {
	m := &mock.Server{Dimensions: 16}
	c, _ := serve(t, m, backend.Options{})
	in := []string{"alpha", "beta", "alpha"}
	vs, _, err := c.Embed(context.Background(), "nomic-embed-text", in)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vs {
		if fmt.Sprint(v) != fmt.Sprint(mock.Embedding(in[i], 16)) {
			t.Fatalf("vector %d = %v", i, v)
		}
	}
	if fmt.Sprint(vs[0]) != fmt.Sprint(vs[2]) || fmt.Sprint(vs[0]) == fmt.Sprint(vs[1]) || m.Embeds() != 1 {
		t.Fatal("embeddings are not a function of the text")
	}

	// Out of order, and base64-encoded as OpenAI does on request.
	b64 := func(v ...float32) string {
		b := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	odd := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"data":[{"index":1,"embedding":"%s"},{"index":0,"embedding":[1,2]}]}`, b64(3, 4))
	})
	c2, _ := serve(t, odd, backend.Options{})
	vs, _, err = c2.Embed(context.Background(), "e", []string{"x", "y"})
	if err != nil || fmt.Sprint(vs) != "[[1 2] [3 4]]" {
		t.Fatalf("got %v, %v", vs, err)
	}

	bad := []struct{ name, body, want string }{
		{"too few", `{"data":[{"index":0,"embedding":[1]}]}`, "1 embeddings for 2 inputs"},
		{"repeated index", `{"data":[{"index":0,"embedding":[1]},{"index":0,"embedding":[1]}]}`, "out of range or repeated"},
		{"ragged", `{"data":[{"index":0,"embedding":[1]},{"index":1,"embedding":[1,2]}]}`, "differ in dimension"},
		{"not numbers", `{"data":[{"index":0,"embedding":["a"]},{"index":1,"embedding":[1]}]}`, "not a vector of numbers"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, tc.body) }), backend.Options{})
			if _, _, err := c.Embed(context.Background(), "e", []string{"x", "y"}); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestServerError(t *testing.T) {
	const secret = "patient NHS number 943 476 5919"
	tests := []struct {
		name        string
		status      int
		body        string
		wantMessage string
	}{
		{"OpenAI shape", 404, `{"error":{"message":"model \"llama9\" not found","type":"invalid_request_error","code":"model_not_found"}}`, `model "llama9" not found`},
		{"Ollama string", 500, `{"error":"llama runner process has terminated"}`, "llama runner process has terminated"},
		{"vLLM top-level message", 400, `{"object":"error","message":"max_tokens is too large","type":"BadRequestError","code":400}`, "max_tokens is too large"},
		{"plain text", 502, "upstream unavailable\nmore detail", "upstream unavailable"},
		{"HTML page", 503, "<html><body>Service Unavailable</body></html>", ""},
		{"empty body", 429, "", ""},
		{"server echoes the prompt", 400, `{"error":{"message":"cannot handle ` + secret + ` today"}}`, "cannot handle [request text removed] today"},
		{"vLLM validation error quoting input", 400, `{"object":"error","message":"[{'type': 'missing', 'loc': ('body', 'model'), 'msg': 'Field required', 'input': {'messages': [{'content': '` + secret + `'}]}}]"}`,
			"[{'type': 'missing', 'loc': ('body', 'model'), 'msg': 'Field required', [request text removed]"},
		{"long message capped", 500, `{"error":"` + strings.Repeat("é", 2000) + `"}`, strings.Repeat("é", 510) + "…"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			c, _ := serve(t, h, backend.Options{})
			for _, onDelta := range []func(backend.Delta) error{nil, func(backend.Delta) error { return nil }} {
				_, err := c.Chat(context.Background(), userMessage(secret), onDelta)
				var be *backend.Error
				if !errors.As(err, &be) {
					t.Fatalf("err = %v, want *backend.Error", err)
				}
				if be.Status != tc.status || be.Message != tc.wantMessage {
					t.Fatalf("got status %d message %q, want %d %q", be.Status, be.Message, tc.status, tc.wantMessage)
				}
				if strings.Contains(err.Error(), secret) {
					t.Fatalf("the error carries the request text: %v", err)
				}
			}
		})
	}
}

// A server that quotes the request escaped as a JSON string (llama-server's
// message.dump(), Python's json.dumps with its \u escapes) is scrubbed too.
func TestServerErrorEchoesEscapedRequest(t *testing.T) {
	const text = "Dr. Müller wrote:\n\t\"patient NHS number 943 476 5919\""
	for name, quoted := range map[string]string{
		"JSON-escaped":       `Dr. Müller wrote:\\n\\t\\\"patient NHS number 943 476 5919\\\"`,
		"ASCII JSON-escaped": `Dr. M\\u00fcller wrote:\\n\\t\\\"patient NHS number 943 476 5919\\\"`,
	} {
		t.Run(name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(400)
				io.WriteString(w, `{"error":{"code":400,"message":"Failed to parse messages: bad part in {\"content\":\"`+quoted+`\"}","type":"invalid_request_error"}}`)
			})
			c, _ := serve(t, h, backend.Options{})
			_, err := c.Chat(context.Background(), userMessage(text), nil)
			var be *backend.Error
			if !errors.As(err, &be) || strings.Contains(err.Error(), "NHS") || strings.Contains(err.Error(), "ller wrote") ||
				be.Message != `Failed to parse messages: bad part in {"content":"[request text removed]"}` {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestResponseTooLarge(t *testing.T) {
	c, _ := serve(t, &mock.Server{Reply: strings.Repeat("word ", 1000)}, backend.Options{MaxResponseBytes: 1024})
	for _, onDelta := range []func(backend.Delta) error{nil, func(backend.Delta) error { return nil }} {
		_, err := c.Chat(context.Background(), userMessage("x"), onDelta)
		if err == nil || !strings.Contains(err.Error(), "larger than 1024 bytes (Options.MaxResponseBytes)") {
			t.Fatalf("streamed=%v: err = %v", onDelta != nil, err)
		}
	}
	c2, _ := serve(t, &mock.Server{Dimensions: 4096}, backend.Options{MaxResponseBytes: 1024})
	if _, _, err := c2.Embed(context.Background(), "e", []string{"x"}); err == nil || !strings.Contains(err.Error(), "(Options.MaxResponseBytes)") {
		t.Fatalf("embeddings: err = %v", err)
	}

	// One event over MaxEventBytes, well inside the response limit.
	huge := sseHandler("data: " + strings.Repeat("a", backend.MaxEventBytes+1) + "\n\n")
	c3, _ := serve(t, huge, backend.Options{})
	_, err := c3.Chat(context.Background(), userMessage("x"), func(backend.Delta) error { return nil })
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("larger than %d bytes (MaxEventBytes)", backend.MaxEventBytes)) {
		t.Fatalf("huge event: err = %v", err)
	}
}

func TestMalformedStream(t *testing.T) {
	tests := []struct {
		name, body, want string
		status           int // of a *backend.Error, if one is wanted
	}{
		{"chunk not JSON", "data: {not json}\n\n", "malformed stream chunk", -1},
		{"chunk wrong shape", `data: {"choices":"no"}` + "\n\n", "malformed stream chunk", -1},
		{"ends before the model finished", `data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}` + "\n\n", "the stream ended before the model finished", -1},
		{"event cut off by the end", `data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}` + "\n\n" + `data: {"choices":[{"index":0,"finish_reason":"stop"}]}`, "the stream ended before the model finished", -1},
		{"error chunk", `data: {"error":{"message":"out of memory"}}` + "\n\n", "model server reported an error mid-stream: out of memory", 0},
		{"error event", "event: error\ndata: {\"error\":\"context length exceeded\"}\n\n", "mid-stream: context length exceeded", 0},
		{"too many tool calls", manyToolCalls(backend.MaxToolCalls + 1), "more than 128 tool calls (MaxToolCalls)", -1},
		{"[DONE] before the model finished", `data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}` + "\n\ndata: [DONE]\n\n", "the stream ended ([DONE]) before the model finished", -1},
		{"llama.cpp error line", `data: {"choices":[{"index":0,"delta":{"content":"Hel"}}]}` + "\n\nerror: {\"code\":500,\"message\":\"context shift is disabled\",\"type\":\"server_error\"}\n\ndata: [DONE]\n\n", "mid-stream: context shift is disabled", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := serve(t, sseHandler(tc.body), backend.Options{})
			_, err := c.Chat(context.Background(), userMessage("x"), func(backend.Delta) error { return nil })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
			var be *backend.Error
			if got := errors.As(err, &be); got != (tc.status >= 0) || (got && be.Status != tc.status) {
				t.Fatalf("err = %#v; want *backend.Error: %v", err, tc.status >= 0)
			}
		})
	}
}

// TestStreamToolCallsSharingAnIndex: Ollama 0.8 and 0.9 streamed every tool call
// whole at index 0, told apart only by id; a server may also change a call's id
// between its fragments. Neither may merge two calls or split one.
func TestStreamToolCallsSharingAnIndex(t *testing.T) {
	chunk := func(toolCall string) string {
		return `data: {"choices":[{"index":0,"delta":{"tool_calls":[` + toolCall + `]}}]}` + "\n\n"
	}
	finish := `data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}` + "\n\ndata: [DONE]\n\n"
	tests := []struct {
		name, body string
		want       []backend.ToolCall
	}{
		{"two whole calls at index 0", chunk(`{"id":"call_a","index":0,"type":"function","function":{"name":"f","arguments":"{\"x\":1}"}}`) +
			chunk(`{"id":"call_b","index":0,"type":"function","function":{"name":"g","arguments":"{\"y\":2}"}}`) + finish,
			[]backend.ToolCall{
				{Index: 0, ID: "call_a", Type: "function", Function: backend.FunctionCall{Name: "f", Arguments: `{"x":1}`}},
				{Index: 1, ID: "call_b", Type: "function", Function: backend.FunctionCall{Name: "g", Arguments: `{"y":2}`}},
			}},
		{"id changes between fragments", chunk(`{"id":"functions.read:0","index":0,"type":"function","function":{"name":"read","arguments":""}}`) +
			chunk(`{"id":"tool-a","index":0,"function":{"name":null,"arguments":"{\"path\":\"READ"}}`) +
			chunk(`{"id":"tool-b","index":0,"function":{"arguments":"ME.md\"}"}}`) + finish,
			[]backend.ToolCall{{Index: 0, ID: "functions.read:0", Type: "function", Function: backend.FunctionCall{Name: "read", Arguments: `{"path":"README.md"}`}}}},
		{"name repeated with a new id while the arguments are open", chunk(`{"id":"a","index":0,"function":{"name":"f","arguments":"{\"x\":"}}`) +
			chunk(`{"id":"b","index":0,"function":{"name":"f","arguments":"1}"}}`) + finish,
			[]backend.ToolCall{{Index: 0, ID: "a", Type: "function", Function: backend.FunctionCall{Name: "f", Arguments: `{"x":1}`}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := serve(t, sseHandler(tc.body), backend.Options{})
			resp, err := c.Chat(context.Background(), userMessage("x"), func(backend.Delta) error { return nil })
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(resp.ToolCalls) != fmt.Sprint(tc.want) {
				t.Fatalf("tool calls\n got %+v\nwant %+v", resp.ToolCalls, tc.want)
			}
		})
	}
}

// A server may send tool-call arguments as a JSON object instead of JSON text (as
// Ollama's native API does); the node keeps the object's JSON text.
func TestToolCallArgumentsAsObject(t *testing.T) {
	bodies := map[string]http.Handler{
		"whole": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"choices":[{"index":0,"message":{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":{"city":"Zürich","days":3}}}]},"finish_reason":"tool_calls"}]}`)
		}),
		"streamed": sseHandler(`data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":{"city":"Zürich","days":3}}}]}}]}` + "\n\n" +
			`data: {"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}` + "\n\ndata: [DONE]\n\n"),
	}
	for name, h := range bodies {
		t.Run(name, func(t *testing.T) {
			c, _ := serve(t, h, backend.Options{})
			var onDelta func(backend.Delta) error
			if name == "streamed" {
				onDelta = func(backend.Delta) error { return nil }
			}
			resp, err := c.Chat(context.Background(), userMessage("x"), onDelta)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.ToolCalls) != 1 || resp.ToolCalls[0].Function.Arguments != `{"city":"Zürich","days":3}` || resp.FinishReason != "tool_calls" {
				t.Fatalf("response %+v", resp)
			}
		})
	}
}

func manyToolCalls(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `data: {"choices":[{"index":0,"delta":{"tool_calls":[{"index":%d,"id":"c%d","function":{"name":"f","arguments":"{}"}}]}}]}`+"\n\n", i, i)
	}
	return b.String()
}

// A server that ignores "stream" and answers JSON still gives one delta.
func TestStreamRequestAnsweredWithJSON(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		io.WriteString(w, `{"id":"x","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"whole"},"finish_reason":"stop"}]}`)
	})
	c, _ := serve(t, h, backend.Options{})
	ds, onDelta := collect()
	resp, err := c.Chat(context.Background(), userMessage("x"), onDelta)
	if err != nil || resp.Content != "whole" || len(*ds) != 1 || (*ds)[0].Content != "whole" || !resp.UsageEstimated {
		t.Fatalf("resp %+v, deltas %+v, err %v", resp, *ds, err)
	}
}

func TestCancelMidStream(t *testing.T) {
	left := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, `data: {"choices":[{"index":0,"delta":{"content":"first"}}]}`+"\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done() // hold the stream open until the client goes
		close(left)
	})
	c, _ := serve(t, h, backend.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := make(chan struct{})
	go func() {
		<-first
		cancel() // while Chat is blocked reading the stream
	}()
	done := make(chan error, 1)
	go func() {
		_, err := c.Chat(ctx, userMessage("x"), func(d backend.Delta) error {
			if d.Content == "first" {
				close(first)
			}
			return nil
		})
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Chat did not return after its context was cancelled")
	}
	select {
	case <-left:
	case <-time.After(10 * time.Second):
		t.Fatal("the server never saw the client go")
	}
}

func TestOnDeltaErrorStopsTheStream(t *testing.T) {
	c, _ := serve(t, &mock.Server{Reply: "one two three"}, backend.Options{})
	stop := errors.New("client went away")
	n := 0
	_, err := c.Chat(context.Background(), userMessage("x"), func(backend.Delta) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Fatalf("err = %v after %d deltas", err, n)
	}
}

func TestEgressGuardApplies(t *testing.T) {
	m := &mock.Server{}
	ts := httptest.NewServer(m)
	defer ts.Close()
	var refused atomic.Int64
	g, _ := egress.New([]egress.Rule{{Host: "127.0.0.1", Port: 11434}}, func(egress.Refusal) { refused.Add(1) })
	c, err := backend.NewOpenAI(ts.URL, backend.Options{HTTPClient: &http.Client{Transport: &backend.Transport{Dial: g.DialContext}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Chat(context.Background(), userMessage("x"), nil)
	var re *egress.RefusedError
	if !errors.As(err, &re) || refused.Load() != 1 || m.Requests() != 0 {
		t.Fatalf("err %v, %d refusals, mock saw %d requests", err, refused.Load(), m.Requests())
	}
}

func TestConcurrentChats(t *testing.T) {
	m := &mock.Server{Reply: "a b c", Latency: time.Millisecond}
	c, _ := serve(t, m, backend.Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 32 {
		wg.Go(func() {
			var onDelta func(backend.Delta) error
			if i%2 == 1 {
				onDelta = func(backend.Delta) error { return nil }
			}
			resp, err := c.Chat(context.Background(), userMessage(fmt.Sprint(i)), onDelta)
			if err == nil && resp.Content != "a b c" {
				err = fmt.Errorf("content %q", resp.Content)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if m.Chats() != 32 || m.Streams() != 16 {
		t.Fatalf("mock counted %d chats, %d streams", m.Chats(), m.Streams())
	}
}

func TestNewOpenAI(t *testing.T) {
	client := &http.Client{}
	tests := []struct{ in, want, err string }{
		{"http://127.0.0.1:11434", "http://127.0.0.1:11434/v1", ""},
		{"http://127.0.0.1:11434/", "http://127.0.0.1:11434/v1", ""},
		{"http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/v1", ""},
		{"http://127.0.0.1:8080/v1/", "http://127.0.0.1:8080/v1", ""},
		{"https://[::1]:8000", "https://[::1]:8000/v1", ""},
		{"http://gw:8080/llm/v1", "http://gw:8080/llm/v1", ""},
		{"http://gw:8080/openai", "http://gw:8080/openai", ""},
		{"127.0.0.1:11434", "", "must be an http or https URL"},
		{"ftp://host/v1", "", "must be an http or https URL"},
		{"http:///v1", "", "has no host"},
		{"http://user:pw@host:1/v1", "", "Options.APIKey"},
		{"http://host:1/v1?x=1", "", "no query or fragment"},
		{"http://host:1/v1#frag", "", "no query or fragment"},
	}
	for _, tc := range tests {
		c, err := backend.NewOpenAI(tc.in, backend.Options{HTTPClient: client})
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("NewOpenAI(%q) error %v, want %q", tc.in, err, tc.err)
		case tc.err == "" && err != nil:
			t.Errorf("NewOpenAI(%q): %v", tc.in, err)
		case tc.err == "" && c.BaseURL() != tc.want:
			t.Errorf("NewOpenAI(%q) base %q, want %q", tc.in, c.BaseURL(), tc.want)
		}
	}
	if _, err := backend.NewOpenAI("http://127.0.0.1:11434", backend.Options{}); err == nil || !strings.Contains(err.Error(), "HTTPClient is required") {
		t.Errorf("no client: %v", err)
	}
	if _, err := backend.NewOpenAI("http://127.0.0.1:11434", backend.Options{HTTPClient: client, MaxResponseBytes: -1}); err == nil {
		t.Error("negative MaxResponseBytes accepted")
	}
}

// After [DONE] the client reads the end of the body so the connection is reused, with
// net/http's transport (https:// model servers) and the node's own (http://).
func TestStreamReusesConnection(t *testing.T) {
	t.Run("net/http", func(t *testing.T) {
		testStreamReusesConnection(t, func(g *egress.Guard) http.RoundTripper { return g.HTTPTransport() })
	})
	t.Run("backend.Transport", func(t *testing.T) {
		testStreamReusesConnection(t, func(g *egress.Guard) http.RoundTripper { return &backend.Transport{Dial: g.DialContext} })
	})
}

func testStreamReusesConnection(t *testing.T, transport func(*egress.Guard) http.RoundTripper) {
	var conns atomic.Int64
	ts := httptest.NewUnstartedServer(&mock.Server{Reply: "a b"})
	ts.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	ts.Start()
	defer ts.Close()
	g, _ := egress.New([]egress.Rule{{Host: "127.0.0.1", Port: ts.Listener.Addr().(*net.TCPAddr).Port}}, nil)
	tr := transport(g)
	defer tr.(interface{ CloseIdleConnections() }).CloseIdleConnections()
	c, _ := backend.NewOpenAI(ts.URL, backend.Options{HTTPClient: &http.Client{Transport: tr}})
	for range 10 {
		if _, err := c.Chat(context.Background(), userMessage("x"), func(backend.Delta) error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("10 streamed chats used %d connections, want 1", n)
	}
}
