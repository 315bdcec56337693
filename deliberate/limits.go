package deliberate

import "time"

// Caps on what a decision takes from callers and peers, the same on the side that
// writes and the side that reads. Every error that enforces one names it.
const (
	// DefaultDeadline is how long a decision waits for its members when the caller
	// names no deadline.
	DefaultDeadline = 30 * time.Second
	// MinDeadline is the shortest deadline a caller may set: enough for a member's
	// admission record and one model answer.
	MinDeadline = 100 * time.Millisecond

	// MaxCallPayload is the largest payload of a decision call (the question, at most
	// decision.MaxQuestionLen bytes and six times that JSON-escaped, and the signed
	// request, at most decision.MaxRequestSize).
	MaxCallPayload = 256 << 10
	// MaxCallAnswer is the largest answer to a decision call an origin reads: a ballot
	// (decision.MaxBallotSize), its rationale escaped, and the receipt of its record.
	MaxCallAnswer = 64 << 10

	// MaxAnswered is how many (decision, brain) pairs a contributor remembers, each
	// until its decision's deadline, to answer each at most once.
	MaxAnswered = 1 << 16
	// MaxKept is how many recent decisions the origin keeps in memory with their
	// rationales; older ones are read back from the audit log, without them.
	MaxKept = 1024
	// MaxReasonLen is the longest explanation of a member that gave no ballot kept in
	// the outcome record.
	MaxReasonLen = 160
)
