package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sios-project/sios/jcs"
)

// Bodies as the official SDKs and common clients send them. Each must be accepted: a
// strictness that refuses a real client is a bug.
var realBodies = map[string]string{
	"python minimal": `{"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"hi"}],"model":"b"}`,
	"stream with usage and obfuscation": `{"messages":[{"role":"user","content":"a b"}],"model":"b","stream":true,` +
		`"stream_options":{"include_usage":true,"include_obfuscation":false}}`,
	// An OpenAI answer's message appended to the history as the SDKs give it back.
	"assistant message from an OpenAI answer": `{"model":"b","messages":[{"role":"user","content":"hi"},` +
		`{"role":"assistant","content":"Hello!","refusal":null,"annotations":[],"audio":null,"function_call":null,"tool_calls":null},` +
		`{"role":"user","content":"again"}]}`,
	"assistant refusal sent back": `{"model":"b","messages":[{"role":"user","content":"x"},` +
		`{"role":"assistant","content":null,"refusal":"I can't help with that."},{"role":"user","content":"why"}]}`,
	// openai-node's runTools: assistant messages carry parsed, tool calls
	// parsed_arguments and index (from assembling a stream).
	"openai-node runTools history": `{"model":"b","messages":[{"role":"user","content":"weather in Paris?"},` +
		`{"role":"assistant","content":null,"refusal":null,"parsed":null,"tool_calls":[{"id":"call_1","type":"function","index":0,` +
		`"function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}","parsed_arguments":{"city":"Paris"}}}]},` +
		`{"role":"tool","tool_call_id":"call_1","content":"18C"}],` +
		`"tools":[{"type":"function","function":{"name":"get_weather","description":"Weather now","strict":true,` +
		`"parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}}}],` +
		`"tool_choice":"auto","parallel_tool_calls":false}`,
	"image part with detail": `{"model":"b","messages":[{"role":"user","content":[{"type":"text","text":"what is this"},` +
		`{"type":"image_url","image_url":{"url":"data:image/png;base64,iVBORw0KGgo=","detail":"low"}}]}]}`,
	"every sampling member": `{"model":"b","messages":[{"role":"developer","content":"d","name":"ops"},{"role":"user","content":"u","name":"alice"}],` +
		`"temperature":0.2,"top_p":0.9,"frequency_penalty":0,"presence_penalty":0,"stop":["\n\n"],"seed":42,"max_completion_tokens":64,` +
		`"response_format":{"type":"json_schema","json_schema":{"name":"r","schema":{"type":"object"}}},"user":"u-1","n":1,"logprobs":false,` +
		`"store":false,"service_tier":"auto","modalities":["text"]}`,
}

func TestRealClientBodiesAccepted(t *testing.T) {
	for name, body := range realBodies {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseChatRequest([]byte(body)); err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}
}

// TestNodeAnswerSentBack: the node's own answer message, appended to the history as a
// client does, is taken in the next request.
func TestNodeAnswerSentBack(t *testing.T) {
	_, body := do(t, "POST", "/v1/chat/completions", "sios_good", `{"model":"b","messages":[{"role":"user","content":"one two"}]}`)
	var answer struct {
		Choices []struct {
			Message json.RawMessage `json:"message"`
		} `json:"choices"`
	}
	if err := json.Unmarshal([]byte(body), &answer); err != nil || len(answer.Choices) != 1 {
		t.Fatalf("answer %s: %v", body, err)
	}
	next := `{"model":"b","messages":[{"role":"user","content":"one two"},` + string(answer.Choices[0].Message) + `,{"role":"user","content":"three"}]}`
	resp, body := do(t, "POST", "/v1/chat/completions", "sios_good", next)
	if resp.StatusCode != 200 {
		t.Fatalf("the node's own answer sent back: %d %s", resp.StatusCode, body)
	}
}

// TestInvocationOfSentBackMessages: what the ignored members carry does not reach the
// model, and a refusal is the assistant's content.
func TestInvocationOfSentBackMessages(t *testing.T) {
	req, err := ParseChatRequest([]byte(realBodies["openai-node runTools history"]))
	if err != nil {
		t.Fatal(err)
	}
	inv := req.Invocation(nil)
	calls := inv.Messages[1].ToolCalls
	if len(calls) != 1 || calls[0].ID != "call_1" || calls[0].Function.Name != "get_weather" || calls[0].Function.Arguments != `{"city":"Paris"}` {
		t.Fatalf("tool calls %+v", calls)
	}
	if s := inv.Params.Tools[0].Function.Strict; s == nil || !*s {
		t.Fatalf("tools[0].function.strict not passed on: %+v", inv.Params.Tools[0].Function)
	}
	req, err = ParseChatRequest([]byte(realBodies["assistant refusal sent back"]))
	if err != nil {
		t.Fatal(err)
	}
	if got := req.Invocation(nil).Messages[1].Content; got != "I can't help with that." {
		t.Fatalf("refusal as content = %q", got)
	}
}

