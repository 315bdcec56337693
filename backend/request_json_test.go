package backend

import (
	"encoding/json"
	"reflect"
	"testing"
)

// refMessage is Message as encoding/json writes it by reflection (the encoding
// appendJSON replaced): the reference the hand-written JSON is checked against.
type refMessage Message

func (m refMessage) MarshalJSON() ([]byte, error) {
	type plain Message
	var content any = m.Content
	switch {
	case len(m.Parts) > 0:
		content = m.Parts
	case m.Content == "" && len(m.ToolCalls) > 0:
		content = nil
	}
	return json.Marshal(struct {
		plain
		Content any `json:"content"`
	}{plain(m), content})
}

// refRequest is wireChatRequest as encoding/json writes it, its messages by refMessage.
func refRequest(t testing.TB, w *wireChatRequest) []byte {
	t.Helper()
	var msgs []refMessage
	if w.Messages != nil {
		msgs = make([]refMessage, len(w.Messages))
		for i, m := range w.Messages {
			msgs[i] = refMessage(m)
		}
	}
	r := w.ChatRequest
	b, err := json.Marshal(struct {
		Model             string          `json:"model"`
		Messages          []refMessage    `json:"messages"`
		Tools             []Tool          `json:"tools,omitempty"`
		ToolChoice        json.RawMessage `json:"tool_choice,omitempty"`
		ParallelToolCalls *bool           `json:"parallel_tool_calls,omitempty"`
		MaxTokens         int             `json:"max_tokens,omitempty"`
		Temperature       *float64        `json:"temperature,omitempty"`
		TopP              *float64        `json:"top_p,omitempty"`
		FrequencyPenalty  *float64        `json:"frequency_penalty,omitempty"`
		PresencePenalty   *float64        `json:"presence_penalty,omitempty"`
		Stop              []string        `json:"stop,omitempty"`
		Seed              *int64          `json:"seed,omitempty"`
		ResponseFormat    json.RawMessage `json:"response_format,omitempty"`
		User              string          `json:"user,omitempty"`
		Options           json.RawMessage `json:"options,omitempty"`
		Stream            bool            `json:"stream,omitempty"`
		StreamOptions     *streamOptions  `json:"stream_options,omitempty"`
	}{r.Model, msgs, r.Tools, r.ToolChoice, r.ParallelToolCalls, r.MaxTokens, r.Temperature, r.TopP, r.FrequencyPenalty,
		r.PresencePenalty, r.Stop, r.Seed, r.ResponseFormat, r.User, r.Options, w.Stream, w.StreamOptions})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkRequestJSON(t testing.TB, w *wireChatRequest) {
	t.Helper()
	got, err := w.appendJSON(nil)
	if err != nil {
		t.Fatalf("appendJSON: %v", err)
	}
	want := refRequest(t, w)
	var g, r any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("appendJSON wrote invalid JSON %s: %v", got, err)
	}
	if err := json.Unmarshal(want, &r); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, r) {
		t.Fatalf("appendJSON wrote\n%s\nencoding/json writes\n%s", got, want)
	}
	// Member order and escapes too, where no raw member holds what encoding/json
	// would HTML-escape inside it.
	if len(w.ToolChoice)+len(w.ResponseFormat)+len(w.Options) == 0 && len(w.Tools) == 0 && string(got) != string(want) {
		t.Fatalf("appendJSON wrote\n%s\nencoding/json writes\n%s", got, want)
	}
}

