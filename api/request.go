package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// A chat request's members, each with what the node does with it. Nothing a caller
// sends is dropped silently: a member is used, forwarded to the model server (when the
// brain allows it), capped, or refused with a 400 that names it. docs/api.md lists the
// same table; a test keeps the two equal.
var chatMembers = []struct{ name, does string }{
	{"model", "required: a brain id, or auto for the router"},
	{"messages", "required: 1 to 256 messages (MaxMessages); roles system, developer, user, assistant, tool; content a string or parts (text; image_url when the brain takes images)"},
	{"stream", "streams the answer as server-sent events"},
	{"stream_options", "include_usage adds a usage chunk at the end of a stream; include_obfuscation is taken and has no effect (no padding is sent)"},
	{"max_tokens", "capped: the lower of it and the brain's max_tokens is sent"},
	{"max_completion_tokens", "the same as max_tokens (it wins when both are sent)"},
	{"temperature", "forwarded when the brain allows it (brain file: parameters); a brain may pin it"},
	{"top_p", "forwarded when the brain allows it; a brain may pin it"},
	{"frequency_penalty", "forwarded when the brain allows it; a brain may pin it"},
	{"presence_penalty", "forwarded when the brain allows it; a brain may pin it"},
	{"stop", "forwarded when the brain allows it: a string or up to 4 strings"},
	{"seed", "forwarded when the brain allows it; a brain may pin it"},
	{"response_format", "forwarded when the brain allows it: text, json_object or json_schema"},
	{"user", "forwarded when the brain allows it; digested in the audit record"},
	{"options", "backend-specific options (Ollama's num_ctx, …), forwarded when the brain allows it, after the brain's own"},
	{"tools", "client-side functions (type, function with name, description, parameters, strict): offered to the model when the brain's client_tools allow each one (else 403); the model's calls come back as tool_calls"},
	{"tool_choice", "forwarded with client tools"},
	{"parallel_tool_calls", "forwarded with client tools"},
	{"n", "1 only: the node answers one choice"},
	{"logprobs", "false only: the node returns no log probabilities"},
	{"top_logprobs", "0 only"},
	{"logit_bias", "refused unless empty"},
	{"store", "false only: the node stores no completions for later retrieval"},
	{"metadata", "refused unless empty (it belongs with store)"},
	{"service_tier", "auto or default only"},
	{"modalities", "[\"text\"] only"},
	{"audio", "refused: no audio output"},
	{"prediction", "refused: no predicted outputs"},
	{"reasoning_effort", "refused: no reasoning settings are forwarded"},
	{"functions", "refused: use tools"},
	{"function_call", "refused: use tool_choice"},
	{"web_search_options", "refused: the node never searches the web"},
}

// chatMemberNames is the set of members a chat request may hold.
var chatMemberNames = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range chatMembers {
		m[c.name] = true
	}
	return m
}()

