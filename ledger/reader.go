package ledger

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/oar"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/tessera/api/layout"
)

// Reader gives read-only access to a ledger directory up to its latest checkpoint. It
// takes no lock: it works beside a running writer or on a copy.
type Reader struct {
	dir    string
	nodeID string
	pub    identity.PublicKey
	store  *store
	cp     *Checkpoint
}

// ErrEmpty is returned by OpenReader for a ledger with no checkpoint yet.
var ErrEmpty = errors.New("the audit log has no checkpoint yet")

// OpenReader opens dir for reading and verifies its checkpoint.
func OpenReader(dir, nodeID string, pub identity.PublicKey) (*Reader, error) {
	r := &Reader{dir: dir, nodeID: nodeID, pub: pub, store: newStore(filepath.Join(dir, logDirName))}
	raw, err := r.store.checkpoint()
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, ErrEmpty
		}
		return nil, err
	}
	if r.cp, err = ParseCheckpoint(raw, nodeID, pub); err != nil {
		return nil, err
	}
	return r, nil
}

// Checkpoint is the verified checkpoint the reader works at.
func (r *Reader) Checkpoint() *Checkpoint { return r.cp }

// PublicKey is the node key the reader verifies with.
func (r *Reader) PublicKey() identity.PublicKey { return r.pub }

// Size is the number of entries the checkpoint commits to.
func (r *Reader) Size() uint64 { return r.cp.Size }

// Entries returns entries [from, to).
func (r *Reader) Entries(ctx context.Context, from, to uint64) ([][]byte, error) {
	return r.store.entries(ctx, from, to, r.cp.Size)
}

// Entry returns entry i.
func (r *Reader) Entry(ctx context.Context, i uint64) ([]byte, error) {
	if i >= r.cp.Size {
		return nil, fmt.Errorf("index %d is beyond the log's %d entries", i, r.cp.Size)
	}
	es, err := r.Entries(ctx, i, i+1)
	if err != nil {
		return nil, err
	}
	return es[0], nil
}

// sealAfter scans forward from index i to the first seal and returns it with its bytes.
func (r *Reader) sealAfter(ctx context.Context, i uint64) (*oar.Seal, []byte, error) {
	for idx := i / layout.EntryBundleWidth; idx*layout.EntryBundleWidth < r.cp.Size; idx++ {
		es, err := r.store.bundle(ctx, idx, r.cp.Size)
		if err != nil {
			return nil, nil, err
		}
		for k, e := range es {
			if n := idx*layout.EntryBundleWidth + uint64(k); n < i {
				continue
			}
			p, err := oar.Parse(e)
			if err != nil {
				return nil, nil, &VerifyError{Index: idx*layout.EntryBundleWidth + uint64(k), Reason: err.Error()}
			}
			if p.Kind == oar.KindSeal {
				return p.Seal, e, nil
			}
		}
	}
	return nil, nil, fmt.Errorf("no seal covers entry %d within the checkpoint's %d entries", i, r.cp.Size)
}

// Receipt rebuilds the receipt of record i from the log.
func (r *Reader) Receipt(ctx context.Context, i uint64) (*oar.Receipt, error) {
	s, sealEntry, err := r.sealAfter(ctx, i)
	if err != nil {
		return nil, err
	}
	if s.Index() == i {
		return nil, fmt.Errorf("entry %d is a seal, not a record", i)
	}
	recs, err := r.Entries(ctx, s.First, s.Index())
	if err != nil {
		return nil, err
	}
	hashes := make([][]byte, len(recs))
	for k, e := range recs {
		hashes[k] = oar.RecordHash(e)
	}
	k := i - s.First
	return oar.NewReceipt(i, hashes[k], s.Index(), sealEntry, oar.MerkleProofs(hashes)[k]), nil
}

// InclusionProof is the RFC 6962 inclusion proof of entry i in the checkpoint's tree.
func (r *Reader) InclusionProof(ctx context.Context, i uint64) ([][]byte, error) {
	if i >= r.cp.Size {
		return nil, fmt.Errorf("index %d is beyond the log's %d entries", i, r.cp.Size)
	}
	pb, err := r.store.proofBuilder(ctx, r.cp.Size)
	if err != nil {
		return nil, err
	}
	return pb.InclusionProof(ctx, i)
}

// ConsistencyProof is the RFC 6962 consistency proof from the tree of the first from
// entries to the checkpoint's tree (empty when from is 0 or the checkpoint's size).
func (r *Reader) ConsistencyProof(ctx context.Context, from uint64) ([][]byte, error) {
	if from > r.cp.Size {
		return nil, fmt.Errorf("size %d is beyond the log's %d entries", from, r.cp.Size)
	}
	if from == 0 || from == r.cp.Size {
		return [][]byte{}, nil
	}
	pb, err := r.store.proofBuilder(ctx, r.cp.Size)
	if err != nil {
		return nil, err
	}
	return pb.ConsistencyProof(ctx, from, r.cp.Size)
}

var rangeFactory = compact.RangeFactory{Hash: oar.HashChildren}

// NoteSeen records the reader's checkpoint as seen by this node, after a verification.
func (r *Reader) NoteSeen(node *identity.Node) error {
	return noteSeen(r.dir, node, r.cp.Raw)
}
