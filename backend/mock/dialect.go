package mock

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// dialect is how one kind of server shapes its answers. backend/testdata/golden
// holds the real servers' answers these are modelled on, and its READMEs the source
// code each member comes from.
type dialect struct {
	jsonType   string // Content-Type of a JSON body
	streamType string // Content-Type of a stream

	chatID func(seq int64) string
	callID func(seq int64, i int) string

	completion func(a *answer) any
	// stream lists the events of a streamed answer, [DONE] included.
	stream func(a *answer) []event
	// streamFailure is what the server sends when it fails mid-answer with
	// a.streamError, after which the body ends.
	streamFailure func(a *answer) []string
	embeddingList func(seq int64, model string, vectors [][]float32, tokens int) any

	// errorBody is the server's error body for status and message.
	errorBody func(status int, msg string) any
	// unknownModel and noTools write the server's answer to a model it does not
	// serve and to tools offered to a model without tool support.
	unknownModel func(w http.ResponseWriter, model string)
	noTools      func(w http.ResponseWriter, model string)
}

// event is one server-sent event's data.
type event struct {
	data    string
	content bool // a chunk of the answer's text, counted by FailAfter
}

func (d *dialect) fail(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, d.jsonType, d.errorBody(status, msg))
}

// dialectNamed returns the dialect of Server.Dialect.
func dialectNamed(name string) (*dialect, bool) {
	switch name {
	case "":
		return plainDialect(), true
	case "ollama":
		return ollamaDialect(), true
	case "llamacpp":
		return llamacppDialect(), true
	case "vllm":
		return vllmDialect(), true
	}
	return nil, false
}

// object is a JSON object whose members keep the order they are given in, as the
// real servers' do.
type object []member

type member struct {
	key   string
	value any
}

func (o object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(m.key)
		v, err := json.Marshal(m.value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // only the mock's own values are marshalled
	}
	return string(b)
}

// seqHex is n as 2*width hex digits, for ids of a fixed width.
func seqHex(n int64, width int) string {
	return fmt.Sprintf("%0*x", 2*width, n)
}

// pieces is the streamed text of an answer: its words, each with the space before it.
func (a *answer) pieces() []string { return words(a.reply) }

// The plain dialect: a generic OpenAI-compatible server, the mock's default.

func plainDialect() *dialect {
	return &dialect{
		jsonType:   "application/json",
		streamType: "text/event-stream",
		chatID:     func(seq int64) string { return fmt.Sprintf("chatcmpl-mock-%d", seq) },
		callID: func(seq int64, i int) string {
			return fmt.Sprintf("call_mock_%d", i+1)
		},
		completion: func(a *answer) any {
			out := completion{ID: a.id, Object: "chat.completion", Created: a.created, Model: a.model}
			m := &message{Role: "assistant"}
			if len(a.calls) > 0 {
				for _, c := range a.calls {
					tc := toolCall{ID: c.id, Type: "function"}
					tc.Function.Name, tc.Function.Arguments = c.name, c.arguments
					m.ToolCalls = append(m.ToolCalls, tc)
				}
			} else {
				reply := a.reply
				m.Content = &reply
			}
			finish := a.finish
			out.Choices = []choice{{Message: m, FinishReason: &finish}}
			u := a.usage
			out.Usage = &u
			return &out
		},
		stream: func(a *answer) []event {
			base := completion{ID: a.id, Object: "chat.completion.chunk", Created: a.created, Model: a.model}
			delta := func(m *message, finish *string) event {
				c := base
				c.Choices = []choice{{Delta: m, FinishReason: finish}}
				return event{data: jsonText(&c)}
			}
			empty := ""
			evs := []event{delta(&message{Role: "assistant", Content: &empty}, nil)}
			for i, c := range a.calls {
				head := toolCall{Index: &i, ID: c.id, Type: "function"}
				head.Function.Name = c.name
				evs = append(evs, delta(&message{ToolCalls: []toolCall{head}}, nil))
				for _, frag := range split3(c.arguments) {
					f := toolCall{Index: &i}
					f.Function.Arguments = frag
					evs = append(evs, delta(&message{ToolCalls: []toolCall{f}}, nil))
				}
			}
			for _, word := range a.pieces() {
				ev := delta(&message{Content: &word}, nil)
				ev.content = true
				evs = append(evs, ev)
			}
			finish := a.finish
			evs = append(evs, delta(&message{}, &finish))
			if a.includeUsage {
				c := base
				c.Choices = []choice{}
				u := a.usage
				c.Usage = &u
				evs = append(evs, event{data: jsonText(&c)})
			}
			return append(evs, event{data: "[DONE]"})
		},
		streamFailure: func(a *answer) []string {
			return []string{jsonText(object{{"error", object{{"message", a.streamError}, {"type", "server_error"}, {"code", 500}}}})}
		},
		embeddingList: func(_ int64, model string, vectors [][]float32, tokens int) any {
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
			}{Object: "list", Model: model, Usage: usage{PromptTokens: tokens, TotalTokens: tokens}}
			for i, v := range vectors {
				out.Data = append(out.Data, item{Object: "embedding", Index: i, Embedding: v})
			}
			return &out
		},
		errorBody: openAIError,
		unknownModel: func(w http.ResponseWriter, model string) {
			writeError(w, http.StatusNotFound, fmt.Sprintf("model %q not found, try pulling it first", model))
		},
		noTools: func(w http.ResponseWriter, model string) {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("registry.ollama.ai/library/%s:latest does not support tools", model))
		},
	}
}

