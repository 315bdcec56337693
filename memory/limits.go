package memory

// Caps on what callers may hand the store. Every cap is named in the error that
// enforces it, so the person who hits one knows which knob they met.
const (
	// MaxTextBytes is the largest memory text, in bytes.
	MaxTextBytes = 256 << 10
	// MaxNameBytes is the longest tenant, subject or source, in bytes.
	MaxNameBytes = 256
	// MaxBatch is the most memories one AddBatch accepts.
	MaxBatch = 10_000
	// MaxQueryBytes is the longest search text, in bytes.
	MaxQueryBytes = 4 << 10
	// MaxQueryTerms is the most distinct words of a search text that are searched for;
	// later words are ignored. It bounds the cost of one search.
	MaxQueryTerms = 32
	// DefaultLimit is the number of results a search returns when Query.Limit is 0.
	DefaultLimit = 10
	// MaxLimit is the most results one search returns; larger limits are lowered to it.
	MaxLimit = 100
)