// TestStrictMembers: below the top level too, a member OpenAI does not define, one
// differently cased or one given twice is refused with a 400 naming it; before, it was
// dropped, matched anyway or the last one won.
func TestStrictMembers(t *testing.T) {
	for _, c := range []struct {
		name, body, code, param, says string
	}{
		{"misspelt message member", `{"model":"b","messages":[{"role":"user","content":"x","contnet":"y"}]}`,
			"unknown_parameter", "messages[0].contnet", "messages[0].contnet is not a member"},
		{"differently cased message member", `{"model":"b","messages":[{"Role":"system","role":"user","content":"x"}]}`,
			"unknown_parameter", "messages[0].Role", ""},
		{"repeated role", `{"model":"b","messages":[{"role":"system","content":"x","role":"user"}]}`,
			"invalid_json", "", `duplicate object member name "role"`},
		{"repeated model", `{"model":"a","messages":[{"role":"user","content":"x"}],"model":"b"}`,
			"invalid_json", "", `duplicate object member name "model"`},
		{"misspelt stream option", `{"model":"b","messages":[{"role":"user","content":"x"}],"stream_options":{"include_usge":true}}`,
			"unknown_parameter", "stream_options.include_usge", ""},
		{"misspelt tool member", `{"model":"b","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","paramters":{}}}]}`,
			"unknown_parameter", "tools[0].function.paramters", ""},
		{"misspelt tool call member", `{"model":"b","messages":[{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","args":"{}"}}]}]}`,
			"unknown_parameter", "messages[0].tool_calls[0].function.args", ""},
		{"misspelt part member", `{"model":"b","messages":[{"role":"user","content":[{"type":"text","txt":"x"}]}]}`,
			"invalid_json", "messages[0].content", `content part 0 has the member "txt"`},
		{"audio in a message", `{"model":"b","messages":[{"role":"assistant","content":"x","audio":{"id":"a1"}}]}`,
			"unsupported_parameter", "messages[0].audio", ""},
		{"annotations in a message", `{"model":"b","messages":[{"role":"assistant","content":"x","annotations":[{"type":"url_citation"}]}]}`,
			"unsupported_parameter", "messages[0].annotations", ""},
		{"role of the wrong type", `{"model":"b","messages":[{"role":1,"content":"x"}]}`,
			"invalid_json", "messages[0].role", "messages[0].role must be a string"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := ParseChatRequest([]byte(c.body))
			if err == nil {
				t.Fatal("accepted")
			}
			if err.Status != 400 || err.Code != c.code || err.Param != c.param || !strings.Contains(err.Message, c.says) {
				t.Fatalf("refused with %d %s param %q: %s; want %s param %q saying %q", err.Status, err.Code, err.Param, err.Message, c.code, c.param, c.says)
			}
		})
	}
}

// TestOtherBodiesStrict: the API's other JSON bodies (memory, embeddings, roles,
// consents) refuse an unknown or repeated member, naming it.
func TestOtherBodiesStrict(t *testing.T) {
	for _, c := range []struct{ name, path, body, code, says string }{
		{"embeddings misspelt", "/v1/embeddings", `{"model":"b","inputs":["x"]}`, "unknown_parameter", "inputs"},
		{"embeddings repeated", "/v1/embeddings", `{"model":"b","input":"x","input":"y"}`, "invalid_json", `duplicate object member name "input"`},
		{"embeddings dimensions", "/v1/embeddings", `{"model":"b","input":"x","dimensions":8}`, "unsupported_parameter", "dimensions"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := do(t, "POST", c.path, "sios_good", c.body)
			var e errorBody
			if err := json.Unmarshal([]byte(body), &e); err != nil || resp.StatusCode != 400 || e.Error.Code != c.code || !strings.Contains(e.Error.Message, c.says) {
				t.Fatalf("%d %s; want 400 %s saying %q", resp.StatusCode, body, c.code, c.says)
			}
		})
	}
}