// ChatRequest is OpenAI's chat completion request, as the node reads it.
type ChatRequest struct {
	Model               string          `json:"model"`
	Messages            []ChatMessage   `json:"messages"`
	Stream              bool            `json:"stream"`
	StreamOptions       *StreamOptions  `json:"stream_options,omitempty"`
	MaxTokens           *int            `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int            `json:"max_completion_tokens,omitempty"`
	Temperature         *float64        `json:"temperature,omitempty"`
	TopP                *float64        `json:"top_p,omitempty"`
	FrequencyPenalty    *float64        `json:"frequency_penalty,omitempty"`
	PresencePenalty     *float64        `json:"presence_penalty,omitempty"`
	Stop                Stop            `json:"stop,omitempty"`
	Seed                *int64          `json:"seed,omitempty"`
	ResponseFormat      json.RawMessage `json:"response_format,omitempty"`
	User                string          `json:"user,omitempty"`
	Options             json.RawMessage `json:"options,omitempty"`
	Tools               []backend.Tool  `json:"tools,omitempty"`
	ToolChoice          json.RawMessage `json:"tool_choice,omitempty"`
	ParallelToolCalls   *bool           `json:"parallel_tool_calls,omitempty"`
	N                   *int            `json:"n,omitempty"`
	Logprobs            *bool           `json:"logprobs,omitempty"`
	TopLogprobs         *int            `json:"top_logprobs,omitempty"`
	LogitBias           json.RawMessage `json:"logit_bias,omitempty"`
	Store               *bool           `json:"store,omitempty"`
	Metadata            json.RawMessage `json:"metadata,omitempty"`
	ServiceTier         string          `json:"service_tier,omitempty"`
	Modalities          []string        `json:"modalities,omitempty"`
	Audio               json.RawMessage `json:"audio,omitempty"`
	Prediction          json.RawMessage `json:"prediction,omitempty"`
	ReasoningEffort     string          `json:"reasoning_effort,omitempty"`
	Functions           json.RawMessage `json:"functions,omitempty"`
	FunctionCall        json.RawMessage `json:"function_call,omitempty"`
	WebSearchOptions    json.RawMessage `json:"web_search_options,omitempty"`

	// Classification is the caller's declared classification of the data it sends
	// (header X-Sios-Classification); empty means OFFICIAL.
	Classification string `json:"-"`
}

// StreamOptions are OpenAI's stream options.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
	// IncludeObfuscation is taken and has no effect: the node's stream events carry no
	// padding against length side channels.
	IncludeObfuscation *bool `json:"include_obfuscation,omitempty"`
}

// Stop is OpenAI's stop member: one string or an array of strings.
type Stop []string

// UnmarshalJSON accepts "s", ["a", "b"] or null.
func (s *Stop) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		*s = nil
		return nil
	}
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*s = Stop{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("stop must be a string or an array of strings")
	}
	*s = many
	return nil
}

// ChatMessage is one message: the members of OpenAI's request messages, and no other
// (an unknown member is refused, naming it). messageMembers lists them for docs/api.md.
type ChatMessage struct {
	Role       string     `json:"role"`
	Content    Content    `json:"content"`
	Name       string     `json:"name,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	// Refusal is an assistant message's refusal, as OpenAI answers it; a message sent
	// back with one and no content has it as its content.
	Refusal *string `json:"refusal,omitempty"`
	// Audio and FunctionCall are OpenAI's members of an assistant message, taken only
	// when null or empty: the node has no audio, and calls are tool_calls.
	Audio        json.RawMessage `json:"audio,omitempty"`
	FunctionCall json.RawMessage `json:"function_call,omitempty"`
	// Annotations are an OpenAI answer's citations of web pages, which clients send
	// back with the message; taken only when null or empty (the node never searches
	// the web, so its own answers have none).
	Annotations json.RawMessage `json:"annotations,omitempty"`
	// Parsed is the openai-node SDK's copy of the content, parsed by its structured
	// output helpers (runTools, parse), which it sends back with the message. It is
	// ignored: the content is what the model said.
	Parsed json.RawMessage `json:"parsed,omitempty"`
}

// ToolCall is a call an assistant message made, as a client sends it back: OpenAI's
// members, and those its SDKs add when they assemble a streamed answer.
type ToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
		// ParsedArguments is the openai-node SDK's parse of Arguments; ignored.
		ParsedArguments json.RawMessage `json:"parsed_arguments,omitempty"`
	} `json:"function"`
	// Index is the call's position in a streamed answer, kept by SDKs that assemble
	// the stream's chunks; ignored (the calls' order is the array's).
	Index *int `json:"index,omitempty"`
}

// messageMembers are the members a message may hold, each with what the node does
// with it; docs/api.md lists the same, and a test keeps the two equal.
var messageMembers = []struct{ name, does string }{
	{"role", "required: system, developer, user, assistant or tool"},
	{"content", "a string, null, or an array of text parts (and image_url parts when the brain takes images)"},
	{"name", "forwarded"},
	{"tool_call_id", "required in a tool message: the call it answers"},
	{"tool_calls", "an assistant message's calls (id, type, function with name and arguments; index and parsed_arguments, which SDKs add, are ignored)"},
	{"refusal", "an assistant message's refusal: its content when it has no other"},
	{"audio", "null only"},
	{"function_call", "null only: use tool_calls"},
	{"annotations", "null or empty only"},
	{"parsed", "ignored: the openai-node SDK's parse of the content"},
}

