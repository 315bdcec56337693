// Package backend holds the node's model backends: an OpenAI-compatible client for
// local model servers (Ollama, llama.cpp server, vLLM, LocalAI).
//
// What the OpenAI client guarantees:
//
//   - It dials only through the *http.Client it is given (the node builds it on
//     egress.Guard.HTTPTransport); it has no client of its own to fall back on.
//   - Every read of a server's bytes is bounded: the whole response by
//     Options.MaxResponseBytes, a single stream event, an error body and the number of
//     tool calls by the caps in limits.go. Exceeding a cap fails the call with an error
//     that names it.
//   - A server's error comes back as an *Error carrying only the status and the
//     server's own OpenAI-shaped error message, never the request body.
//   - Cancelling the context aborts the request, including mid-stream.
//   - A streamed call yields each chunk to onDelta in order and returns the same
//     assembled response a non-streamed call would.
package backend

import (
	"context"
	"encoding/json"
)

// Backend is a model server. Implementations must be safe for concurrent use.
type Backend interface {
	// Chat runs a chat completion. If onDelta is nil the call waits for the whole
	// answer. If onDelta is not nil the call streams: onDelta is called for each
	// chunk, in order, on the calling goroutine, and Chat then returns the assembled
	// response (content concatenated, tool-call argument fragments merged by index,
	// usage as the server reported it or else estimated). An error from onDelta
	// aborts the call and is returned wrapped.
	Chat(ctx context.Context, req ChatRequest, onDelta func(Delta) error) (*ChatResponse, error)
	// Embed returns one vector per input, in input order, and the tokens the server
	// counted (estimated when it reported none).
	Embed(ctx context.Context, model string, input []string) ([][]float32, Usage, error)
}

// Message is one chat message, as in the OpenAI chat API. A message with Parts (text
// and images) is sent with its content as an array of parts; otherwise content is the
// string Content.
type Message struct {
	Role       string     `json:"role"`
	Content    string     `json:"-"`
	Parts      []Part     `json:"-"`
	Name       string     `json:"name,omitempty"`
	ToolCalls  []ToolCall `json:"tool_calls,omitempty"`
	ToolCallID string     `json:"tool_call_id,omitempty"`
}

// Part is one part of a message's content: text, or an image by URL (an https URL or a
// data: URL with the image inline).
type Part struct {
	Type     string    `json:"type"` // "text" or "image_url"
	Text     string    `json:"text,omitempty"`
	ImageURL *ImageURL `json:"image_url,omitempty"`
}

// ImageURL is an image part's image.
type ImageURL struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"`
}

// MarshalJSON sends content as a string, or as parts when there are any. An assistant
// message that only calls tools has null content, as servers expect.
func (m Message) MarshalJSON() ([]byte, error) {
	return m.appendJSON(nil), nil
}

// ToolCall is a model's request to call a tool.
type ToolCall struct {
	// Index is the call's position among the response's tool calls. In a Delta it
	// says which call a fragment belongs to. It is not sent to servers in messages.
	Index    int          `json:"-"`
	ID       string       `json:"id"`
	Type     string       `json:"type"`
	Function FunctionCall `json:"function"`
}

// FunctionCall names the function and carries its arguments as JSON text. In a Delta,
// Arguments is a fragment to append to the call's earlier fragments.
type FunctionCall struct {
	Name      string `json:"name"`
	Arguments string `json:"arguments"`
}

// Tool is a tool offered to the model.
type Tool struct {
	Type     string      `json:"type"`
	Function FunctionDef `json:"function"`
}

// FunctionDef describes a function tool; Parameters is a JSON Schema. Strict is
// OpenAI's request that calls follow the schema exactly, passed on as the caller set it.
type FunctionDef struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// ChatRequest is the subset of an OpenAI chat completion request the node sends: the
// members a brain lets callers set, and its own (docs/api.md lists each).
type ChatRequest struct {
	Model             string          `json:"model"`
	Messages          []Message       `json:"messages"`
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
	// Options are backend-specific settings sent as they are (Ollama's "options", such
	// as num_ctx; vLLM's extra sampling parameters).
	Options json.RawMessage `json:"options,omitempty"`
}

// Usage counts tokens.
type Usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// ChatResponse is an assembled chat completion.
type ChatResponse struct {
	ID           string     `json:"id"`
	Model        string     `json:"model"`
	Content      string     `json:"content"`
	FinishReason string     `json:"finish_reason"`
	ToolCalls    []ToolCall `json:"tool_calls,omitempty"`
	Usage        Usage      `json:"usage"`
	// UsageEstimated is true when the server reported no usage and Usage is an
	// estimate (about four bytes of text per token).
	UsageEstimated bool `json:"usage_estimated,omitempty"`
}

// Delta is one streamed chunk: a fragment of content and/or of tool calls.
type Delta struct {
	Content   string
	ToolCalls []ToolCall
}
