package api

import "time"

// Caps on what callers send, in one place; errors name them.
const (
	MaxBodyBytes      = 1 << 20 // a request body (413 above it)
	MaxMessages       = 256     // messages in one chat request
	MaxEmbeddingInput = 256     // inputs in one embeddings request
	MaxModelName      = 128
	ReadHeaderTimeout = 10 * time.Second
	IdleTimeout       = 120 * time.Second
)
