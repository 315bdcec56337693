package backend_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/backend/mock"
)

// The golden files are real servers' answers (testdata/golden/README.md says where
// each comes from). These tests replay each one over loopback to the real client and
// check what the node takes from it.

// goldenExchange is one entry of a dialect's exchanges.json.
type goldenExchange struct {
	File        string `json:"file"`
	Status      int    `json:"status"`
	ContentType string `json:"content_type"`
}

// loadGolden returns the exchanges of one server's directory, by file name.
func loadGolden(t *testing.T, server string) map[string]goldenExchange {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "golden", server, "exchanges.json"))
	if err != nil {
		t.Fatal(err)
	}
	var list []goldenExchange
	if err := json.Unmarshal(b, &list); err != nil {
		t.Fatalf("testdata/golden/%s/exchanges.json: %v", server, err)
	}
	out := map[string]goldenExchange{}
	for _, e := range list {
		out[e.File] = e
	}
	return out
}

// replay answers every request with the golden body, its status and content type.
func replay(ex goldenExchange, body []byte) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", ex.ContentType)
		w.WriteHeader(ex.Status)
		w.Write(body)
	})
}

func call(id, name, args string) backend.ToolCall {
	return backend.ToolCall{ID: id, Type: "function", Function: backend.FunctionCall{Name: name, Arguments: args}}
}

// goldenChat is what the node must take from one chat exchange.
type goldenChat struct {
	server, file string
	stream       bool
	content      string
	finish       string
	calls        []backend.ToolCall
	usage        *backend.Usage // nil: the server reports none, so it is estimated
	// an error instead of an answer: errStatus is the *backend.Error status (0 for an
	// error reported inside a stream), errMessage its message; errText, when no
	// *backend.Error is expected, a part of the error's text.
	errStatus  int
	errMessage string
	errText    string
	wantErr    bool
}

var (
	zurichBern = func(id1, id2, sep string) []backend.ToolCall {
		return []backend.ToolCall{
			call(id1, "get_weather", `{"city":`+sep+`"Zürich"}`),
			call(id2, "get_weather", `{"city":`+sep+`"Bern"}`),
		}
	}
	b6097Stream = `<|channel|>analysis<|message|>User says "test". Likely wants a test response. We'll respond acknowledging.<|start|>assistant<|channel|>final<|message|>Got it! If you have any questions or need assistance, just let me know.`
	b6097Full   = `<|channel|>analysis<|message|>The user just sent "test". They likely want to see a response. We can respond with a friendly acknowledgement.<|start|>assistant<|channel|>final<|message|>Got it! How can I help you today?`
)