// openAIError is the plain dialect's error body.
func openAIError(status int, msg string) any {
	return map[string]any{"error": map[string]any{
		"message": msg,
		"type":    "invalid_request_error",
		"code":    status,
	}}
}

// Ollama (golden/ollama: openai/openai.go and middleware/openai.go).

func ollamaDialect() *dialect {
	d := &dialect{
		jsonType:   "application/json",
		streamType: "text/event-stream",
		chatID:     func(seq int64) string { return fmt.Sprintf("chatcmpl-%d", seq%999) },
		callID:     func(seq int64, i int) string { return "call_" + seqHex(seq*16+int64(i), 4) },
	}
	calls := func(a *answer) []any {
		var out []any
		for i, c := range a.calls {
			out = append(out, object{{"id", c.id}, {"index", i}, {"type", "function"},
				{"function", object{{"name", c.name}, {"arguments", c.arguments}}}})
		}
		return out
	}
	usageOf := func(a *answer) object {
		return object{{"prompt_tokens", a.usage.PromptTokens}, {"completion_tokens", a.usage.CompletionTokens}, {"total_tokens", a.usage.TotalTokens}}
	}
	d.completion = func(a *answer) any {
		m := object{{"role", "assistant"}, {"content", a.reply}}
		if len(a.calls) > 0 {
			m = append(m, member{"tool_calls", calls(a)})
		}
		return object{{"id", a.id}, {"object", "chat.completion"}, {"created", a.created}, {"model", a.model},
			{"system_fingerprint", "fp_ollama"},
			{"choices", []any{object{{"index", 0}, {"message", m}, {"finish_reason", a.finish}}}},
			{"usage", usageOf(a)}}
	}
	chunk := func(a *answer, model string, choices []any) object {
		return object{{"id", a.id}, {"object", "chat.completion.chunk"}, {"created", a.created}, {"model", model},
			{"system_fingerprint", "fp_ollama"}, {"choices", choices}}
	}
	delta := func(a *answer, model string, delta object, finish any) string {
		return jsonText(chunk(a, model, []any{object{{"index", 0}, {"delta", delta}, {"finish_reason", finish}}}))
	}
	// role is on the first chunk only; each tool call arrives whole, in its own chunk
	d.stream = func(a *answer) []event {
		var evs []event
		first := func(m object) object {
			if len(evs) == 0 {
				return append(object{{"role", "assistant"}}, m...)
			}
			return m
		}
		for _, call := range calls(a) {
			evs = append(evs, event{data: delta(a, a.model, first(object{{"content", ""}, {"tool_calls", []any{call}}}), nil)})
		}
		for _, word := range a.pieces() {
			evs = append(evs, event{data: delta(a, a.model, first(object{{"content", word}}), nil), content: true})
		}
		evs = append(evs, event{data: delta(a, a.model, object{}, a.finish)})
		if a.includeUsage {
			evs = append(evs, event{data: jsonText(append(chunk(a, a.model, []any{}), member{"usage", usageOf(a)}))})
		}
		return append(evs, event{data: "[DONE]"})
	}
	// The runner's {"error":…} line is read by the OpenAI layer as an empty
	// response: an empty chunk with no model, and the body ends.
	d.streamFailure = func(a *answer) []string {
		return []string{delta(a, "", object{{"content", ""}}, nil)}
	}
	d.embeddingList = func(_ int64, model string, vectors [][]float32, tokens int) any {
		var data []any
		for i, v := range vectors {
			data = append(data, object{{"object", "embedding"}, {"embedding", v}, {"index", i}})
		}
		return object{{"object", "list"}, {"data", data}, {"model", model},
			{"usage", object{{"prompt_tokens", tokens}, {"total_tokens", tokens}}}}
	}
	d.errorBody = func(status int, msg string) any {
		typ := "api_error"
		switch status {
		case http.StatusBadRequest:
			typ = "invalid_request_error"
		case http.StatusNotFound:
			typ = "not_found_error"
		}
		return object{{"error", object{{"message", msg}, {"type", typ}, {"param", nil}, {"code", nil}}}}
	}
	d.unknownModel = func(w http.ResponseWriter, model string) {
		d.fail(w, http.StatusNotFound, fmt.Sprintf("model '%s' not found", model))
	}
	d.noTools = func(w http.ResponseWriter, model string) {
		name := model
		if !strings.Contains(name, ":") {
			name += ":latest"
		}
		if !strings.Contains(name, "/") {
			name = "library/" + name
		}
		d.fail(w, http.StatusBadRequest, "registry.ollama.ai/"+name+" does not support tools")
	}
	return d
}

