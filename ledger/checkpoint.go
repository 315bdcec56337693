package ledger

import (
	"errors"
	"fmt"
	"slices"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/witness"
	f_log "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
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

// ParseCheckpoint verifies and parses a checkpoint note of nodeID's log: both the
// Ed25519 and the ML-DSA-65 signature lines of the node key must be there, and every
// line of those keys must verify (witness.OpenNote); lines of other keys (witness
// cosignatures) are ignored.
func ParseCheckpoint(raw []byte, nodeID string, pub identity.PublicKey) (*Checkpoint, error) {
	if len(raw) > MaxCheckpointSize {
		return nil, fmt.Errorf("checkpoint is %d bytes, more than %d (MaxCheckpointSize)", len(raw), MaxCheckpointSize)
	}
	origin := Origin(nodeID)
	ed, ml := pub.NoteVerifiers(origin)
	n, err := witness.OpenNote(raw, note.VerifierList(ed, ml))
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &invalid):
		return nil, fmt.Errorf("checkpoint: the signature line of key %s+%08x does not verify", invalid.Name, invalid.Hash)
	case err != nil:
		return nil, fmt.Errorf("checkpoint: %v", err)
	}
	for _, v := range []note.Verifier{ed, ml} {
		if !slices.ContainsFunc(n.Sigs, func(s note.Signature) bool { return s.Name == v.Name() && s.Hash == v.KeyHash() }) {
			kind := "Ed25519"
			if v == ml {
				kind = "ML-DSA-65"
			}
			return nil, fmt.Errorf("checkpoint: no valid %s signature from %s", kind, origin)
		}
	}
	var cp f_log.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		return nil, fmt.Errorf("checkpoint: %v", err)
	}
	if cp.Origin != origin {
		return nil, fmt.Errorf("checkpoint: origin %q, want %q", cp.Origin, origin)
	}
	if len(cp.Hash) != 32 {
		return nil, fmt.Errorf("checkpoint: root hash is %d bytes, want 32", len(cp.Hash))
	}
	return &Checkpoint{Origin: cp.Origin, Size: cp.Size, Root: cp.Hash, Raw: raw}, nil
}
