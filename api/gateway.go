// Package api is the node's OpenAI-compatible HTTP API: /v1/chat/completions (with SSE
// streaming), /v1/models, /v1/embeddings and the memory endpoints, behind bearer API
// keys. It only speaks HTTP: it validates what callers send (the same rules for a
// peer's payload, ParsePeerPayload), hands typed requests to the Gateway (the
// invocation pipeline, package invoke), and renders the pipeline's typed outcomes as
// HTTP statuses and OpenAI's error shape in one place. Every response carries the
// audit receipt of its record in the X-Sios-Receipt header.
package api

import (
	"context"

	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/memory"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// ReceiptHeader names the request's audit record compactly (CompactReceipt); a request
// that carries it with the value "full" gets FullReceiptHeader as well.
const ReceiptHeader = "X-Sios-Receipt"

// FullReceiptHeader carries the full receipt: unpadded base64url of its JSON.
const FullReceiptHeader = "X-Sios-Receipt-Full"

// Gateway is what the API needs from a node (*invoke.Pipeline). Implementations must be
// safe for concurrent use; outcomes meant for the caller are *invoke.Error.
type Gateway interface {
	// Authenticate returns the principal a bearer token (an API key, or an OIDC token
	// when single sign-on is configured) stands for; a refusal is an *invoke.Error.
	Authenticate(ctx context.Context, bearer string) (*policy.Principal, error)
	// RefuseAuthentication records a request refused for its key, from a client
	// address; false when even that could not be recorded.
	RefuseAuthentication(ctx context.Context, addr, reason string) bool
	Models(p *policy.Principal) []invoke.Model
	Chat(ctx context.Context, inv *invoke.Invocation, sink invoke.Sink) error
	Embed(ctx context.Context, req *invoke.Embedding) (*invoke.Embeddings, error)
}

// MemoryGateway is what the memory endpoints need. Every call is governed by policy
// (memory.read / memory.write) and audited; the receipt is of the call's record.
// ReceiptGateway is what GET /v1/receipts/{index} needs (*invoke.Pipeline).
type ReceiptGateway interface {
	Receipt(ctx context.Context, p *policy.Principal, idx uint64) (*oar.Receipt, error)
}

type MemoryGateway interface {
	MemoryAdd(ctx context.Context, p *policy.Principal, subject string, lvl policy.Level, source, text string) (*memory.Memory, *oar.Receipt, error)
	MemorySearch(ctx context.Context, p *policy.Principal, subject, query string, limit int) ([]memory.Result, *oar.Receipt, error)
	MemoryExport(ctx context.Context, p *policy.Principal, subject string) (*memory.Export, *oar.Receipt, error)
	MemoryForget(ctx context.Context, p *policy.Principal, subject string) (*memory.Forgotten, *oar.Receipt, error)
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
