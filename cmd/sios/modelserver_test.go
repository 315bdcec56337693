package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/shared"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/backend/mock"
	"github.com/sios-project/sios/oar"
)

// A node in front of a model server that behaves like a real one (tool calls it was
// offered, a model without tools, JSON mode, stop sequences, broken streams, its own
// usage), driven with the official OpenAI Go SDK as an application would.

func modelServer(t *testing.T, m *mock.Server) string {
	t.Helper()
	ts := httptest.NewServer(m)
	t.Cleanup(ts.Close)
	return ts.URL + "/v1"
}

func userAsk(model, text string) openai.ChatCompletionNewParams {
	return openai.ChatCompletionNewParams{Model: model, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(text)}}
}

// The brain's own tools run against a model server that asks for them.
func TestModelServerToolsRun(t *testing.T) {
	t.Parallel()
	m := &mock.Server{ToolCall: &backend.ToolCall{Function: backend.FunctionCall{Name: "calculator", Arguments: `{"expression":"(2+3)*7"}`}},
		OnlyOffered: true, ToolCallOnce: true, Reply: "It is 35."}
	dir := initNode(t)
	n := startNode(t, dir, "--backend", modelServer(t, m), "--model", "tiny")
	key := n.addPrincipal(t, "default", "dr", "OFFICIAL-SENSITIVE")
	chat, err := n.client(key).Chat.Completions.New(context.Background(), userAsk("pharmacology", "dose per day over a week?"))
	if err != nil {
		t.Fatal(err)
	}
	if chat.Choices[0].Message.Content != "It is 35." || chat.SystemFingerprint == "" {
		t.Fatalf("%+v", chat)
	}
	got := m.Received()
	if len(got) != 2 || !strings.Contains(string(got[1]), `"content":"35"`) {
		t.Fatalf("the calculator's result did not reach the model: %s", got[len(got)-1])
	}
	n.stop(t)
	calls := recordsWith(ledgerRecords(t, dir), oar.ActionToolCall)
	if len(calls) != 1 || calls[0].Decision.Effect != "allow" {
		t.Fatalf("%+v", calls)
	}
}

// Application function calling, as agent frameworks do it: the node offers the
// caller's function, returns the model's call, and takes the result back.
func TestModelServerClientFunctionCalling(t *testing.T) {
	t.Parallel()
	m := &mock.Server{ToolCall: &backend.ToolCall{ID: "call_w1", Function: backend.FunctionCall{Name: "get_weather", Arguments: `{"city":"Leeds"}`}},
		OnlyOffered: true, ToolCallOnce: true, Reply: "Rain in Leeds."}
	dir := initNode(t)
	writeFile(t, dir, "brains/assistant.yaml", `id: assistant
kind: operational
title: Assistant
system_prompt: Help, using the caller's functions.
classification: OFFICIAL
client_tools: [get_weather]
`)
	n := startNode(t, dir, "--backend", modelServer(t, m), "--model", "tiny")
	key := n.addPrincipal(t, "default", "app", "OFFICIAL")
	c := n.client(key)
	weather := openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "get_weather",
		Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}}})
	params := openai.ChatCompletionNewParams{Model: "assistant", Tools: []openai.ChatCompletionToolUnionParam{weather},
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("weather in Leeds?")}}
	chat, err := c.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	msg := chat.Choices[0].Message
	if chat.Choices[0].FinishReason != "tool_calls" || len(msg.ToolCalls) != 1 || msg.ToolCalls[0].Function.Name != "get_weather" {
		t.Fatalf("%+v", chat.Choices[0])
	}
	params.Messages = append(params.Messages, msg.ToParam(), openai.ToolMessage(`{"rain":true}`, msg.ToolCalls[0].ID))
	chat, err = c.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if chat.Choices[0].Message.Content != "Rain in Leeds." {
		t.Fatalf("%+v", chat.Choices[0])
	}
	// A function the brain does not name is refused, naming why.
	params.Tools = append(params.Tools, openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{Name: "delete_files"}))
	_, err = c.Chat.Completions.New(context.Background(), params)
	if e := apiError(t, err, 403); !strings.Contains(e.Message, "brain-client-tools") {
		t.Fatal(e.Message)
	}
	// The same function offered to a brain that names none is refused too.
	_, err = c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "education",
		Tools: []openai.ChatCompletionToolUnionParam{weather}, Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")}})
	apiError(t, err, 403)
	n.stop(t)
	recs := ledgerRecords(t, dir)
	var results, calls int
	for _, r := range recordsWith(recs, oar.ActionBrainInvoke) {
		if r.Decision.Effect == "allow" && strings.Contains(string(r.Detail), "client_tool_results") {
			results++
		}
	}
	for _, r := range recordsWith(recs, oar.ActionBrainComplete) {
		if strings.Contains(string(r.Detail), "client_tool_calls") {
			calls++
		}
	}
	if results != 1 || calls != 1 {
		t.Fatalf("recorded %d tool results and %d tool calls, want 1 and 1", results, calls)
	}
}

