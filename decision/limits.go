package decision

import "time"

// Caps on attacker- and operator-controlled sizes, the same when a message is written
// and when it is read. Every error that enforces one names it.
const (
	// MaxRequestSize is the largest canonical decision request in bytes.
	MaxRequestSize = 16 << 10
	// MaxBallotSize is the largest canonical ballot in bytes (its signatures alone are
	// about 4.5 KiB).
	MaxBallotSize = 8 << 10
	// MaxOutcomeSize is the largest canonical outcome in bytes. An outcome holds the
	// request and every counted ballot, and travels whole in one audit record, whose
	// entry is at most oar.MaxEntrySize (65535) bytes: this leaves the record 4 KiB
	// for its own members.
	MaxOutcomeSize = 60 << 10

	// MaxMembers is the most members a panel may have. Every member's ballot, the
	// request and the outcome's signature must fit in MaxOutcomeSize.
	MaxMembers = 8
	// MaxBallots is the most ballots one Count takes: one per member and a few more
	// (a retried call, a stray answer), each of which is either counted or rejected.
	MaxBallots = MaxMembers + 4
	// MaxOptions is the most options a decision may offer; there are at least two.
	MaxOptions = 16
	// MaxOptionLen is the longest option label in bytes.
	MaxOptionLen = 64
	// MaxWeight is the largest member weight under the weighted rule.
	MaxWeight = 1000

	// MaxIDLen is the longest brain id or panel id, as brain.MaxIDLen.
	MaxIDLen = 64
	// MaxModelLen is the longest backend model name in a ballot, as brain.MaxModelLen.
	MaxModelLen = 256
	// MaxDetailLen is the longest explanation of a rejected ballot in an outcome.
	MaxDetailLen = 160

	// MaxDecisionLifetime is the longest a decision may run (deadline - issued). It
	// equals fleet.MaxEnvelopeLifetime: a request travels to peers in an envelope.
	MaxDecisionLifetime = 5 * time.Minute

	// MaxQuestionLen is the longest question text in bytes. Only its digest is in the
	// request; the text travels beside it to each member.
	MaxQuestionLen = 32 << 10
	// MaxAnswerLen is the most bytes of a model's answer ParseAnswer reads.
	MaxAnswerLen = 64 << 10
	// MaxRationaleLen is the longest rationale kept from an answer, in bytes; a longer
	// one is cut at a character boundary. Only its digest is in the ballot.
	MaxRationaleLen = 2 << 10

	// MaxPanelFileSize is the largest panel file in bytes.
	MaxPanelFileSize = 64 << 10
	// MaxDescriptionLen is the longest panel description in bytes, as brain's.
	MaxDescriptionLen = 4 << 10
	// MaxPanels is the most panels a data directory may define.
	MaxPanels = 256
)