// Content is a message's content: a string, null, or an array of parts.
type Content struct {
	Text  string         // the text, parts joined
	Parts []backend.Part // set when the content was an array holding an image
}

// UnmarshalJSON accepts "text", null, or [{"type":"text","text":"…"},
// {"type":"image_url","image_url":{"url":"…"}}, …]. Another part type is refused,
// naming it.
func (c *Content) UnmarshalJSON(b []byte) error {
	*c = Content{}
	if string(b) == "null" {
		return nil
	}
	if len(b) >= 2 && b[0] == '"' {
		// A string: its text, unescaped where it has escapes, is what encoding/json
		// gives; anything unusual (invalid UTF-8, a lone surrogate) is left to it
		// (TestContentStringIsEncodingJSONs, FuzzParseChatRequest).
		if bytes.IndexByte(b, '\\') < 0 && utf8.Valid(b) {
			c.Text = string(b[1 : len(b)-1])
			return nil
		}
		if t, err := jsontext.AppendUnquote(nil, b); err == nil {
			c.Text = string(t)
			return nil
		}
	}
	if err := json.Unmarshal(b, &c.Text); err == nil {
		return nil
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(b, &parts); err != nil {
		return fmt.Errorf("content must be a string or an array of parts")
	}
	var sb strings.Builder
	images := false
	for i, raw := range parts {
		var p backend.Part
		if err := jcs.DecodeMembers(raw, &p); err != nil {
			var head struct {
				Type string `json:"type"`
			}
			json.Unmarshal(raw, &head)
			if head.Type != "" && head.Type != "text" && head.Type != "image_url" {
				return &partError{i, head.Type}
			}
			if name, ok := unknownMember(err); ok {
				return fmt.Errorf("content part %d has the member %q, which text and image_url parts do not", i, name)
			}
			return fmt.Errorf("content part %d is not a text or image_url part", i)
		}
		switch p.Type {
		case "text":
			sb.WriteString(p.Text)
		case "image_url":
			if p.ImageURL == nil || p.ImageURL.URL == "" {
				return fmt.Errorf("content part %d: image_url needs a url", i)
			}
			images = true
		default:
			return &partError{i, p.Type}
		}
		c.Parts = append(c.Parts, p)
	}
	c.Text = sb.String()
	if !images {
		c.Parts = nil
	}
	return nil
}

// partError is a content part of a type the node does not take.
type partError struct {
	index int
	typ   string
}

func (e *partError) Error() string {
	return fmt.Sprintf("content part %d has type %q: the node takes text and image_url parts", e.index, e.typ)
}

// MaxOutputTokens is the caller's token limit, if any.
func (r *ChatRequest) MaxOutputTokens() int {
	switch {
	case r.MaxCompletionTokens != nil:
		return *r.MaxCompletionTokens
	case r.MaxTokens != nil:
		return *r.MaxTokens
	}
	return 0
}

// Usage is token accounting, as OpenAI reports it.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// ParseChatRequest reads a chat request body: every member must be one of chatMembers
// (an unknown member is refused, not dropped), then the members must decode and pass
// Validate.
func ParseChatRequest(body []byte) (*ChatRequest, *Error) {
	req, err := decodeChatRequest(body)
	if err != nil {
		return nil, err
	}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	return req, nil
}

// decodeChatRequest decodes a chat request body, refusing members it does not know.
func decodeChatRequest(body []byte) (*ChatRequest, *Error) {
	bad := func(code, param, format string, a ...any) *Error {
		return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: code, Param: param, Message: fmt.Sprintf(format, a...)}
	}
	// The usual request decodes at once. A body that does not is decoded again below,
	// the top level first, so that the error is the one that explains it best. (Every
	// member the strict decode takes is a member of chatMembers:
	// TestChatRequestFieldsAreChatMembers; so a body it takes passes the check below.)
	var req ChatRequest
	if err := jcs.DecodeMembers(body, &req); err == nil {
		return &req, nil
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		return nil, bad("invalid_json", "", "the request body is not a JSON object: %s", jsonProblem(err))
	}
	for _, name := range sortedKeys(members) {
		if !chatMemberNames[name] {
			return nil, bad("unknown_parameter", name, "%s is not a chat completions member this node knows; docs/api.md lists every member and what the node does with it", name)
		}
	}
	// Strictly below the top level too: a member OpenAI does not define in a message, a
	// tool or the stream options is refused naming it, as OpenAI refuses it, and a
	// repeated or differently cased one is refused, which readers could take apart.
	// Values as OpenAI takes them: a seed beyond 2^53 or a noncharacter in a message is
	// the client's to send (the record holds digests of messages, never their text).
	req = ChatRequest{}
	if err := jcs.DecodeMembers(body, &req); err != nil {
		var pe *partError
		if errors.As(err, &pe) {
			return nil, &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "unsupported_content",
				Param: fmt.Sprintf("messages[].content[%d]", pe.index), Message: pe.Error()}
		}
		return nil, strictProblem(err, "the request body is not valid JSON for this endpoint")
	}
	return &req, nil
}