var goldenChats = []goldenChat{
	// Ollama
	{server: "ollama", file: "chat.json", content: "Hello! How can I help you today?", finish: "stop", usage: &backend.Usage{PromptTokens: 26, CompletionTokens: 10, TotalTokens: 36}},
	{server: "ollama", file: "chat_stream.sse", stream: true, content: "Hello! How can I help?", finish: "stop", usage: &backend.Usage{PromptTokens: 26, CompletionTokens: 10, TotalTokens: 36}},
	{server: "ollama", file: "chat_tools.json", finish: "tool_calls", calls: zurichBern("call_k3x9d2qa", "call_p7m1c8zt", ""), usage: &backend.Usage{PromptTokens: 26, CompletionTokens: 10, TotalTokens: 36}},
	{server: "ollama", file: "chat_tools_stream.sse", stream: true, finish: "tool_calls", calls: zurichBern("call_k3x9d2qa", "call_p7m1c8zt", ""), usage: &backend.Usage{PromptTokens: 26, CompletionTokens: 10, TotalTokens: 36}},
	{server: "ollama", file: "chat_tools_stream_v0.9.0.sse", stream: true, finish: "tool_calls", calls: zurichBern("call_ngrtkgu0", "call_vh1arizu", ""), usage: &backend.Usage{PromptTokens: 26, CompletionTokens: 10, TotalTokens: 36}},
	{server: "ollama", file: "chat_tools_stream_2025-04.sse", stream: true, finish: "tool_calls", calls: []backend.ToolCall{
		call("call_809l7n8f", "run_command", `{"command":"ls -la"}`),
		call("call_oqp1e2a1", "run_command", `{"command":"ls -la","cwd":"/path/to/directory"}`),
	}},
	{server: "ollama", file: "chat_stream_error.sse", stream: true, wantErr: true, errText: "the stream ended before the model finished"},
	{server: "ollama", file: "error_unknown_model.json", wantErr: true, errStatus: 404, errMessage: "model 'llama9' not found"},
	{server: "ollama", file: "error_unknown_model_v0.4.0.json", wantErr: true, errStatus: 404, errMessage: `model "llama9" not found, try pulling it first`},
	{server: "ollama", file: "error_no_tools.json", wantErr: true, errStatus: 400, errMessage: "registry.ollama.ai/library/gemma2:2b does not support tools"},

	// llama-server
	{server: "llamacpp", file: "chat.json", content: "Hello! How can I help you today?", finish: "stop", usage: &backend.Usage{PromptTokens: 14, CompletionTokens: 9, TotalTokens: 23}},
	{server: "llamacpp", file: "chat_stream.sse", stream: true, content: "Hello! How can I help you today?", finish: "stop", usage: &backend.Usage{PromptTokens: 14, CompletionTokens: 9, TotalTokens: 23}},
	{server: "llamacpp", file: "chat_b6097.json", content: b6097Full, finish: "stop", usage: &backend.Usage{PromptTokens: 82, CompletionTokens: 43, TotalTokens: 125}},
	{server: "llamacpp", file: "chat_stream_b6097.sse", stream: true, content: b6097Stream, finish: "stop", usage: &backend.Usage{PromptTokens: 82, CompletionTokens: 43, TotalTokens: 125}},
	{server: "llamacpp", file: "chat_tools.json", finish: "tool_calls", calls: zurichBern("v2dhUNilw8En9qFqCAHEz5Ow0GnQsclc", "Jx0rT4mQa9ZcW2yLpE7sVnB3kH6uDf1G", ""), usage: &backend.Usage{PromptTokens: 190, CompletionTokens: 41, TotalTokens: 231}},
	{server: "llamacpp", file: "chat_tools_stream.sse", stream: true, finish: "tool_calls", calls: []backend.ToolCall{call("v2dhUNilw8En9qFqCAHEz5Ow0GnQsclc", "run_command", `{"command":"pwd"}`)}},
	{server: "llamacpp", file: "chat_stream_error.sse", stream: true, wantErr: true, errStatus: 0, errMessage: "context shift is disabled"},
	{server: "llamacpp", file: "chat_stream_error_legacy.sse", stream: true, wantErr: true, errStatus: 0, errMessage: "context shift is disabled"},
	{server: "llamacpp", file: "error_no_tools.json", wantErr: true, errStatus: 500, errMessage: "tools param requires --jinja flag"},
	{server: "llamacpp", file: "error_unknown_model.json", wantErr: true, errStatus: 400, errMessage: "model not found"},

	// vLLM
	{server: "vllm", file: "chat.json", content: "Hello! How can I help you today?", finish: "stop", usage: &backend.Usage{PromptTokens: 14, CompletionTokens: 10, TotalTokens: 24}},
	{server: "vllm", file: "chat_stream.sse", stream: true, content: "Hello! How can I help you today?", finish: "stop", usage: &backend.Usage{PromptTokens: 14, CompletionTokens: 10, TotalTokens: 24}},
	{server: "vllm", file: "chat_tools.json", finish: "tool_calls", calls: zurichBern("chatcmpl-tool-ca99dda515524c6abe47d1ea22813507", "chatcmpl-tool-5b1e0c2f9d8a4e7b8c3f6a1d2e4b7c90", " "), usage: &backend.Usage{PromptTokens: 190, CompletionTokens: 48, TotalTokens: 238}},
	{server: "vllm", file: "chat_tools_stream.sse", stream: true, finish: "tool_calls", calls: []backend.ToolCall{call("chatcmpl-tool-ca99dda515524c6abe47d1ea22813507", "run_command", `{"command": "ls"}`)}},
	{server: "vllm", file: "chat_stream_error.sse", stream: true, wantErr: true, errStatus: 0, errMessage: "Internal server error"},
	{server: "vllm", file: "error_unknown_model.json", wantErr: true, errStatus: 404, errMessage: "The model `llama9` does not exist."},
	{server: "vllm", file: "error_unknown_model_legacy.json", wantErr: true, errStatus: 404, errMessage: "The model `llama9` does not exist."},
	{server: "vllm", file: "error_no_tools.json", wantErr: true, errStatus: 400, errMessage: `"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set`},
}

