// Package api is the node's OpenAI-compatible HTTP API: /v1/chat/completions (with SSE
// streaming), /v1/models and /v1/embeddings, behind bearer API keys. It only speaks
// HTTP: every decision — who the caller is, which brain, whether policy allows it, the
// perimeter and the audit record — is the Gateway's, and every response carries the
// audit receipt of its admission record in the X-Sios-Receipt header.
package api

import (
	"context"

	"github.com/sios-project/sios/policy"
)

// ReceiptHeader carries the base64url (unpadded) JSON receipt of the request's audit record.
const ReceiptHeader = "X-Sios-Receipt"

// Gateway is what the API needs from a node. Implementations must be safe for
// concurrent use; errors meant for the caller are *Error.
type Gateway interface {
	Authenticate(apiKey string) (*policy.Principal, bool)
	Models(ctx context.Context, p *policy.Principal) ([]Model, error)
	Chat(ctx context.Context, p *policy.Principal, req *ChatRequest, w ChatWriter) error
	Embed(ctx context.Context, p *policy.Principal, req *EmbeddingRequest) (*EmbeddingResponse, string, error)
}

// ChatWriter receives a chat's outcome. Start is called once, before any content,
// with the brain that serves the request and the admission receipt; then Delta for
// each streamed piece (streaming only); then Finish.
type ChatWriter interface {
	Start(brain, receipt string) error
	Delta(d Delta) error
	Finish(r *ChatResult) error
}

// Model is one entry of /v1/models.
type Model struct {
	ID             string `json:"id"`
	Object         string `json:"object"`
	Created        int64  `json:"created"`
	OwnedBy        string `json:"owned_by"`
	Kind           string `json:"sios_kind,omitempty"`
	Classification string `json:"sios_classification,omitempty"`
	Title          string `json:"sios_title,omitempty"`
}
