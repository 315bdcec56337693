package ledger

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/oar"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
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

// VerifyResult summarises a successful verification.
type VerifyResult struct {
	Entries  uint64 `json:"entries"`
	Records  uint64 `json:"records"`
	Seals    uint64 `json:"seals"`
	Pending  uint64 `json:"pending"` // records beyond the last seal in the checkpoint, awaiting their seal
	Size     uint64 `json:"checkpoint_size"`
	Root     []byte `json:"checkpoint_root"`
	SeenSize uint64 `json:"seen_size"` // size of the previously seen checkpoint it is consistent with
}

var rangeFactory = compact.RangeFactory{Hash: rfc6962.DefaultHasher.HashChildren}

// Verify re-derives the whole log from its stored bytes: every entry's canonical form
// and hash against the tree, every seal's root, chain and signatures, the tree root
// against the checkpoint and both checkpoint signatures, and consistency with the last
// checkpoint this node saw. With allowPending, records after the last seal (a writer
// is still sealing them) are reported instead of failing.
func (r *Reader) Verify(ctx context.Context, allowPending bool) (*VerifyResult, error) {
	size := r.cp.Size
	seen, err := readSeen(r.dir, r.nodeID, r.pub)
	if err != nil {
		return nil, err
	}
	if seen != nil && seen.Size > size {
		return nil, fmt.Errorf("%w: the log's checkpoint is at size %d, but this node saw one at size %d (entries were removed)", ErrInconsistent, size, seen.Size)
	}
	c := newChain(r.nodeID, r.pub, 0)
	rng := rangeFactory.NewEmptyRange(0)
	var seenRoot []byte
	if seen != nil && seen.Size == 0 {
		seenRoot = rfc6962.DefaultHasher.EmptyRoot()
	}
	for b := range r.parseBundles(ctx, size, c) {
		if b.err != nil {
			return nil, &VerifyError{Index: b.base, Reason: b.err.Error()}
		}
		for k := range b.entries {
			i := b.base + uint64(k)
			if !bytes.Equal(b.leaves[k], b.tile[k]) {
				return nil, &VerifyError{Index: i, Reason: "entry bytes do not match the hash the log committed to (the entry was altered)"}
			}
			if err := c.addParsed(b.parsed[k], b.errs[k], b.leaves[k], b.sigErrs[k]); err != nil {
				return nil, err
			}
			if err := rng.Append(b.leaves[k], nil); err != nil {
				return nil, err
			}
			if seen != nil && i+1 == seen.Size {
				var err error
				if seenRoot, err = rng.GetRootHash(nil); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		return nil, err
	}
	if size == 0 {
		root = rfc6962.DefaultHasher.EmptyRoot()
	}
	if !bytes.Equal(root, r.cp.Root) {
		return nil, fmt.Errorf("the tree over all %d entries does not match the checkpoint's root (hash tiles or checkpoint altered)", size)
	}
	if seen != nil && !bytes.Equal(seenRoot, seen.Root) {
		return nil, fmt.Errorf("%w: the first %d entries do not match the checkpoint this node saw at that size (history was rewritten)", ErrInconsistent, seen.Size)
	}
	if p := c.pending(); p > 0 && !allowPending {
		return nil, &VerifyError{Index: c.batchFirst, Reason: fmt.Sprintf("%d records at the end of the log are not covered by a seal", p)}
	}
	res := &VerifyResult{Entries: size, Records: c.records, Seals: c.seals, Pending: c.pending(), Size: size, Root: r.cp.Root}
	if seen != nil {
		res.SeenSize = seen.Size
	}
	return res, nil
}

// parsedBundle is one entry bundle read, hashed and parsed ahead of the in-order checks.
type parsedBundle struct {
	base    uint64
	entries [][]byte
	tile    [][]byte // leaf hashes the log committed to
	leaves  [][]byte // leaf hashes of the stored entries
	parsed  []*oar.Entry
	errs    []error
	sigErrs []error // seal signature checks (checkSeal), done ahead on the workers
	err     error
}

// parseBundles reads, hashes and parses the bundles of a log of the given size on all
// cores, yielding them in order. It stops early at the first unreadable bundle.
func (r *Reader) parseBundles(ctx context.Context, size uint64, c *chain) iter.Seq[*parsedBundle] {
	return func(yield func(*parsedBundle) bool) {
		n := (size + layout.EntryBundleWidth - 1) / layout.EntryBundleWidth
		workers := runtime.GOMAXPROCS(0)
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		// A window of futures, one per bundle, keeps the output in order while up to
		// 4×workers bundles are in flight.
		futures := make(chan chan *parsedBundle, 4*workers)
		jobs := make(chan func())
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for job := range jobs {
					job()
				}
			}()
		}
		go func() {
			defer close(futures)
			defer close(jobs)
			for idx := uint64(0); idx < n; idx++ {
				f := make(chan *parsedBundle, 1)
				select {
				case futures <- f:
				case <-ctx.Done():
					return
				}
				job := func() { f <- r.parseBundle(ctx, idx, size, c) }
				select {
				case jobs <- job:
				case <-ctx.Done():
					return
				}
			}
		}()
		defer wg.Wait()
		defer cancel()
		for f := range futures {
			var b *parsedBundle
			select {
			case b = <-f:
			case <-ctx.Done():
				// The producer may have queued this future and then stopped before
				// handing out its job: nothing will fill it.
				return
			}
			if !yield(b) || b.err != nil {
				return
			}
		}
	}
}

func (r *Reader) parseBundle(ctx context.Context, idx, size uint64, c *chain) *parsedBundle {
	b := &parsedBundle{base: idx * layout.EntryBundleWidth}
	if b.entries, b.err = r.store.bundle(ctx, idx, size); b.err != nil {
		return b
	}
	if b.tile, b.err = r.store.leafHashes(ctx, idx, size); b.err != nil {
		return b
	}
	b.leaves = make([][]byte, len(b.entries))
	b.parsed = make([]*oar.Entry, len(b.entries))
	b.errs = make([]error, len(b.entries))
	b.sigErrs = make([]error, len(b.entries))
	for k, e := range b.entries {
		b.leaves[k] = oar.RecordHash(e)
		b.parsed[k], b.errs[k] = oar.Parse(e)
		b.sigErrs[k] = c.checkSeal(b.parsed[k])
	}
	return b
}

// NoteSeen records the reader's checkpoint as seen by this node, after a verification.
func (r *Reader) NoteSeen(node *identity.Node) error {
	return noteSeen(r.dir, node, r.cp.Raw)
}