func TestRequestJSONIsEncodingJSON(t *testing.T) {
	yes, no := true, false
	temp, tiny, huge := 0.7, 1e-7, 2e21
	seed := int64(-9223372036854775808)
	full := ChatRequest{
		Model: "llama3.2:1b",
		Messages: []Message{
			{Role: "system", Content: "You are <careful> & exact.\u2028"},
			{Role: "user", Name: "dr_okafor", Parts: []Part{{Type: "text", Text: "what is this?"}, {Type: "image_url", ImageURL: &ImageURL{URL: "data:image/png;base64,AAAA", Detail: "low"}}}},
			{Role: "assistant", ToolCalls: []ToolCall{{ID: "call_1", Type: "function", Function: FunctionCall{Name: "calculator", Arguments: `{"expression":"2*(3+4)"}`}}}},
			{Role: "tool", ToolCallID: "call_1", Content: "14"},
			{Role: "assistant", Content: "\x00\x1f\"\\\n\t\xff"},
		},
		Tools:             []Tool{{Type: "function", Function: FunctionDef{Name: "calculator", Description: "adds <things>", Parameters: json.RawMessage(` { "type" : "object" } `), Strict: &yes}}},
		ToolChoice:        json.RawMessage(`"auto"`),
		ParallelToolCalls: &no,
		MaxTokens:         256,
		Temperature:       &temp,
		TopP:              &tiny,
		FrequencyPenalty:  &huge,
		Stop:              []string{"\n\n", "END"},
		Seed:              &seed,
		ResponseFormat:    json.RawMessage(`{"type":"json_object"}`),
		User:              "u-1",
		Options:           json.RawMessage(`{"num_ctx": 4096}`),
	}
	for _, w := range []*wireChatRequest{
		{ChatRequest: ChatRequest{Model: "m", Messages: []Message{{Role: "user", Content: "hello <world> & all"}}}},
		{ChatRequest: ChatRequest{Model: "m"}},
		{ChatRequest: ChatRequest{Model: "m", Messages: []Message{}}, Stream: true, StreamOptions: &streamOptions{IncludeUsage: true}},
		{ChatRequest: full},
		{ChatRequest: full, Stream: true, StreamOptions: &streamOptions{}},
	} {
		checkRequestJSON(t, w)
	}
	bad := &wireChatRequest{ChatRequest: ChatRequest{Model: "m", ToolChoice: json.RawMessage(`{`)}}
	if _, err := bad.appendJSON(nil); err == nil {
		t.Fatal("a tool_choice that is not JSON was written")
	}
}

func FuzzRequestJSON(f *testing.F) {
	f.Add("m", "user", "hello", "name", "call_1", `{"a":1}`, 0.5, int64(7), `"auto"`)
	f.Add("", "assistant", "", "", "", "", 1e-9, int64(-1), "")
	f.Fuzz(func(t *testing.T, model, role, content, name, callID, args string, temp float64, seed int64, raw string) {
		w := &wireChatRequest{ChatRequest: ChatRequest{Model: model, Seed: &seed, User: name,
			Messages: []Message{{Role: role, Content: content, Name: name, ToolCallID: callID}}}}
		if args != "" {
			w.Messages = append(w.Messages, Message{Role: "assistant", ToolCalls: []ToolCall{{ID: callID, Type: role, Function: FunctionCall{Name: name, Arguments: args}}}})
		}
		if content != "" {
			w.Messages = append(w.Messages, Message{Role: role, Parts: []Part{{Type: "text", Text: content}, {Type: "image_url", ImageURL: &ImageURL{URL: args, Detail: name}}}})
		}
		if !isNaNOrInf(temp) {
			w.Temperature = &temp
		}
		if json.Valid([]byte(raw)) {
			w.ToolChoice = json.RawMessage(raw)
		}
		checkRequestJSON(t, w)
	})
}

func isNaNOrInf(f float64) bool {
	return f != f || f > 1.7976931348623157e308 || f < -1.7976931348623157e308
}

// BenchmarkRequestJSON: a typical request (system prompt, a question, the brain's
// two tools) written by appendJSON and, for comparison, by encoding/json.
func BenchmarkRequestJSON(b *testing.B) {
	temp := 0.2
	w := &wireChatRequest{ChatRequest: ChatRequest{Model: "llama3.2:1b", Temperature: &temp, MaxTokens: 512,
		Messages: []Message{{Role: "system", Content: "You are the governance brain. Answer from the tenant's records only; say so when they do not say."},
			{Role: "user", Content: "Summarise: the audit committee met on Tuesday and approved the retention schedule."}},
		Tools: []Tool{{Type: "function", Function: FunctionDef{Name: "memory.search", Description: "Search the tenant's memory", Parameters: json.RawMessage(`{"type":"object","properties":{"query":{"type":"string"}}}`)}},
			{Type: "function", Function: FunctionDef{Name: "calculator", Parameters: json.RawMessage(`{"type":"object","properties":{"expression":{"type":"string"}}}`)}}}}}
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			refRequest(b, w)
		}
	})
	b.Run("appendJSON", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if _, err := w.appendJSON(make([]byte, 0, 1024)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