// llama.cpp's llama-server (golden/llamacpp: server-task.cpp, common/chat.cpp,
// server-common.cpp).

func llamacppDialect() *dialect {
	const fingerprint = "b6522-mock"
	d := &dialect{
		jsonType:   "application/json; charset=utf-8",
		streamType: "text/event-stream",
		chatID:     func(seq int64) string { return "chatcmpl-" + seqHex(seq, 16) },
		callID:     func(seq int64, i int) string { return seqHex(seq*16+int64(i), 16) },
	}
	timings := func(a *answer) object {
		return object{{"cache_n", 0}, {"prompt_n", a.usage.PromptTokens}, {"prompt_ms", 1.25}, {"prompt_per_token_ms", 0.25}, {"prompt_per_second", 4000.0},
			{"predicted_n", a.usage.CompletionTokens}, {"predicted_ms", 2.5}, {"predicted_per_token_ms", 0.5}, {"predicted_per_second", 2000.0}}
	}
	usageOf := func(a *answer) object {
		return object{{"completion_tokens", a.usage.CompletionTokens}, {"prompt_tokens", a.usage.PromptTokens}, {"total_tokens", a.usage.TotalTokens}}
	}
	d.completion = func(a *answer) any {
		m := object{{"role", "assistant"}}
		if len(a.calls) > 0 {
			var calls []any
			for _, c := range a.calls {
				calls = append(calls, object{{"type", "function"}, {"function", object{{"name", c.name}, {"arguments", c.arguments}}}, {"id", c.id}})
			}
			m = append(m, member{"content", nil}, member{"tool_calls", calls})
		} else {
			m = append(m, member{"content", a.reply})
		}
		return object{{"choices", []any{object{{"finish_reason", a.finish}, {"index", 0}, {"message", m}}}},
			{"created", a.created}, {"model", a.model}, {"system_fingerprint", fingerprint}, {"object", "chat.completion"},
			{"usage", usageOf(a)}, {"id", a.id}, {"timings", timings(a)}}
	}
	chunk := func(a *answer, choices []any) object {
		return object{{"choices", choices}, {"created", a.created}, {"id", a.id}, {"model", a.model},
			{"system_fingerprint", fingerprint}, {"object", "chat.completion.chunk"}}
	}
	delta := func(a *answer, delta object, finish any) object {
		return chunk(a, []any{object{{"finish_reason", finish}, {"index", 0}, {"delta", delta}}})
	}
	d.stream = func(a *answer) []event {
		evs := []event{{data: jsonText(delta(a, object{{"role", "assistant"}, {"content", nil}}, nil))}}
		for i, c := range a.calls {
			head := object{{"index", i}, {"id", c.id}, {"type", "function"}, {"function", object{{"name", c.name}, {"arguments", ""}}}}
			evs = append(evs, event{data: jsonText(delta(a, object{{"tool_calls", []any{head}}}, nil))})
			for _, frag := range split3(c.arguments) {
				if frag == "" {
					continue
				}
				f := object{{"index", i}, {"function", object{{"arguments", frag}}}}
				evs = append(evs, event{data: jsonText(delta(a, object{{"tool_calls", []any{f}}}, nil))})
			}
		}
		for _, word := range a.pieces() {
			evs = append(evs, event{data: jsonText(delta(a, object{{"content", word}}, nil)), content: true})
		}
		// timings ride on the last chunk: the usage chunk if there is one
		last := delta(a, object{}, a.finish)
		if a.includeUsage {
			evs = append(evs, event{data: jsonText(last)})
			last = append(chunk(a, []any{}), member{"usage", usageOf(a)})
		}
		evs = append(evs, event{data: jsonText(append(last, member{"timings", timings(a)}))})
		return append(evs, event{data: "[DONE]"})
	}
	d.streamFailure = func(a *answer) []string {
		return []string{jsonText(d.errorBody(http.StatusInternalServerError, a.streamError))}
	}
	d.embeddingList = func(_ int64, model string, vectors [][]float32, tokens int) any {
		var data []any
		for i, v := range vectors {
			data = append(data, object{{"embedding", v}, {"index", i}, {"object", "embedding"}})
		}
		return object{{"model", model}, {"object", "list"},
			{"usage", object{{"prompt_tokens", tokens}, {"total_tokens", tokens}}}, {"data", data}}
	}
	d.errorBody = func(status int, msg string) any {
		typ := "server_error"
		switch status {
		case http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge:
			typ = "invalid_request_error"
		case http.StatusNotFound:
			typ = "not_found_error"
		}
		return object{{"error", object{{"code", status}, {"message", msg}, {"type", typ}}}}
	}
	// a router serving several models refuses one it does not have; the name is not repeated
	d.unknownModel = func(w http.ResponseWriter, _ string) {
		d.fail(w, http.StatusBadRequest, "model not found")
	}
	// without --jinja the server throws a runtime_error, answered as a 500
	d.noTools = func(w http.ResponseWriter, _ string) {
		d.fail(w, http.StatusInternalServerError, "tools param requires --jinja flag")
	}
	return d
}