// TestEmbeddingsAsTheSDKsAsk: the official Python SDK asks for base64 unless told
// otherwise; the vector comes back as OpenAI encodes it.
func TestEmbeddingsAsTheSDKsAsk(t *testing.T) {
	resp, body := do(t, "POST", "/v1/embeddings", "sios_good", `{"input":["x"],"model":"b","encoding_format":"base64"}`)
	var out struct {
		Data []struct {
			Embedding string `json:"embedding"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(body), &out); resp.StatusCode != 200 || err != nil || len(out.Data) != 1 {
		t.Fatalf("%d %s: %v", resp.StatusCode, body, err)
	}
	b, err := base64.StdEncoding.DecodeString(out.Data[0].Embedding)
	if err != nil || !bytes.Equal(b, []byte{0, 0, 0x80, 0x3f}) { // float32 1, little-endian
		t.Fatalf("embedding %q = % x, %v; want the float32 1", out.Data[0].Embedding, b, err)
	}
	resp, body = do(t, "POST", "/v1/embeddings", "sios_good", `{"input":"x","model":"b","encoding_format":"float","user":"u"}`)
	if resp.StatusCode != 200 || !strings.Contains(body, `"embedding":[1]`) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

// TestDocsListEveryMessageMember: docs/api.md's table of message members is the code's.
func TestDocsListEveryMessageMember(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(doc, []byte("### Message members"))
	if i < 0 {
		t.Fatal("docs/api.md has no message members section")
	}
	var documented, code []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| ").FindAllSubmatch(doc[i:], len(messageMembers)) {
		documented = append(documented, string(m[1]))
	}
	for _, m := range messageMembers {
		code = append(code, m.name)
	}
	if !slices.Equal(code, documented) {
		t.Fatalf("code %v\ndocs %v", code, documented)
	}
	fields := map[string]bool{}
	rt := reflect.TypeOf(ChatMessage{})
	for i := range rt.NumField() {
		fields[strings.Split(rt.Field(i).Tag.Get("json"), ",")[0]] = true
	}
	for _, m := range code {
		if !fields[m] {
			t.Errorf("messageMembers lists %s, which ChatMessage does not take", m)
		}
	}
	if len(fields) != len(code) {
		t.Errorf("ChatMessage takes %v, messageMembers lists %v", fields, code)
	}
}

// FuzzParseChatRequest: a body the strict reader accepts is one encoding/json reads the
// same way (no repeated, differently cased or unknown member could make them differ),
// and it never panics.
func FuzzParseChatRequest(f *testing.F) {
	for _, b := range realBodies {
		f.Add(b)
	}
	f.Add(`{"model":"b","messages":[{"role":"user","content":"x","role":"system"}]}`)
	f.Add(`{"model":"b","messages":[{"Role":"user","content":"x"}]}`)
	f.Add(`{"model":"b","messages":[{"role":"user","content":[{"type":"text","text":"a","Text":"b"}]}]}`)
	f.Add(`{"model":"b","messages":[{"role":"user","content":"x"}],"stop":"s","seed":9007199254740993}`)
	f.Fuzz(func(t *testing.T, body string) {
		req, perr := ParseChatRequest([]byte(body))
		if perr != nil {
			if perr.Status != 400 || perr.Code == "" || perr.Message == "" {
				t.Fatalf("refusal %+v is not a named 400", perr)
			}
			return
		}
		var loose ChatRequest
		if err := json.Unmarshal([]byte(body), &loose); err != nil {
			t.Fatalf("strict reader took what encoding/json refuses: %v", err)
		}
		if !reflect.DeepEqual(*req, loose) {
			t.Fatalf("strict and encoding/json read differently:\n%+v\n%+v", *req, loose)
		}
	})
}

// Members are read strictly, values as OpenAI takes them: a seed beyond 2^53 and a
// noncharacter in a message are the client's to send.
func TestValuesAsOpenAITakesThem(t *testing.T) {
	req, err := ParseChatRequest([]byte(`{"model":"b","seed":9223372036854775807,"messages":[{"role":"user","content":"a\uffff b \ufdd0"}]}`))
	if err != nil {
		t.Fatalf("refused: %v", err)
	}
	if req.Seed == nil || *req.Seed != 9223372036854775807 {
		t.Fatalf("seed read as %v", req.Seed)
	}
	if got := req.Messages[0].Content.Text; got != "a\uffff b \ufdd0" {
		t.Fatalf("content read as %q", got)
	}
}

// Every member the strict decode of a chat request takes is one chatMembers lists: the
// decode that succeeds at once skips the top-level check (decodeChatRequest).
func TestChatRequestFieldsAreChatMembers(t *testing.T) {
	rt := reflect.TypeFor[ChatRequest]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		if name == "-" || !rt.Field(i).IsExported() {
			continue
		}
		if name == "" {
			name = rt.Field(i).Name
		}
		if !chatMemberNames[name] {
			t.Errorf("ChatRequest.%s (%q) is not in chatMembers", rt.Field(i).Name, name)
		}
	}
}

// decodeChatRequestTwoPass is decodeChatRequest as it was before the body was first
// decoded at once: the top level checked by encoding/json, then the strict decode.
func decodeChatRequestTwoPass(body []byte) (*ChatRequest, *Error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		return nil, &Error{Status: 400, Type: "invalid_request_error", Code: "invalid_json", Message: "the request body is not a JSON object: " + jsonProblem(err)}
	}
	for _, name := range sortedKeys(members) {
		if !chatMemberNames[name] {
			return nil, &Error{Status: 400, Type: "invalid_request_error", Code: "unknown_parameter", Param: name,
				Message: name + " is not a chat completions member this node knows; docs/api.md lists every member and what the node does with it"}
		}
	}
	var req ChatRequest
	if err := jcs.DecodeMembers(body, &req); err != nil {
		var pe *partError
		if errors.As(err, &pe) {
			return nil, &Error{Status: 400, Type: "invalid_request_error", Code: "unsupported_content",
				Param: fmt.Sprintf("messages[].content[%d]", pe.index), Message: pe.Error()}
		}
		return nil, strictProblem(err, "the request body is not valid JSON for this endpoint")
	}
	return &req, nil
}

// Decoding at once gives every body the answer the two passes gave: the same request,
// or the same refusal.
func FuzzDecodeChatRequestAsTwoPasses(f *testing.F) {
	for _, b := range realBodies {
		f.Add(b)
	}
	for _, b := range []string{`[]`, `null`, `{"model":"b","x":1}`, `{"zz":1,"messages":[{"Role":"u"}]}`, `{"model":1}`,
		`{"model":"b","model":"c"}`, "{\"model\":\"\xff\"}", `{"messages":[{"role":"user","content":[{"type":"audio"}]}]}`, `{`} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body string) {
		got, gerr := decodeChatRequest([]byte(body))
		want, werr := decodeChatRequestTwoPass([]byte(body))
		if !reflect.DeepEqual(gerr, werr) {
			t.Fatalf("refusals differ:\n got %+v\nwant %+v", gerr, werr)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("requests differ:\n got %+v\nwant %+v", got, want)
		}
	})
}

// BenchmarkDecodeChatRequest: a chat request as the SDKs send it, decoded at once
// (now) and as it was, in two passes.
func BenchmarkDecodeChatRequest(b *testing.B) {
	body := []byte(`{"model":"clinical-triage","messages":[{"role":"system","content":"You are a careful assistant."},` +
		`{"role":"user","content":"Summarise the discharge letter for the GP in three sentences."}],"temperature":0.2,"max_tokens":256}`)
	for _, c := range []struct {
		name   string
		decode func([]byte) (*ChatRequest, *Error)
	}{{"at-once", decodeChatRequest}, {"two-pass", decodeChatRequestTwoPass}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := c.decode(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A string content reads as encoding/json reads the string, whatever it holds.
func TestContentStringIsEncodingJSONs(t *testing.T) {
	for _, in := range []string{`"plain"`, `""`, `"line\nbreak and \"quotes\" \\ \/ \t"`, `"\u00e9t\u00E9"`, "\"\xff\xfe raw\"",
		`"\ud800 lone"`, `"\ud83d\ude00 pair"`, `"\udc00\ud800"`, `"\u0000nul"`, "\"caf\xc3\xa9\"", "\"\xed\xa0\x80\"", `"\uFFFF\uFDD0"`} {
		var c Content
		cerr := c.UnmarshalJSON([]byte(in))
		var want string
		werr := json.Unmarshal([]byte(in), &want)
		if (cerr == nil) != (werr == nil) || c.Text != want {
			t.Errorf("%q: content %q (%v), encoding/json %q (%v)", in, c.Text, cerr, want, werr)
		}
	}
}

// FuzzContentStringIsEncodingJSONs: any quoted input reads as encoding/json reads it.
func FuzzContentStringIsEncodingJSONs(f *testing.F) {
	for _, s := range []string{"plain", `a\nb`, `\ud800`, "\xff", `\u00e9`, `\"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		in := []byte(`"` + s + `"`)
		var want string
		if json.Unmarshal(in, &want) != nil {
			return // not a JSON string: the decoder around Content refuses it first
		}
		var c Content
		if err := c.UnmarshalJSON(in); err != nil || c.Text != want {
			t.Fatalf("%q: content %q (%v), encoding/json %q", in, c.Text, err, want)
		}
	})
}
