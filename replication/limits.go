package replication

import "github.com/sios-project/sios/ledger"

// Caps on what peers send in replication, the same on the sending and the receiving
// side; errors name them.
const (
	// MaxNotify bounds a notify message, either way: one checkpoint, a cosignature line
	// and a few members.
	MaxNotify = 64 << 10
	// MaxProofAnswer bounds a consistency answer: a checkpoint and at most 64 hashes,
	// in JSON.
	MaxProofAnswer = 64 << 10
	// maxLogFile bounds a log file a replica accepts from its source: the largest is an
	// entry bundle (ledger.Replica checks each kind against its own cap).
	maxLogFile = ledger.MaxEntryBundleSize
	// maxCosignatureLine bounds a cosignature line a source accepts from a replica: the
	// name and base64 of key ID, time and Ed25519 signature.
	maxCosignatureLine = 512
	// replicaBatch bounds the entries one replication step takes on (back pressure).
	replicaBatch = 1 << 20
)