// goldenSecret is request text that must never come back in an error.
const goldenSecret = "patient NHS number 943 476 5919"

func TestGoldenChat(t *testing.T) {
	for _, tc := range goldenChats {
		t.Run(tc.server+"/"+tc.file, func(t *testing.T) {
			ex, ok := loadGolden(t, tc.server)[tc.file]
			if !ok {
				t.Fatalf("%s is not in testdata/golden/%s/exchanges.json", tc.file, tc.server)
			}
			body, err := os.ReadFile(filepath.Join("testdata", "golden", tc.server, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			c, _ := serve(t, replay(ex, body), backend.Options{})
			req := userMessage("Weather in Zürich and Bern? " + goldenSecret)
			var deltas []backend.Delta
			var onDelta func(backend.Delta) error
			if tc.stream {
				onDelta = func(d backend.Delta) error { deltas = append(deltas, d); return nil }
			}
			resp, err := c.Chat(context.Background(), req, onDelta)
			if tc.wantErr {
				checkGoldenError(t, tc, err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if resp.Content != tc.content || resp.FinishReason != tc.finish {
				t.Errorf("content %q finish %q, want %q %q", resp.Content, resp.FinishReason, tc.content, tc.finish)
			}
			if got, want := fmt.Sprint(resp.ToolCalls), fmt.Sprint(withIndexes(tc.calls)); got != want {
				t.Errorf("tool calls\n got %+v\nwant %+v", resp.ToolCalls, withIndexes(tc.calls))
			}
			switch {
			case tc.usage != nil && (resp.UsageEstimated || resp.Usage != *tc.usage):
				t.Errorf("usage %+v (estimated %v), want the server's %+v", resp.Usage, resp.UsageEstimated, *tc.usage)
			case tc.usage == nil && (!resp.UsageEstimated || resp.Usage.TotalTokens != resp.Usage.PromptTokens+resp.Usage.CompletionTokens || resp.Usage.CompletionTokens == 0):
				t.Errorf("usage %+v (estimated %v), want an estimate: the server reported none", resp.Usage, resp.UsageEstimated)
			}
			if tc.stream {
				checkDeltas(t, deltas, resp)
			}
		})
	}
}

// TestGoldenCoverage: every golden body has a case here, and every case a body.
func TestGoldenCoverage(t *testing.T) {
	cases := map[string]bool{}
	for _, tc := range goldenChats {
		cases[tc.server+"/"+tc.file] = true
	}
	for _, server := range []string{"ollama", "llamacpp", "vllm"} {
		cases[server+"/embeddings.json"] = true // TestGoldenEmbeddings
		for file := range loadGolden(t, server) {
			if !cases[server+"/"+file] {
				t.Errorf("testdata/golden/%s/%s has no test case", server, file)
			}
			delete(cases, server+"/"+file)
		}
	}
	for c := range cases {
		t.Errorf("case %s has no entry in exchanges.json", c)
	}
}

// withIndexes numbers calls as the client does: by position.
func withIndexes(calls []backend.ToolCall) []backend.ToolCall {
	out := make([]backend.ToolCall, len(calls))
	for i, c := range calls {
		c.Index = i
		out[i] = c
	}
	return out
}

// checkDeltas: the deltas put back together give the response.
func checkDeltas(t *testing.T, deltas []backend.Delta, resp *backend.ChatResponse) {
	t.Helper()
	var content strings.Builder
	args := map[int]string{}
	for _, d := range deltas {
		content.WriteString(d.Content)
		for _, tc := range d.ToolCalls {
			args[tc.Index] += tc.Function.Arguments
		}
	}
	if content.String() != resp.Content {
		t.Errorf("the deltas' content %q differs from the response's %q", content.String(), resp.Content)
	}
	for i, tc := range resp.ToolCalls {
		if args[i] != tc.Function.Arguments {
			t.Errorf("call %d: the deltas' arguments %q differ from the response's %q", i, args[i], tc.Function.Arguments)
		}
	}
	if len(args) != len(resp.ToolCalls) {
		t.Errorf("deltas name %d calls, the response has %d", len(args), len(resp.ToolCalls))
	}
}

func checkGoldenError(t *testing.T, tc goldenChat, err error) {
	t.Helper()
	if err == nil {
		t.Fatal("the call succeeded; want an error")
	}
	if strings.Contains(err.Error(), goldenSecret) {
		t.Fatalf("the error carries request text: %v", err)
	}
	var be *backend.Error
	if tc.errMessage == "" {
		if errors.As(err, &be) || !strings.Contains(err.Error(), tc.errText) {
			t.Fatalf("err = %v, want one saying %q", err, tc.errText)
		}
		return
	}
	if !errors.As(err, &be) {
		t.Fatalf("err = %v, want a *backend.Error", err)
	}
	if be.Status != tc.errStatus || be.Message != tc.errMessage {
		t.Fatalf("*backend.Error status %d message %q, want %d %q", be.Status, be.Message, tc.errStatus, tc.errMessage)
	}
}

// TestGoldenErrorEchoesNoRequestText: a server that quotes the request in its error
// message, in any of the three servers' error shapes, does not get it past the
// client: neither quoted as sent nor JSON-escaped, as llama-server quotes a message
// it cannot parse (message.dump()).
func TestGoldenErrorEchoesNoRequestText(t *testing.T) {
	jsonText := func(s string) string { b, _ := json.Marshal(s); return string(b[1 : len(b)-1]) }
	for _, g := range goldenChats {
		if !g.wantErr || g.errMessage == "" || !strings.HasPrefix(g.file, "error_") {
			continue
		}
		for _, echo := range []struct {
			name, user, quoted string
		}{
			{"as sent", goldenSecret, goldenSecret},
			{"JSON-escaped", "Note:\n\t\"" + goldenSecret + "\"", `"` + jsonText("Note:\n\t\""+goldenSecret+"\"") + `"`},
		} {
			t.Run(g.server+"/"+g.file+"/"+echo.name, func(t *testing.T) {
				ex := loadGolden(t, g.server)[g.file]
				body, err := os.ReadFile(filepath.Join("testdata", "golden", g.server, g.file))
				if err != nil {
					t.Fatal(err)
				}
				echoed := strings.Replace(string(body), jsonText(g.errMessage), jsonText(g.errMessage+" in message: "+echo.quoted), 1)
				if echoed == string(body) {
					t.Fatal("the golden body does not hold its message")
				}
				c, _ := serve(t, replay(ex, []byte(echoed)), backend.Options{})
				_, err = c.Chat(context.Background(), userMessage(echo.user), nil)
				var be *backend.Error
				if !errors.As(err, &be) || be.Status != g.errStatus {
					t.Fatalf("err = %v", err)
				}
				if strings.Contains(err.Error(), "NHS number") || !strings.HasPrefix(be.Message, g.errMessage+" in message: ") ||
					!strings.Contains(be.Message, "[request text removed]") {
					t.Fatalf("message %q: the request text was not cut out", be.Message)
				}
			})
		}
	}
}

func TestGoldenEmbeddings(t *testing.T) {
	tests := []struct {
		server  string
		vectors [][]float32
		usage   backend.Usage
	}{
		{"ollama", [][]float32{{0.010071029, -0.0017594862, 0.05007221, 0.04692972}, {-0.009802181, 0.060424034, 0.025257453, -0.0063216984}}, backend.Usage{PromptTokens: 8, TotalTokens: 8}},
		{"llamacpp", [][]float32{{0.010071029, -0.0017594862, 0.05007221, 0.04692972}, {-0.009802181, 0.060424034, 0.025257453, -0.0063216984}}, backend.Usage{PromptTokens: 14, TotalTokens: 14}},
		{"vllm", [][]float32{{-0.04193115234375, 0.01457977294921875, -0.0264892578125, 0.034698486328125}, {0.0227813720703125, -0.01001739501953125, 0.01131439208984375, 0.044830322265625}}, backend.Usage{PromptTokens: 38, TotalTokens: 38}},
	}
	for _, tc := range tests {
		t.Run(tc.server, func(t *testing.T) {
			ex := loadGolden(t, tc.server)["embeddings.json"]
			body, err := os.ReadFile(filepath.Join("testdata", "golden", tc.server, "embeddings.json"))
			if err != nil {
				t.Fatal(err)
			}
			c, _ := serve(t, replay(ex, body), backend.Options{})
			vs, u, err := c.Embed(context.Background(), "embedder", []string{"why is the sky blue?", "why is the grass green?"})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(vs) != fmt.Sprint(tc.vectors) || u != tc.usage {
				t.Fatalf("vectors %v usage %+v\nwant    %v usage %+v", vs, u, tc.vectors, tc.usage)
			}
		})
	}
}

// TestMockDialects: the client reads the mock's answers in every dialect, as it
// reads the real servers' (end-to-end tests elsewhere rely on this).
func TestMockDialects(t *testing.T) {
	calls := []backend.ToolCall{
		{Function: backend.FunctionCall{Name: "get_weather", Arguments: `{"city":"Zürich"}`}},
		{Function: backend.FunctionCall{Name: "get_weather", Arguments: `{"city":"Bern"}`}},
	}
	noDelta := func(backend.Delta) error { return nil }
	for _, tc := range []struct {
		dialect                 string
		unknownModel, noTools   int    // statuses
		midStream, midStreamErr string // *backend.Error message, or else error text
	}{
		{"", 404, 400, "", ""},
		{"ollama", 404, 400, "", "the stream ended before the model finished"},
		{"llamacpp", 400, 500, "runner crashed", ""},
		{"vllm", 404, 400, "runner crashed", ""},
	} {
		t.Run("dialect="+tc.dialect, func(t *testing.T) {
			text, _ := serve(t, &mock.Server{Dialect: tc.dialect, Reply: "one two three"}, backend.Options{})
			for _, onDelta := range []func(backend.Delta) error{nil, noDelta} {
				resp, err := text.Chat(context.Background(), userMessage("x"), onDelta)
				if err != nil || resp.Content != "one two three" || resp.FinishReason != "stop" || resp.UsageEstimated {
					t.Fatalf("streamed=%v: %+v %v", onDelta != nil, resp, err)
				}
			}
			tools, _ := serve(t, &mock.Server{Dialect: tc.dialect, ToolCalls: calls}, backend.Options{})
			for _, onDelta := range []func(backend.Delta) error{nil, noDelta} {
				resp, err := tools.Chat(context.Background(), userMessage("x"), onDelta)
				if err != nil || len(resp.ToolCalls) != 2 || resp.FinishReason != "tool_calls" ||
					resp.ToolCalls[0].Function != calls[0].Function || resp.ToolCalls[1].Function != calls[1].Function ||
					resp.ToolCalls[0].ID == resp.ToolCalls[1].ID {
					t.Fatalf("streamed=%v: %+v %v", onDelta != nil, resp, err)
				}
			}
			vs, u, err := text.Embed(context.Background(), "e", []string{"alpha", "beta"})
			if err != nil || fmt.Sprint(vs[1]) != fmt.Sprint(mock.Embedding("beta", mock.DefaultDimensions)) || u.PromptTokens != 4 {
				t.Fatalf("embed: %v %+v %v", vs, u, err)
			}

			var be *backend.Error
			picky, _ := serve(t, &mock.Server{Dialect: tc.dialect, Models: []string{"other"}, NoTools: true}, backend.Options{})
			if _, err := picky.Chat(context.Background(), userMessage("x"), nil); !errors.As(err, &be) || be.Status != tc.unknownModel {
				t.Fatalf("unknown model: %v", err)
			}
			req := userMessage("x")
			req.Model = "other"
			req.Tools = []backend.Tool{{Function: backend.FunctionDef{Name: "f"}}}
			if _, err := picky.Chat(context.Background(), req, nil); !errors.As(err, &be) || be.Status != tc.noTools || !strings.Contains(be.Message, "tool") {
				t.Fatalf("no tools: %v", err)
			}

			if tc.dialect == "" {
				return
			}
			failing, _ := serve(t, &mock.Server{Dialect: tc.dialect, Reply: "one two three", FailAfter: 1, StreamError: "runner crashed"}, backend.Options{})
			_, err = failing.Chat(context.Background(), userMessage("x"), noDelta)
			switch {
			case tc.midStream != "" && (!errors.As(err, &be) || be.Status != 0 || be.Message != tc.midStream):
				t.Fatalf("mid-stream: %v", err)
			case tc.midStream == "" && (err == nil || errors.As(err, &be) || !strings.Contains(err.Error(), tc.midStreamErr)):
				t.Fatalf("mid-stream: %v", err)
			}
		})
	}
}
