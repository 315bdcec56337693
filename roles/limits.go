package roles

import "time"

// Caps and pacing of the keeper. Caps on the documents themselves are succession's
// (succession/limits.go), enforced when they are parsed.
const (
	// MaxMarks is the most entries each set of marks.json keeps.
	MaxMarks = 1 << 16
	// MaxMarksFile is the largest marks.json the keeper reads, in bytes.
	MaxMarksFile = 32 << 20
	// MaxEvidenceParties is how many bytes of a certificate's evidence a role.handover
	// record carries as its parties; a larger certificate is named by its digest and
	// its events' hashes alone (an OAR/1 entry is at most 64 KiB).
	MaxEvidenceParties = 40 << 10
	// MaxRoles is the most roles (tenant, name) a keeper tracks; documents for more
	// are not counted, and reported.
	MaxRoles = 4096
	// MaxPendingDocs is the most documents held while their signer is not yet a known
	// node of the institution.
	MaxPendingDocs = 4096

	// idleWake is the longest the loop sleeps with nothing due.
	idleWake = time.Minute
	// minWake is the shortest: a step that failed (the ledger unavailable) is tried
	// again no faster than this.
	minWake = 200 * time.Millisecond
	// retryWake is when a failed step is tried again.
	retryWake = 2 * time.Second
)
