package fleet

// Caps on attacker-controlled sizes. Every error that enforces one names it.
const (
	// MaxRecordSize is the largest canonical record in bytes.
	MaxRecordSize = 64 << 10
	// MaxBrains is the most brains one brains record may offer.
	MaxBrains = 256
	// MaxIDLen is the longest node id, brain id, brain kind or audit schema.
	MaxIDLen = 128
	// MaxAddrLen is the longest endpoint address (host:port).
	MaxAddrLen = 255
	// MaxSeq is the largest sequence number: 2^53, the largest integer every JSON
	// implementation holds exactly.
	MaxSeq = 1 << 53
	// MaxHeldPerNode is the most out-of-order records held for one node while their
	// predecessor is missing.
	MaxHeldPerNode = 256
	// MaxHeld is the most out-of-order records held for all nodes together.
	MaxHeld = 4096
	// MaxSinceBatch is the most records one Since call returns; anti-entropy asks again.
	MaxSinceBatch = 1024
)