// Sampling and format members reach the model server when the brain allows them; an
// unknown member is refused rather than dropped.
func TestModelServerRequestMembers(t *testing.T) {
	t.Parallel()
	m := &mock.Server{Reply: "alpha beta STOP gamma"}
	n := startNode(t, initNode(t), "--backend", modelServer(t, m), "--model", "tiny")
	key := n.addPrincipal(t, "default", "app", "OFFICIAL")
	c := n.client(key)
	p := userAsk("education", "x")
	p.Stop = openai.ChatCompletionNewParamsStopUnion{OfString: openai.String(" STOP")}
	p.Seed = openai.Int(42)
	p.TopP = openai.Float(0.5)
	chat, err := c.Chat.Completions.New(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if chat.Choices[0].Message.Content != "alpha beta" {
		t.Fatalf("stop not honoured: %q", chat.Choices[0].Message.Content)
	}
	var sent map[string]any
	json.Unmarshal(m.Received()[0], &sent)
	if sent["seed"] != float64(42) || sent["top_p"] != 0.5 {
		t.Fatalf("members not forwarded: %v", sent)
	}
	// JSON mode.
	p = userAsk("education", "x")
	p.ResponseFormat = openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONObject: &shared.ResponseFormatJSONObjectParam{}}
	if chat, err = c.Chat.Completions.New(context.Background(), p); err != nil || !json.Valid([]byte(chat.Choices[0].Message.Content)) {
		t.Fatalf("JSON mode: %v %+v", err, chat)
	}
	// Refused: an unknown member, n > 1, options the brain does not allow.
	for body, code := range map[string]string{
		`{"model":"education","messages":[{"role":"user","content":"x"}],"top_k":5}`:               "unknown_parameter",
		`{"model":"education","messages":[{"role":"user","content":"x"}],"n":3}`:                   "unsupported_parameter",
		`{"model":"education","messages":[{"role":"user","content":"x"}],"options":{"num_ctx":1}}`: "parameter_not_allowed",
	} {
		resp, out := n.post(t, key, "/v1/chat/completions", body)
		if resp.StatusCode != 400 || !strings.Contains(out, code) {
			t.Fatalf("%s: %d %s", body, resp.StatusCode, out)
		}
	}
}

// A model without tools still answers a domain brain (and auto), from memory put in
// its prompt.
func TestModelServerWithoutTools(t *testing.T) {
	t.Parallel()
	m := &mock.Server{NoTools: true, Reply: "Review metformin."}
	dir := initNode(t)
	ok(t, dir, "memory", "add", "--tenant", "default", "--subject", "formulary", "--classification", "OFFICIAL", "Metformin: review when eGFR falls below 45.")
	n := startNode(t, dir, "--backend", modelServer(t, m), "--model", "tinyllama")
	key := n.addPrincipal(t, "default", "dr", "OFFICIAL-SENSITIVE")
	chat, err := n.client(key).Chat.Completions.New(context.Background(),
		userAsk("auto", "What are the side effects of metformin for a patient with kidney disease?"))
	if err != nil {
		t.Fatal(err)
	}
	if chat.Model != "pharmacology" || chat.Choices[0].Message.Content != "Review metformin." {
		t.Fatalf("%s: %q", chat.Model, chat.Choices[0].Message.Content)
	}
	last := m.Received()[len(m.Received())-1]
	if strings.Contains(string(last), `"tools"`) || !strings.Contains(string(last), "eGFR falls below 45") {
		t.Fatalf("the retry: %s", last)
	}
}

