package invoke

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/memory"
	"github.com/sios-project/sios/policy"
)

// What a request asks of a brain is forwarded only as far as the brain's file allows.
func TestRequestMembersFollowTheBrain(t *testing.T) {
	h := newHarness(t, "http://model", nil)
	temp, topP, seed := 0.3, 0.5, int64(7)
	inv := ask("agent", "x")
	inv.Params = Params{Temperature: &temp, Seed: &seed, Stop: []string{"END"}, ResponseFormat: json.RawMessage(`{"type":"json_object"}`),
		Options: json.RawMessage(`{"num_ctx":8192,"num_gpu":1}`)}
	if err := h.p.Chat(context.Background(), inv, &sink{}); err != nil {
		t.Fatal(err)
	}
	sent := h.server.requests()[0]
	if *sent.Temperature != 0.3 || *sent.Seed != 7 || sent.Stop[0] != "END" || string(sent.ResponseFormat) != `{"type":"json_object"}` {
		t.Fatalf("members not forwarded: %+v", sent)
	}
	if sent.TopP == nil || *sent.TopP != 0.9 {
		t.Fatal("the brain's pin is not sent")
	}
	var opts map[string]float64
	json.Unmarshal(sent.Options, &opts)
	if opts["num_ctx"] != 8192 || opts["num_gpu"] != 1 {
		t.Fatalf("options %s: the caller's are merged over the brain's", sent.Options)
	}
	for name, prm := range map[string]Params{
		"a member the brain does not allow": {TopP: &topP},
		"a pinned member":                   {TopP: &topP},
		"user, not allowed":                 {User: "u1"},
	} {
		inv := ask("agent", "x")
		inv.Params = prm
		e := outcome(t, h.p.Chat(context.Background(), inv, &sink{}), CodeParameterNotAllowed)
		if e.Receipt == nil || e.Param == "" {
			t.Fatalf("%s: %+v", name, e)
		}
	}
	// A brain whose file names no parameters allows the default sampling set.
	inv = ask("legal-contracts", "x")
	inv.Params = Params{TopP: &topP}
	if err := h.p.Chat(context.Background(), inv, &sink{}); err != nil {
		t.Fatal(err)
	}
	inv = ask("legal-contracts", "x")
	inv.Params = Params{Options: json.RawMessage(`{"num_ctx":1}`)}
	outcome(t, h.p.Chat(context.Background(), inv, &sink{}), CodeParameterNotAllowed)
}

func TestImagesOnlyToBrainsThatTakeThem(t *testing.T) {
	h := newHarness(t, "http://model", nil)
	img := Message{Role: "user", Content: "what is this?", Parts: []backend.Part{{Type: "text", Text: "what is this?"},
		{Type: "image_url", ImageURL: &backend.ImageURL{URL: "data:image/png;base64,iVBORw0KGgo="}}}}
	inv := ask("legal-contracts", "")
	inv.Messages = []Message{img}
	e := outcome(t, h.p.Chat(context.Background(), inv, &sink{}), CodeUnsupportedContent)
	if e.Param != "messages[0].content[1]" {
		t.Fatalf("param %q", e.Param)
	}
	inv = ask("agent", "")
	inv.Messages = []Message{img}
	if err := h.p.Chat(context.Background(), inv, &sink{}); err != nil {
		t.Fatal(err)
	}
	sent := h.server.requests()[0].Messages[1]
	if len(sent.Parts) != 2 || sent.Parts[1].ImageURL.URL != img.Parts[1].ImageURL.URL {
		t.Fatalf("the image did not reach the model: %+v", sent)
	}
	adm := h.rec.byAction("brain.invoke")
	last := adm[len(adm)-1]
	if len(last.Inputs) != 2 || last.Inputs[1].Name != "messages[0].content[1].image" {
		t.Fatalf("the image is not digested in the admission record: %+v", last.Inputs)
	}
}

// The caller's own tools: offered only when the brain allows them; the model's calls go
// back to the caller; the caller's results come back in and are recorded.
func TestClientToolsRoundTrip(t *testing.T) {
	h := newHarness(t, "http://model", nil)
	weather := backend.Tool{Type: "function", Function: backend.FunctionDef{Name: "get_weather", Parameters: json.RawMessage(`{"type":"object"}`)}}
	shell := backend.Tool{Type: "function", Function: backend.FunctionDef{Name: "shell"}}
	inv := ask("agent", "x")
	inv.Params.Tools = []backend.Tool{weather, shell}
	e := outcome(t, h.p.Chat(context.Background(), inv, &sink{}), CodePolicyDenied)
	if !strings.Contains(e.Message, "brain-client-tools") || e.Param != "tools[1]" {
		t.Fatalf("%+v", e)
	}
	h.server.turns = []turn{
		{toolCalls: []backend.ToolCall{{ID: "w1", Type: "function", Function: backend.FunctionCall{Name: "get_weather", Arguments: `{"city":"Leeds"}`}}}},
		{content: "It is raining in Leeds."},
	}
	inv = ask("agent", "weather in Leeds?")
	inv.Params.Tools = []backend.Tool{weather}
	s := &sink{}
	if err := h.p.Chat(context.Background(), inv, s); err != nil {
		t.Fatal(err)
	}
	if s.result.FinishReason != "tool_calls" || len(s.result.ToolCalls) != 1 || s.result.ToolCalls[0].Function.Arguments != `{"city":"Leeds"}` {
		t.Fatalf("the caller did not get the model's call: %+v", s.result)
	}
	sent := h.server.requests()[0]
	if len(sent.Tools) != 3 { // calculator, memory.search, get_weather
		t.Fatalf("tools offered: %d", len(sent.Tools))
	}
	// The caller runs the tool and sends its result back.
	inv = ask("agent", "weather in Leeds?")
	inv.Params.Tools = []backend.Tool{weather}
	inv.Messages = append(inv.Messages,
		Message{Role: "assistant", ToolCalls: s.result.ToolCalls},
		Message{Role: "tool", ToolCallID: "w1", Content: `{"rain":true}`})
	s = &sink{}
	if err := h.p.Chat(context.Background(), inv, s); err != nil {
		t.Fatal(err)
	}
	if s.result.Content != "It is raining in Leeds." {
		t.Fatalf("%+v", s.result)
	}
	back := h.server.requests()[1].Messages
	if back[len(back)-2].ToolCalls[0].ID != "w1" || back[len(back)-1].Content != `{"rain":true}` {
		t.Fatalf("the conversation did not reach the model whole: %+v", back)
	}
	h.p.Wait()
	adm := h.rec.byAction("brain.invoke")
	d := detailOf(t, adm[len(adm)-1])
	results, _ := d["client_tool_results"].([]any)
	if len(results) != 1 || results[0].(map[string]any)["name"] != "get_weather" {
		t.Fatalf("the caller's tool result is not recorded: %v", d)
	}
	// Completion records are appended in the background, so the two chats' may be
	// recorded in either order: exactly one of them holds the model's call.
	done := h.rec.byAction("brain.complete")
	var withCalls int
	for _, rec := range done {
		if detailOf(t, rec)["client_tool_calls"] != nil {
			withCalls++
		}
	}
	if len(done) != 2 || withCalls != 1 {
		t.Fatalf("the model's call of the caller's tool is not recorded once among %d completion records (%d hold calls)", len(done), withCalls)
	}
}

