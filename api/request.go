package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/invoke"
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
	{"stream_options", "include_usage adds a usage chunk at the end of a stream"},
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
	{"tools", "client-side functions: offered to the model when the brain's client_tools allow each one (else 403); the model's calls come back as tool_calls"},
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

// ChatMessage is one message.
type ChatMessage struct {
	Role       string             `json:"role"`
	Content    Content            `json:"content"`
	Name       string             `json:"name,omitempty"`
	ToolCallID string             `json:"tool_call_id,omitempty"`
	ToolCalls  []backend.ToolCall `json:"tool_calls,omitempty"`
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
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			var head struct {
				Type string `json:"type"`
			}
			json.Unmarshal(raw, &head)
			if head.Type != "" && head.Type != "text" && head.Type != "image_url" {
				return &partError{i, head.Type}
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
	var members map[string]json.RawMessage
	if err := json.Unmarshal(body, &members); err != nil {
		return nil, bad("invalid_json", "", "the request body is not a JSON object: %s", jsonProblem(err))
	}
	for _, name := range sortedKeys(members) {
		if !chatMemberNames[name] {
			return nil, bad("unknown_parameter", name, "%s is not a chat completions member this node knows; docs/api.md lists every member and what the node does with it", name)
		}
	}
	var req ChatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		var pe *partError
		if asPart(err, &pe) {
			return nil, &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "unsupported_content",
				Param: fmt.Sprintf("messages[].content[%d]", pe.index), Message: pe.Error()}
		}
		return nil, bad("invalid_json", "", "the request body is not valid JSON for this endpoint: %s", jsonProblem(err))
	}
	return &req, nil
}

// asPart finds a *partError in the chain (encoding/json wraps UnmarshalJSON errors).
func asPart(err error, target **partError) bool {
	for e := err; e != nil; {
		if pe, ok := e.(*partError); ok {
			*target = pe
			return true
		}
		u, ok := e.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		e = u.Unwrap()
	}
	return false
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
		inv.Messages[i] = invoke.Message{Role: m.Role, Content: m.Content.Text, Parts: m.Content.Parts, Name: m.Name,
			ToolCallID: m.ToolCallID, ToolCalls: m.ToolCalls}
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