// Streams that break off, and callers that go away, are recorded as they happened.
func TestModelServerBrokenStreams(t *testing.T) {
	t.Parallel()
	m := &mock.Server{Reply: "one two three four five six", FailAfter: 3}
	dir := initNode(t)
	n := startNode(t, dir, "--backend", modelServer(t, m), "--model", "tiny")
	key := n.addPrincipal(t, "default", "app", "OFFICIAL")
	stream := n.client(key).Chat.Completions.NewStreaming(context.Background(), userAsk("education", "x"))
	var got strings.Builder
	for stream.Next() {
		if ch := stream.Current(); len(ch.Choices) > 0 {
			got.WriteString(ch.Choices[0].Delta.Content)
		}
	}
	if stream.Err() == nil || got.String() != "one two three" {
		t.Fatalf("received %q, err %v", got.String(), stream.Err())
	}
	slow := &mock.Server{Reply: "late", Latency: 3 * time.Second}
	n2dir := initNode(t)
	n2 := startNode(t, n2dir, "--backend", modelServer(t, slow), "--model", "tiny")
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := n2.client(n2.addPrincipal(t, "default", "app", "OFFICIAL")).Chat.Completions.New(ctx, userAsk("education", "x"))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v", err)
	}
	time.Sleep(4 * time.Second)
	n.stop(t)
	n2.stop(t)
	complete := recordsWith(ledgerRecords(t, dir), oar.ActionBrainComplete)
	c := complete[len(complete)-1]
	if !strings.Contains(string(c.Detail), `"error":"backend_closed"`) || len(c.Outputs) != 1 || c.Outputs[0].Name != "streamed" || c.Outputs[0].Size != int64(len("one two three")) {
		t.Fatalf("broken stream recorded as %+v %s", c.Outputs, c.Detail)
	}
	complete = recordsWith(ledgerRecords(t, n2dir), oar.ActionBrainComplete)
	if d := string(complete[len(complete)-1].Detail); !strings.Contains(d, `"error":"client_closed"`) {
		t.Fatalf("an abandoned request recorded as %s", d)
	}
}

// Embeddings from a built-in brain on a model server: the node's embeddings model, the
// server's usage.
func TestModelServerEmbeddingsAndErrors(t *testing.T) {
	t.Parallel()
	m := &mock.Server{Models: []string{"tiny", "embedder"}}
	dir := initNode(t)
	n := startNode(t, dir, "--backend", modelServer(t, m), "--model", "tiny", "--embedding-model", "embedder")
	key := n.addPrincipal(t, "default", "app", "OFFICIAL-SENSITIVE")
	c := n.client(key)
	emb, err := c.Embeddings.New(context.Background(), openai.EmbeddingNewParams{Model: "legal-contracts",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"one two three", "four"}}})
	if err != nil {
		t.Fatal(err)
	}
	if emb.Model != "embedder" || len(emb.Data) != 2 || emb.Usage.PromptTokens != 6 {
		t.Fatalf("model %s, %d vectors, usage %+v (the server counted 6)", emb.Model, len(emb.Data), emb.Usage)
	}
	models, err := c.Models.List(context.Background())
	if err != nil || len(models.Data) == 0 || models.Data[0].Created == 0 {
		t.Fatalf("%v %+v", err, models)
	}
	// A brain naming a model the server does not have: 502 that says so.
	writeFile(t, dir, "brains/missing.yaml", "id: missing\nkind: operational\ntitle: Missing\nsystem_prompt: x\nclassification: OFFICIAL\nmodel: llama-that-is-not-pulled\n")
	n.stop(t)
	n = startNode(t, dir, "--backend", modelServer(t, m), "--model", "tiny")
	_, err = n.client(key).Chat.Completions.New(context.Background(), userAsk("missing", "x"))
	if e := apiError(t, err, 502); e.Code != "backend_model_not_found" || !strings.Contains(e.Message, "llama-that-is-not-pulled") {
		t.Fatalf("%s: %s", e.Code, e.Message)
	}
}

// Images reach a brain whose model takes them; other brains refuse them, naming the
// part.
func TestModelServerImages(t *testing.T) {
	t.Parallel()
	m := &mock.Server{Reply: "A chest X-ray."}
	dir := initNode(t)
	writeFile(t, dir, "brains/vision.yaml", "id: vision\nkind: operational\ntitle: Vision\nsystem_prompt: Describe.\nclassification: OFFICIAL\nimages: true\n")
	n := startNode(t, dir, "--backend", modelServer(t, m), "--model", "llava")
	key := n.addPrincipal(t, "default", "app", "OFFICIAL")
	img := openai.UserMessage([]openai.ChatCompletionContentPartUnionParam{openai.TextContentPart("what is this?"),
		openai.ImageContentPart(openai.ChatCompletionContentPartImageImageURLParam{URL: "data:image/png;base64,iVBORw0KGgo="})})
	chat, err := n.client(key).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "vision", Messages: []openai.ChatCompletionMessageParamUnion{img}})
	if err != nil || chat.Choices[0].Message.Content != "A chest X-ray." {
		t.Fatalf("%v %+v", err, chat)
	}
	if !strings.Contains(string(m.Received()[0]), "data:image/png;base64,iVBORw0KGgo=") {
		t.Fatal("the image did not reach the model")
	}
	_, err = n.client(key).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "education", Messages: []openai.ChatCompletionMessageParamUnion{img}})
	if e := apiError(t, err, 400); e.Code != "unsupported_content" || !strings.Contains(e.Message, "content[1]") {
		t.Fatalf("%s: %s", e.Code, e.Message)
	}
	_ = option.WithHeader
}
