package api

import (
	"bytes"
	"encoding/json"
	"testing"
)

// encodingJSON is how writeJSON wrote an answer before appendJSON: encoding/json with
// HTML escaping off.
func encodingJSON(t testing.TB, v any) []byte {
	t.Helper()
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n"))
}

func checkAnswerJSON(t testing.TB, c *completion) {
	t.Helper()
	if got, want := c.appendJSON(nil), encodingJSON(t, c); !bytes.Equal(got, want) {
		t.Fatalf("appendJSON wrote\n%s\nencoding/json writes\n%s", got, want)
	}
}

func TestAnswerJSONIsEncodingJSON(t *testing.T) {
	text, empty, stop, calls := "The committee met <on Tuesday> & agreed.\u2028\x01\xff", "", "stop", "tool_calls"
	zero, one := 0, 1
	tcs := []wireToolCall{{ID: "call_1", Type: "function", Function: wireFunction{Name: "lookup", Arguments: `{"q":"x<y"}`}},
		{ID: "call_2", Type: "function", Function: wireFunction{Name: "add", Arguments: "{}"}}}
	indexed := []wireToolCall{{Index: &zero, ID: "call_1", Type: "function", Function: wireFunction{Name: "lookup", Arguments: "{}"}},
		{Index: &one, ID: "call_2", Type: "function", Function: wireFunction{Name: "add", Arguments: "{}"}}}
	base := completion{ID: "chatcmpl-0123", Object: "chat.completion", Created: 1796000000, Model: "governance", SystemFingerprint: "fp_abc"}
	for _, ch := range [][]wireChoice{
		{{Message: &wireMessage{Role: "assistant", Content: &text}, FinishReason: &stop}},
		{{Message: &wireMessage{Role: "assistant", ToolCalls: tcs}, FinishReason: &calls}},
		{{Message: &wireMessage{Role: "assistant", Content: &text, ToolCalls: tcs}, FinishReason: &calls}},
		{{Delta: &wireDelta{Role: "assistant", Content: &empty}}},
		{{Delta: &wireDelta{Content: &text}}},
		{{Delta: &wireDelta{ToolCalls: indexed}}},
		{{Delta: &wireDelta{}, FinishReason: &stop}},
		{},
		nil,
	} {
		c := base
		c.Choices = ch
		checkAnswerJSON(t, &c)
		c.Usage = &Usage{PromptTokens: 12, CompletionTokens: 30, TotalTokens: 42}
		checkAnswerJSON(t, &c)
	}
}

func FuzzAnswerJSON(f *testing.F) {
	f.Add("chatcmpl-1", "m", "fp", "text", "call", "name", `{"a":1}`, "stop", int64(1), 3)
	f.Fuzz(func(t *testing.T, id, model, fp, content, callID, name, args, finish string, created int64, tokens int) {
		tc := []wireToolCall{{ID: callID, Type: "function", Function: wireFunction{Name: name, Arguments: args}}}
		k := tokens
		for _, ch := range []wireChoice{
			{Message: &wireMessage{Role: "assistant", Content: &content, ToolCalls: tc}, FinishReason: &finish},
			{Index: tokens, Delta: &wireDelta{Role: name, Content: &content}},
			{Delta: &wireDelta{ToolCalls: []wireToolCall{{Index: &k, ID: callID, Type: name, Function: wireFunction{Name: name, Arguments: args}}}}},
		} {
			checkAnswerJSON(t, &completion{ID: id, Object: "chat.completion", Created: created, Model: model, SystemFingerprint: fp,
				Choices: []wireChoice{ch}, Usage: &Usage{PromptTokens: tokens, CompletionTokens: -tokens, TotalTokens: 0}})
		}
	})
}

// BenchmarkAnswerJSON: a typical answer written by appendJSON and, for comparison, by
// encoding/json.
func BenchmarkAnswerJSON(b *testing.B) {
	text, stop := "The audit committee met on Tuesday and approved the retention schedule for the year.", "stop"
	c := &completion{ID: "chatcmpl-0123456789abcdef01234567", Object: "chat.completion", Created: 1796000000, Model: "governance",
		SystemFingerprint: "fp_0123456789ab", Choices: []wireChoice{{Message: &wireMessage{Role: "assistant", Content: &text}, FinishReason: &stop}},
		Usage: &Usage{PromptTokens: 52, CompletionTokens: 20, TotalTokens: 72}}
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			encodingJSON(b, c)
		}
	})
	b.Run("appendJSON", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			c.appendJSON(make([]byte, 0, 512))
		}
	})
}