// vLLM's OpenAI server (golden/vllm: protocol.py, serving_chat.py, engine/serving.py).

func vllmDialect() *dialect {
	d := &dialect{
		jsonType:   "application/json",
		streamType: "text/event-stream; charset=utf-8",
		chatID:     func(seq int64) string { return "chatcmpl-" + seqHex(seq, 16) },
		callID:     func(seq int64, i int) string { return "chatcmpl-tool-" + seqHex(seq*16+int64(i), 16) },
	}
	d.completion = func(a *answer) any {
		calls := []any{}
		var content any = a.reply
		if len(a.calls) > 0 {
			content = nil // the tool parser leaves no text beside the calls
			for _, c := range a.calls {
				calls = append(calls, object{{"id", c.id}, {"type", "function"}, {"function", object{{"name", c.name}, {"arguments", c.arguments}}}})
			}
		}
		m := object{{"role", "assistant"}, {"content", content}, {"refusal", nil}, {"annotations", nil}, {"audio", nil},
			{"function_call", nil}, {"tool_calls", calls}, {"reasoning_content", nil}}
		return object{{"id", a.id}, {"object", "chat.completion"}, {"created", a.created}, {"model", a.model},
			{"choices", []any{object{{"index", 0}, {"message", m}, {"logprobs", nil}, {"finish_reason", a.finish}, {"stop_reason", nil}}}},
			{"service_tier", nil}, {"system_fingerprint", nil},
			{"usage", object{{"prompt_tokens", a.usage.PromptTokens}, {"total_tokens", a.usage.TotalTokens}, {"completion_tokens", a.usage.CompletionTokens}, {"prompt_tokens_details", nil}}},
			{"prompt_logprobs", nil}, {"kv_transfer_params", nil}}
	}
	chunk := func(a *answer, choices []any) object {
		return object{{"id", a.id}, {"object", "chat.completion.chunk"}, {"created", a.created}, {"model", a.model}, {"choices", choices}}
	}
	delta := func(a *answer, delta object) string {
		return jsonText(chunk(a, []any{object{{"index", 0}, {"delta", delta}, {"logprobs", nil}, {"finish_reason", nil}}}))
	}
	d.stream = func(a *answer) []event {
		evs := []event{{data: delta(a, object{{"role", "assistant"}, {"content", ""}})}}
		for i, c := range a.calls {
			head := object{{"id", c.id}, {"type", "function"}, {"index", i}, {"function", object{{"name", c.name}}}}
			evs = append(evs, event{data: delta(a, object{{"tool_calls", []any{head}}})})
			for _, frag := range split3(c.arguments) {
				if frag == "" {
					continue
				}
				f := object{{"index", i}, {"function", object{{"arguments", frag}}}}
				evs = append(evs, event{data: delta(a, object{{"tool_calls", []any{f}}})})
			}
		}
		for _, word := range a.pieces() {
			evs = append(evs, event{data: delta(a, object{{"content", word}}), content: true})
		}
		evs = append(evs, event{data: jsonText(chunk(a, []any{object{{"index", 0}, {"delta", object{{"content", ""}}},
			{"logprobs", nil}, {"finish_reason", a.finish}, {"stop_reason", nil}}}))})
		if a.includeUsage {
			u := object{{"prompt_tokens", a.usage.PromptTokens}, {"total_tokens", a.usage.TotalTokens}, {"completion_tokens", a.usage.CompletionTokens}}
			evs = append(evs, event{data: jsonText(append(chunk(a, []any{}), member{"usage", u}))})
		}
		return append(evs, event{data: "[DONE]"})
	}
	// create_streaming_error_response: json.dumps, so Python's separators; then [DONE]
	d.streamFailure = func(a *answer) []string {
		msg, _ := json.Marshal(a.streamError)
		return []string{`{"error": {"message": ` + string(msg) + `, "type": "InternalServerError", "param": null, "code": 500}}`, "[DONE]"}
	}
	d.embeddingList = func(seq int64, model string, vectors [][]float32, tokens int) any {
		var data []any
		for i, v := range vectors {
			data = append(data, object{{"index", i}, {"object", "embedding"}, {"embedding", v}})
		}
		return object{{"id", "embd-" + seqHex(seq, 16)}, {"object", "list"}, {"created", time.Now().Unix()}, {"model", model}, {"data", data},
			{"usage", object{{"prompt_tokens", tokens}, {"total_tokens", tokens}, {"completion_tokens", 0}, {"prompt_tokens_details", nil}}}}
	}
	vllmError := func(status int, msg string, param any) any {
		typ := "BadRequestError"
		switch status {
		case http.StatusNotFound:
			typ = "NotFoundError"
		case http.StatusMethodNotAllowed:
			typ = "MethodNotAllowed"
		case http.StatusInternalServerError:
			typ = "InternalServerError"
		}
		return object{{"error", object{{"message", msg}, {"type", typ}, {"param", param}, {"code", status}}}}
	}
	d.errorBody = func(status int, msg string) any { return vllmError(status, msg, nil) }
	d.unknownModel = func(w http.ResponseWriter, model string) {
		writeJSON(w, http.StatusNotFound, d.jsonType, vllmError(http.StatusNotFound, "The model `"+model+"` does not exist.", "model"))
	}
	// offering tools makes tool_choice "auto", which needs the server's tool parser
	d.noTools = func(w http.ResponseWriter, _ string) {
		d.fail(w, http.StatusBadRequest, `"auto" tool choice requires --enable-auto-tool-choice and --tool-call-parser to be set`)
	}
	return d
}
