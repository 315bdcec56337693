package backend_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/sios-project/sios/backend"
)

func jsonHandler(body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	})
}

// TestAnswerExtrasTaken: members servers add (vLLM, llama.cpp, Ollama, DeepSeek-style
// reasoning) are skipped, not refused: a newer server must not break the node.
func TestAnswerExtrasTaken(t *testing.T) {
	body := `{"id":"c1","object":"chat.completion","created":1,"model":"m","system_fingerprint":"fp","prompt_logprobs":null,` +
		`"kv_transfer_params":null,"timings":{"predicted_ms":3.5},"choices":[{"index":0,"logprobs":null,"stop_reason":null,` +
		`"message":{"role":"assistant","content":"hi","reasoning_content":"think","refusal":null,"tool_calls":[]},"finish_reason":"stop"}],` +
		`"usage":{"prompt_tokens":3,"completion_tokens":1,"total_tokens":4,"prompt_tokens_details":{"cached_tokens":0}}}`
	c, _ := serve(t, jsonHandler(body), backend.Options{})
	out, err := c.Chat(context.Background(), userMessage("x"), nil)
	if err != nil || out.Content != "hi" || out.Usage.TotalTokens != 4 {
		t.Fatalf("Chat = %+v, %v", out, err)
	}
}

// TestAnswerRepeatedMemberRefused: a model server's answer that gives a member twice
// is refused naming it; encoding/json let the last one win, so the node recorded and
// answered one of two contents without saying so.
func TestAnswerRepeatedMemberRefused(t *testing.T) {
	for _, c := range []struct {
		name   string
		h      http.Handler
		stream bool
		embed  bool
		member string
	}{
		{"completion content", jsonHandler(`{"choices":[{"message":{"content":"yes","content":"no"},"finish_reason":"stop"}]}`), false, false, "content"},
		{"completion finish_reason", jsonHandler(`{"choices":[{"message":{"content":"a"},"finish_reason":"length","finish_reason":"stop"}]}`), false, false, "finish_reason"},
		{"stream chunk", sseHandler(`data: {"choices":[{"index":0,"delta":{"content":"a","content":"b"},"finish_reason":"stop"}]}` + "\n\ndata: [DONE]\n\n"), true, false, "content"},
		{"embeddings", jsonHandler(`{"data":[{"index":0,"embedding":[1],"embedding":[2]}]}`), false, true, "embedding"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl, _ := serve(t, c.h, backend.Options{})
			var err error
			switch {
			case c.embed:
				_, _, err = cl.Embed(context.Background(), "m", []string{"x"})
			case c.stream:
				_, err = cl.Chat(context.Background(), userMessage("x"), func(backend.Delta) error { return nil })
			default:
				_, err = cl.Chat(context.Background(), userMessage("x"), nil)
			}
			if err == nil || !strings.Contains(err.Error(), `duplicate object member name "`+c.member+`"`) {
				t.Fatalf("err = %v, want a refusal naming %q", err, c.member)
			}
		})
	}
}

// FuzzChatAnswer: whatever a model server answers, the client does not panic, and an
// answer it takes has no member given twice.
func FuzzChatAnswer(f *testing.F) {
	f.Add(`{"choices":[{"message":{"content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`)
	f.Add(`{"choices":[{"message":{"content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":{"a":1}}}]},"finish_reason":"tool_calls"}]}`)
	f.Add(`{"choices":[{"message":{"content":"yes","content":"no"},"finish_reason":"stop"}]}`)
	f.Add(`{"choices":[{"message":{"Content":"x","content":"y"},"finish_reason":"stop"}],"timings":{}}`)
	f.Add("{\"choices\":[{\"message\":{\"content\":\"\xff\"},\"finish_reason\":\"stop\"}]}")
	f.Fuzz(func(t *testing.T, body string) {
		c, _ := serve(t, jsonHandler(body), backend.Options{})
		if _, err := c.Chat(context.Background(), userMessage("x"), nil); err != nil {
			return
		}
		if !jsontext.Value(body).IsValid(jsontext.AllowInvalidUTF8(true)) {
			t.Fatalf("took an answer that is not JSON without repeated members: %q", body)
		}
	})
}
