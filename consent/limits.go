package consent

import "time"

// Caps on a grant and on the grant store. The same constants bound writing (Sign, the
// store) and reading (Parse, ParseState): a grant this package makes can always be read
// back, and one it would not make is refused. Every error that enforces one names it.
const (
	// MaxGrantSize is the largest canonical grant in bytes, signatures included. A grant
	// whose every member is at its cap (the worst case, with every character of its free
	// text escaped) is about 15 KiB; the tests check that it fits.
	MaxGrantSize = 16 << 10
	// MaxGrantLifetime is the longest a grant may be valid (expires - issued): 365 days.
	// A grant is not a standing arrangement; a longer relationship is renewed.
	MaxGrantLifetime = 365 * 24 * time.Hour
	// MaxClockSkew is how far after a verifier's clock a grant may have been issued (the
	// origin's clock running ahead) before it is refused as not valid yet.
	MaxClockSkew = 30 * time.Second
	// MaxIDLen is the longest principal id, tenant, brain id, node id or root id: the
	// principal store's rule and the fleet's.
	MaxIDLen = 128
	// MaxPurposeLen is the longest purpose, in bytes of UTF-8.
	MaxPurposeLen = 512
	// MaxSubjects is the most subjects one memory.read grant names.
	MaxSubjects = 16
	// MaxSubjectLen is the longest subject, in bytes: the memory store's MaxNameBytes.
	MaxSubjectLen = 256
	// MaxUses is the largest use count a grant may carry. A grant without one may be
	// used until it expires or is revoked.
	MaxUses = 1_000_000
)

// Caps of the grant store.
const (
	// MaxStateSize is the largest store file (a grant and its state) in bytes.
	MaxStateSize = MaxGrantSize + 1024
	// MaxUseCount is the largest use count a store file records, for grants without a
	// count too: 2^53, the largest integer every JSON implementation holds exactly.
	MaxUseCount = 1 << 53
	// MaxStoredGrants is the most grants one store holds, whatever their state; Add
	// refuses more. It bounds what loading the store reads.
	MaxStoredGrants = 100_000
)
