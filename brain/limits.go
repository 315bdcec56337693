package brain

import "time"

// Caps on what a brain file may hold. Brain files come from the data directory, which
// an operator (or whoever can write there) controls, so every size is bounded here and
// nowhere else. Errors name the constant that was exceeded.
const (
	MaxFileSize       = 1 << 20  // bytes in one brain file
	MaxBrains         = 1000     // brains in a catalogue: embedded and data directory together
	MaxSystemPrompt   = 32 << 10 // bytes of system_prompt
	MaxIDLen          = 64       // bytes of id
	MaxTitleLen       = 128      // bytes of title
	MaxDescriptionLen = 4 << 10  // bytes of description
	MaxModelLen       = 256      // bytes of model
	MaxBackendLen     = 2048     // bytes of a backend URL
	MaxTools          = 64       // entries in tools
	MaxToolNameLen    = 64       // bytes of one tool name
	MaxKeywords       = 256      // entries in keywords
	MaxKeywordLen     = 64       // bytes of one keyword
	MaxExamples       = 32       // entries in examples
	MaxExampleLen     = 512      // bytes of one example question
	MaxOptions        = 64       // entries in options
	MaxOptionsBytes   = 4 << 10  // bytes of options, as JSON

	MaxMaxTokens         = 1 << 20          // largest max_tokens
	MaxTimeout           = 15 * time.Minute // longest timeout
	MaxRequestsPerMinute = 6_000_000        // largest rate_limit.requests_per_minute
	MaxBurst             = 1_000_000        // largest rate_limit.burst

	// MaxRoutePrompt is how many bytes of a prompt the router reads: enough for any
	// real instruction, and it bounds the work an unauthenticated prompt can cause.
	MaxRoutePrompt = 1 << 20

	// MaxEmbedPrompt is how many bytes of a prompt (cut at a character boundary) the
	// embedding router sends to the embedding model: embedding models read a few
	// thousand tokens at most, and the subject of a request is in its first lines.
	MaxEmbedPrompt = 8 << 10
	// MaxEmbeddingDim is the largest embedding vector the router accepts.
	MaxEmbeddingDim = 1 << 16
	// MaxEmbedBatch is how many texts the router sends in one embeddings request.
	MaxEmbedBatch = 64
)

// Defaults for optional fields a brain file leaves out.
const (
	DefaultMaxTokens         = 1024
	DefaultTimeout           = 60 * time.Second
	DefaultRequestsPerMinute = 60
	DefaultBurst             = 10
)
