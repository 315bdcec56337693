package api

import "time"

// Caps on what callers send, in one place; errors name them.
const (
	MaxBodyBytes      = 1 << 20 // a request body (413 above it)
	MaxMessages       = 256     // messages in one chat request
	MaxEmbeddingInput = 256     // inputs in one embeddings request
	MaxModelName      = 128
	MaxStop           = 4   // stop sequences
	MaxClientTools    = 128 // client-side tools offered in one request
	MaxToolCalls      = 128 // tool calls in one assistant message (backend.MaxToolCalls)
	// ReadHeaderTimeout bounds how long a client may take to send its request's
	// headers; ReadBodyTimeout how long it may then take to send the body. A client
	// that stalls is cut off, authenticated or not.
	ReadHeaderTimeout = 10 * time.Second
	ReadBodyTimeout   = 30 * time.Second
	// IdleTimeout closes a kept-alive connection that sends no new request.
	IdleTimeout = 120 * time.Second
	// WriteStallTimeout bounds each write of an answer — the whole answer, or one event
	// of a stream: a reader that stops reading is abandoned after it.
	WriteStallTimeout = 30 * time.Second
	// MaxConnections caps the API's open connections; more wait to be accepted.
	MaxConnections = 1024
)
