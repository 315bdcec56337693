package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
)

// Pending states: where an entry beyond the checkpoint is.
const (
	// PendingCheckpoint: Tessera integrated the entry into the log's tiles; the next
	// checkpoint commits to it.
	PendingCheckpoint = "checkpoint"
	// PendingIntegration: only the journal holds the entry (durable, receipted);
	// Tessera integrates it next, or the node when it next starts.
	PendingIntegration = "integration"
)

// PendingEntry is an entry beyond the checkpoint: its record may already have been
// receipted, but no checkpoint commits to it yet.
type PendingEntry struct {
	Index uint64
	Entry []byte
	State string // PendingCheckpoint or PendingIntegration
}

// Pending returns the entries beyond the reader's checkpoint, in index order: those
// Tessera integrated (log/.state/treeState and the tiles) and those only the journal
// holds. It changes nothing and works beside a running writer: the journal is read
// before the tiles, so an entry receipted before the call is in one or the other even
// if it moves meanwhile. Every journal batch's seal is checked against its records
// (root and both signatures); verification of the rest is Verify's.
func (r *Reader) Pending(ctx context.Context) ([]PendingEntry, error) {
	live := WriterRunning(r.dir)
	segs, err := readSegments(filepath.Join(r.dir, journalDirName), live)
	if err != nil {
		return nil, err
	}
	batches, err := collectBatches(segs, r.cp.Size)
	if err != nil {
		return nil, err
	}
	for _, b := range batches {
		if err := r.checkBatch(b); err != nil {
			return nil, err
		}
	}
	integrated, err := r.integratedSize()
	if err != nil {
		return nil, err
	}
	var out []PendingEntry
	for idx := r.cp.Size / layout.EntryBundleWidth; idx*layout.EntryBundleWidth < integrated; idx++ {
		es, err := r.store.widest(idx)
		if err != nil {
			return nil, err
		}
		for k, e := range es {
			i := idx*layout.EntryBundleWidth + uint64(k)
			if i >= r.cp.Size && i < integrated {
				out = append(out, PendingEntry{Index: i, Entry: e, State: PendingCheckpoint})
			}
		}
	}
	next := r.cp.Size
	if n := len(out); n > 0 {
		next = out[n-1].Index + 1
	}
	for _, b := range batches {
		for k, e := range b.entries {
			if i := b.first + uint64(k); i >= next {
				if i != next {
					return nil, fmt.Errorf("the journal holds entry %d, but entries %d..%d are neither in it nor in the log", i, next, i-1)
				}
				out = append(out, PendingEntry{Index: i, Entry: e, State: PendingIntegration})
				next++
			}
		}
	}
	return out, ctx.Err()
}

// checkBatch checks that a journal batch is records followed by the seal that covers
// them, signed by the node.
func (r *Reader) checkBatch(b *batch) error {
	last := b.entries[len(b.entries)-1]
	e, err := oar.Parse(last)
	if err != nil || e.Seal == nil {
		return fmt.Errorf("journal batch at entry %d does not end with a seal: %v", b.first, err)
	}
	s := e.Seal
	hashes := make([][]byte, 0, len(b.entries)-1)
	for _, rec := range b.entries[:len(b.entries)-1] {
		hashes = append(hashes, oar.RecordHash(rec))
	}
	if s.First != b.first || s.Count != uint64(len(hashes)) || !bytes.Equal(s.RootBytes(), oar.MerkleRoot(hashes)) || s.Node != r.nodeID {
		return fmt.Errorf("journal batch at entry %d: its seal %d does not cover its records", b.first, s.Seq)
	}
	if err := s.VerifySignature(r.pub); err != nil {
		return fmt.Errorf("journal batch at entry %d: %v", b.first, err)
	}
	return nil
}

// integratedSize is the number of entries Tessera integrated (log/.state/treeState),
// or the checkpoint's size for a log without that state.
func (r *Reader) integratedSize() (uint64, error) {
	raw, err := os.ReadFile(filepath.Join(r.store.root, ".state", "treeState"))
	if errors.Is(err, fs.ErrNotExist) {
		return r.cp.Size, nil
	}
	if err != nil {
		return 0, err
	}
	var ts struct {
		Size *uint64 `json:"size"`
		Root *string `json:"root"`
	}
	if err := jcs.DecodeStrict(raw, &ts); err != nil || ts.Size == nil {
		return 0, fmt.Errorf("%s is not Tessera's tree state: %v", filepath.Join(logDirName, ".state", "treeState"), err)
	}
	return max(*ts.Size, r.cp.Size), nil
}

// widest reads the widest stored version of entry bundle idx: the full one, else the
// widest partial.
func (s *store) widest(idx uint64) ([][]byte, error) {
	full := layout.EntriesPath(idx, 0)
	path := full
	if _, err := os.Stat(filepath.Join(s.root, full)); errors.Is(err, fs.ErrNotExist) {
		des, err := os.ReadDir(filepath.Join(s.root, full+".p"))
		if err != nil {
			return nil, fmt.Errorf("entry bundle %d: %v", idx, err)
		}
		best := 0
		for _, de := range des {
			if w, ok := partialWidth(de.Name()); ok && w > best {
				best = w
			}
		}
		path = layout.EntriesPath(idx, uint8(best))
	}
	raw, err := os.ReadFile(filepath.Join(s.root, path))
	if err != nil {
		return nil, err
	}
	var b api.EntryBundle
	if err := b.UnmarshalText(raw); err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	return b.Entries, nil
}