// strictProblem is the 400 for a body jcs.DecodeStrict refused, naming the member
// (as OpenAI's param does: messages[0].tool_calls[1].id) and what is wrong with it,
// without echoing the body beyond the member's name.
func strictProblem(err error, what string) *Error {
	e := &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_json"}
	var se *jsonv2.SemanticError
	if !errors.As(err, &se) {
		// Not JSON, or JSON that is not I-JSON: a repeated member (named), a lone
		// surrogate or noncharacter, a number a double would change, nesting too deep.
		e.Message = what + ": " + oar.Bounded(strings.TrimPrefix(err.Error(), "jcs: "), 300)
		return e
	}
	e.Param = oar.Bounded(paramPath(se.JSONPointer), 200)
	switch {
	case se.Err == jsonv2.ErrUnknownName:
		e.Code = "unknown_parameter"
		e.Message = fmt.Sprintf("%s is not a member this node takes there; docs/api.md lists every member and what the node does with it", e.Param)
	case se.Err != nil && se.JSONKind != 0 && se.GoType != nil && strings.HasPrefix(se.GoType.PkgPath(), "github.com/sios-project/"):
		// A field's own decoder (content, stop) said what is wrong.
		e.Message = fmt.Sprintf("%s: %s", e.Param, se.Err)
	default:
		e.Message = fmt.Sprintf("%s must be %s", e.Param, goKind(se.GoType))
	}
	return e
}

// unknownMember is the name of the unknown member err from jcs.DecodeStrict refused.
func unknownMember(err error) (string, bool) {
	var se *jsonv2.SemanticError
	if !errors.As(err, &se) || se.Err != jsonv2.ErrUnknownName {
		return "", false
	}
	p := string(se.JSONPointer)
	return oar.Bounded(unescapePointer(p[strings.LastIndexByte(p, '/')+1:]), 200), true
}

