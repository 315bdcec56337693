package backend

// Caps on what a model server can make the node hold. A server is configured by the
// operator but its answers are still outside bytes.
const (
	// DefaultMaxResponseBytes is Options.MaxResponseBytes when it is zero: the most
	// bytes read from one response, streamed or not.
	DefaultMaxResponseBytes = 16 << 20

	// MaxEventBytes caps one server-sent event (its lines and joined data).
	MaxEventBytes = 1 << 20

	// MaxErrorBytes caps how much of an error response is read.
	MaxErrorBytes = 64 << 10

	// MaxErrorMessage caps the server message kept in an *Error.
	MaxErrorMessage = 1024

	// MaxToolCalls caps the tool calls in one response.
	MaxToolCalls = 128

	// maxDrainBytes caps what is read after a stream's [DONE] to let the connection
	// be reused.
	maxDrainBytes = 64 << 10
)
