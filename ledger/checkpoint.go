package ledger

import (
	"fmt"

	"github.com/sios-project/sios/identity"
	f_log "github.com/transparency-dev/formats/log"
)

// SPEC: https://c2sp.org/tlog-checkpoint

// MaxCheckpointSize bounds a checkpoint note read from disk or a bundle.
const MaxCheckpointSize = 64 << 10

// Origin is the checkpoint origin line of a node's audit log, which is also the key
// name of both checkpoint signatures.
func Origin(nodeID string) string { return "sios/audit/" + nodeID }

// Checkpoint is a verified checkpoint: both the Ed25519 and the ML-DSA-65 signed-note
// signatures of the node checked out.
type Checkpoint struct {
	Origin string
	Size   uint64
	Root   []byte
	Raw    []byte
}

// ParseCheckpoint verifies and parses a checkpoint note of nodeID's log.
func ParseCheckpoint(raw []byte, nodeID string, pub identity.PublicKey) (*Checkpoint, error) {
	if len(raw) > MaxCheckpointSize {
		return nil, fmt.Errorf("checkpoint is %d bytes, more than %d (MaxCheckpointSize)", len(raw), MaxCheckpointSize)
	}
	origin := Origin(nodeID)
	ed, ml := pub.NoteVerifiers(origin)
	cp, _, n, err := f_log.ParseCheckpoint(raw, origin, ed, ml)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: %v", err)
	}
	hasML := false
	for _, s := range n.Sigs {
		if s.Name == ml.Name() && s.Hash == ml.KeyHash() {
			hasML = true
		}
	}
	if !hasML {
		return nil, fmt.Errorf("checkpoint: no valid ML-DSA-65 signature from %s", origin)
	}
	if len(cp.Hash) != 32 {
		return nil, fmt.Errorf("checkpoint: root hash is %d bytes, want 32", len(cp.Hash))
	}
	return &Checkpoint{Origin: cp.Origin, Size: cp.Size, Root: cp.Hash, Raw: raw}, nil
}