// paramPath writes a JSON pointer (/messages/0/role) as OpenAI names a parameter
// (messages[0].role).
func paramPath(p jsontext.Pointer) string {
	var b strings.Builder
	for _, tok := range strings.Split(strings.TrimPrefix(string(p), "/"), "/") {
		if _, err := strconv.Atoi(tok); err == nil && b.Len() > 0 {
			b.WriteString("[" + tok + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(unescapePointer(tok))
	}
	return b.String()
}

func unescapePointer(tok string) string {
	return strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
}

// goKind says in words what JSON a Go type takes.
func goKind(t reflect.Type) string {
	if t == nil {
		return "another JSON value"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "another JSON value"
}

func sortedKeys(m map[string]json.RawMessage) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// isEmpty says whether a raw member is absent, null, {} or [].
func isEmpty(raw json.RawMessage) bool {
	t := strings.TrimSpace(string(raw))
	return t == "" || t == "null" || t == "{}" || t == "[]"
}

// Validate applies the API's rules to a chat request; a peer's payload passes the same
// rules (ParsePeerPayload).
func (r *ChatRequest) Validate() *Error {
	bad := func(code, param, format string, a ...any) *Error {
		return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: code, Param: param, Message: fmt.Sprintf(format, a...)}
	}
	unsupported := func(param, why string) *Error {
		return bad("unsupported_parameter", param, "%s: %s", param, why)
	}
	switch {
	case r.Model == "":
		return bad("missing_model", "model", "model is required: a brain id, or \"auto\" for the router (GET /v1/models lists them)")
	case len(r.Model) > MaxModelName:
		return bad("invalid_model", "model", "model is longer than %d bytes (MaxModelName)", MaxModelName)
	case len(r.Messages) == 0:
		return bad("missing_messages", "messages", "messages must hold at least one message")
	case len(r.Messages) > MaxMessages:
		return bad("too_many_messages", "messages", "more than %d messages (MaxMessages)", MaxMessages)
	}
	for i, m := range r.Messages {
		switch m.Role {
		case "system", "developer", "user", "assistant", "tool":
		default:
			return bad("invalid_role", fmt.Sprintf("messages[%d].role", i), "messages[%d].role %q is not a chat role", i, m.Role)
		}
		if len(m.ToolCalls) > 0 && m.Role != "assistant" {
			return bad("invalid_message", fmt.Sprintf("messages[%d].tool_calls", i), "only assistant messages carry tool_calls")
		}
		if m.Role == "tool" && m.ToolCallID == "" {
			return bad("invalid_message", fmt.Sprintf("messages[%d].tool_call_id", i), "a tool message needs the tool_call_id it answers")
		}
		if len(m.ToolCalls) > MaxToolCalls {
			return bad("invalid_message", fmt.Sprintf("messages[%d].tool_calls", i), "more than %d tool calls (MaxToolCalls)", MaxToolCalls)
		}
		if m.Refusal != nil && *m.Refusal != "" && m.Role != "assistant" {
			return bad("invalid_message", fmt.Sprintf("messages[%d].refusal", i), "only assistant messages carry a refusal")
		}
		if !isEmpty(m.Audio) {
			return unsupported(fmt.Sprintf("messages[%d].audio", i), "the node takes and gives no audio")
		}
		if !isEmpty(m.FunctionCall) {
			return unsupported(fmt.Sprintf("messages[%d].function_call", i), "use tool_calls")
		}
		if !isEmpty(m.Annotations) {
			return unsupported(fmt.Sprintf("messages[%d].annotations", i), "the node takes no citations of web pages")
		}
	}
	if n := r.MaxOutputTokens(); n < 0 {
		return bad("invalid_max_tokens", "max_tokens", "max_tokens must not be negative")
	}
	if len(r.Stop) > MaxStop {
		return bad("invalid_stop", "stop", "at most %d stop sequences (MaxStop)", MaxStop)
	}
	if len(r.Tools) > MaxClientTools {
		return bad("too_many_tools", "tools", "more than %d tools (MaxClientTools)", MaxClientTools)
	}
	for i, t := range r.Tools {
		if (t.Type != "" && t.Type != "function") || t.Function.Name == "" {
			return bad("invalid_tool", fmt.Sprintf("tools[%d]", i), "tools[%d] must be a function with a name", i)
		}
	}
	if len(r.Tools) == 0 && (!isEmpty(r.ToolChoice) || r.ParallelToolCalls != nil) {
		return bad("invalid_tool_choice", "tool_choice", "tool_choice and parallel_tool_calls need tools")
	}
	if !isEmpty(r.ResponseFormat) {
		var rf struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(r.ResponseFormat, &rf) != nil || (rf.Type != "text" && rf.Type != "json_object" && rf.Type != "json_schema") {
			return bad("invalid_response_format", "response_format", "response_format.type must be text, json_object or json_schema")
		}
	}
	if !isEmpty(r.Options) && (len(r.Options) == 0 || strings.TrimSpace(string(r.Options))[0] != '{') {
		return bad("invalid_options", "options", "options must be an object")
	}
	switch {
	case r.N != nil && *r.N != 1:
		return unsupported("n", "the node answers one choice per request")
	case r.Logprobs != nil && *r.Logprobs:
		return unsupported("logprobs", "the node returns no log probabilities")
	case r.TopLogprobs != nil && *r.TopLogprobs != 0:
		return unsupported("top_logprobs", "the node returns no log probabilities")
	case !isEmpty(r.LogitBias):
		return unsupported("logit_bias", "logit biases are not forwarded")
	case r.Store != nil && *r.Store:
		return unsupported("store", "the node stores no completions for later retrieval (memory is /v1/memory)")
	case !isEmpty(r.Metadata):
		return unsupported("metadata", "metadata belongs with stored completions, which the node does not keep")
	case r.ServiceTier != "" && r.ServiceTier != "auto" && r.ServiceTier != "default":
		return unsupported("service_tier", "the node has one service tier")
	case len(r.Modalities) > 0 && !slices.Equal(r.Modalities, []string{"text"}):
		return unsupported("modalities", "the node answers in text only")
	case !isEmpty(r.Audio):
		return unsupported("audio", "the node answers in text only")
	case !isEmpty(r.Prediction):
		return unsupported("prediction", "predicted outputs are not forwarded")
	case r.ReasoningEffort != "":
		return unsupported("reasoning_effort", "reasoning settings are not forwarded")
	case !isEmpty(r.Functions):
		return unsupported("functions", "use tools")
	case !isEmpty(r.FunctionCall):
		return unsupported("function_call", "use tool_choice")
	case !isEmpty(r.WebSearchOptions):
		return unsupported("web_search_options", "the node never searches the web")
	}
	return nil
}

// Invocation is the pipeline's request for this chat request, made by p.
func (r *ChatRequest) Invocation(p *policy.Principal) *invoke.Invocation {
	inv := &invoke.Invocation{Principal: p, Model: r.Model, Stream: r.Stream,
		Classification: r.Classification, Messages: make([]invoke.Message, len(r.Messages)),
		Params: invoke.Params{Temperature: r.Temperature, TopP: r.TopP, FrequencyPenalty: r.FrequencyPenalty,
			PresencePenalty: r.PresencePenalty, Stop: r.Stop, Seed: r.Seed, ResponseFormat: r.ResponseFormat,
			User: r.User, Options: r.Options, Tools: r.Tools, ToolChoice: r.ToolChoice, ParallelToolCalls: r.ParallelToolCalls}}
	if isEmpty(inv.Params.ResponseFormat) {
		inv.Params.ResponseFormat = nil
	}
	if isEmpty(inv.Params.Options) {
		inv.Params.Options = nil
	}
	if isEmpty(inv.Params.ToolChoice) {
		inv.Params.ToolChoice = nil
	}
	if m := r.MaxOutputTokens(); m > 0 {
		inv.MaxTokens = &m
	}
	for i, m := range r.Messages {
		text := m.Content.Text
		if text == "" && m.Content.Parts == nil && m.Refusal != nil {
			text = *m.Refusal // what the assistant said
		}
		var calls []backend.ToolCall
		for j, c := range m.ToolCalls {
			calls = append(calls, backend.ToolCall{Index: j, ID: c.ID, Type: c.Type,
				Function: backend.FunctionCall{Name: c.Function.Name, Arguments: c.Function.Arguments}})
		}
		inv.Messages[i] = invoke.Message{Role: m.Role, Content: text, Parts: m.Content.Parts, Name: m.Name,
			ToolCallID: m.ToolCallID, ToolCalls: calls}
	}
	return inv
}

// ParsePeerPayload reads a remote call's payload (the chat request a peer's principal
// made) for brain, by exactly the rules of the API's own chat requests.
func ParsePeerPayload(payload []byte, brain, classification string) (*ChatRequest, *Error) {
	req, err := decodeChatRequest(payload)
	if err != nil {
		err.Code = "invalid_payload"
		err.Message = "payload: " + err.Message
		return nil, err
	}
	req.Model, req.Classification, req.Stream = brain, classification, false
	if err := req.Validate(); err != nil {
		err.Code = "invalid_payload"
		err.Message = "payload: " + err.Message
		return nil, err
	}
	return req, nil
}