// A model that takes no tools is answered without them, with memory in its prompt.
func TestModelWithoutTools(t *testing.T) {
	h := newHarness(t, "http://model", nil)
	if _, _, err := h.mem.Add(context.Background(), oprActor, oprAllow, memory.NewMemory{Tenant: "hospital", Subject: "formulary",
		Classification: policy.Official, Text: "Metformin: review when eGFR falls below 45."}); err != nil {
		t.Fatal(err)
	}
	h.server.turns = []turn{
		{err: &backend.Error{Status: 400, Message: "registry.ollama.ai/library/tinyllama:latest does not support tools"}},
		{content: "Review it."},
	}
	s := &sink{}
	if err := h.p.Chat(context.Background(), ask("pharmacology", "metformin and eGFR"), s); err != nil {
		t.Fatal(err)
	}
	second := h.server.requests()[1]
	if len(second.Tools) != 0 || !strings.Contains(second.Messages[0].Content, "eGFR falls below 45") {
		t.Fatalf("the retry has tools or no memory: %+v", second)
	}
	h.p.Wait()
	d := detailOf(t, h.rec.byAction("brain.complete")[0])
	if !strings.Contains(d["path"].(string), "no tools") {
		t.Fatalf("the completion record does not say which path was taken: %v", d)
	}
	// Stated in the configuration, the node does not even try.
	h2 := newHarness(t, "http://model", func(c *Config) {
		no := false
		c.Models = map[string]ModelSettings{"tiny": {Tools: &no}}
	})
	if err := h2.p.Chat(context.Background(), ask("pharmacology", "x"), &sink{}); err != nil {
		t.Fatal(err)
	}
	if len(h2.server.requests()) != 1 || len(h2.server.requests()[0].Tools) != 0 {
		t.Fatal("tools were offered to a model configured without them")
	}
}

// A streamed answer that breaks off is recorded as what the caller received, with its
// cause.
func TestBrokenStreamsAreRecordedAsStreamed(t *testing.T) {
	h := newHarness(t, "http://model", nil)
	h.server.turns = []turn{{content: "one two three four five", failAfter: 3, err: errors.New("unexpected EOF")}}
	inv := ask("legal-contracts", "x")
	inv.Stream = true
	s := &sink{}
	outcome(t, h.p.Chat(context.Background(), inv, s), CodeBackendClosed)
	h.p.Wait()
	done := h.rec.byAction("brain.complete")[0]
	got := strings.Join(s.deltas, "")
	if got != "one two three " || done.Outputs[0].Name != "streamed" || done.Outputs[0].Size != int64(len(got)) {
		t.Fatalf("streamed %q, record %+v", got, done.Outputs)
	}
	// The caller going away is its own cause.
	h.server.turns = []turn{{content: "late", delay: 5 * time.Second}}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	outcome(t, h.p.Chat(ctx, ask("legal-contracts", "x"), &sink{}), CodeClientClosed)
}

func TestBudgetsAndModelErrorsSayWhatHappened(t *testing.T) {
	h := newHarness(t, "http://model", func(c *Config) {
		c.Models = map[string]ModelSettings{"tiny": {Timeout: 300 * time.Millisecond}}
	})
	h.server.turns = []turn{{content: "late", delay: 2 * time.Second}}
	e := outcome(t, h.p.Chat(context.Background(), ask("legal-contracts", "x"), &sink{}), CodeTimeBudget)
	if !strings.Contains(e.Message, "model tiny's (config backend_models) time budget of 300ms") {
		t.Fatal(e.Message)
	}
	h.server.turns = []turn{{err: &backend.Error{Status: 404, Message: "model \"tiny\" not found, try pulling it first"}}}
	e = outcome(t, h.p.Chat(context.Background(), ask("legal-contracts", "x"), &sink{}), CodeBackendModelNotFound)
	if !strings.Contains(e.Message, `"tiny"`) {
		t.Fatal(e.Message)
	}
}
