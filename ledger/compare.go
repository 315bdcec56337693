package ledger

// Comparison of two copies of one node's log ('sios audit compare', issue 6): the
// source's own log and a replica's copy, two replicas' copies, or two evidence bundles.
//
// Two copies hold one history up to their common size when their signed checkpoints
// are of one tree there: the same root at the same size, or an RFC 6962 consistency
// proof from the smaller checkpoint to the larger one. Neither needs the entries, so
// copies that agree are compared in a few file reads whatever their size. When they do
// not agree, the level-0 hash tiles are compared in order up to the first leaf that
// differs, and that index is reported only once both trees are proven to hold the
// common leaves before it (consistency proofs from the root over them to each
// checkpoint) and their own leaf at it (inclusion proofs): a tile that does not match
// its checkpoint is reported as a damaged copy, never as a divergence.
//
// Bundles carry their entries and the compact ranges joining them to the checkpoint's
// tree, so the trees over [0, end) of two bundles of one log can be rebuilt and
// compared from the entries they both hold.

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math/bits"
	"path/filepath"
	"runtime"
	"slices"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/oar"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api/layout"
)

// Comparison is the outcome of comparing two copies of one node's log.
type Comparison struct {
	// Identical reports that both copies hold one history up to CommonSize.
	Identical bool
	// CommonSize is the smaller of two logs' checkpoint sizes, or the end of the
	// entries two bundles both hold.
	CommonSize uint64
	// Root is the root of the tree over entries [0, CommonSize) when Identical.
	Root []byte
	// FirstDivergence is the first index at which the copies differ, when known.
	FirstDivergence *uint64
	// Reason says how the copies were found identical, or how they differ.
	Reason string
}

func identical(size uint64, root []byte, reason string) *Comparison {
	return &Comparison{Identical: true, CommonSize: size, Root: root, Reason: reason}
}

func divergent(common uint64, at *uint64, reason string) *Comparison {
	return &Comparison{CommonSize: common, FirstDivergence: at, Reason: reason}
}

// OpenReplicaReader reads the copy a Replica keeps in dir without opening the Replica:
// it writes nothing and verifies only the checkpoint, so it works beside the node that
// keeps the copy (whose commits leave the files of an older checkpoint readable).
func OpenReplicaReader(dir, nodeID string, pub identity.PublicKey) (*Reader, error) {
	st := newStore(dir)
	raw, err := st.checkpoint()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrEmpty
	}
	if err != nil {
		return nil, err
	}
	cp, err := ParseCheckpoint(raw, nodeID, pub)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", dir, err)
	}
	// As in Replica.Reader, dir holds no seen-checkpoint: that is a node's record of its own log.
	return &Reader{dir: filepath.Join(dir, replicaStateDir), nodeID: nodeID, pub: pub, store: st, cp: cp}, nil
}

// CompareLogs compares two copies of one node's log, each at its verified checkpoint.
// nameA and nameB name the copies in the reasons and errors. An error means the copies
// could not be compared: they are of different nodes, or one is damaged or unreadable.
func CompareLogs(ctx context.Context, a, b *Reader, nameA, nameB string) (*Comparison, error) {
	if a.nodeID != b.nodeID || !a.pub.Equal(b.pub) {
		return nil, fmt.Errorf("%s is node %s's log and %s is node %s's: only copies of one node's log can be compared",
			nameA, a.nodeID, nameB, b.nodeID)
	}
	m := min(a.cp.Size, b.cp.Size)
	if a.cp.Size == b.cp.Size && bytes.Equal(a.cp.Root, b.cp.Root) {
		return identical(m, a.cp.Root, fmt.Sprintf("both checkpoints commit to %d entries with the same root", m)), nil
	}
	if a.cp.Size != b.cp.Size {
		short, long, sn, ln := a, b, nameA, nameB
		if short.cp.Size > long.cp.Size {
			short, long, sn, ln = b, a, nameB, nameA
		}
		if proveConsistent(ctx, long, short.cp.Size, short.cp.Root) == nil {
			return identical(m, short.cp.Root, fmt.Sprintf("%s's checkpoint at size %d is consistent with %s's at size %d (consistency proof verified)",
				sn, short.cp.Size, ln, long.cp.Size)), nil
		}
	}
	return locateDivergence(ctx, a, b, nameA, nameB)
}

// proveConsistent checks that r's checkpoint extends the tree of size entries with
// root, by a consistency proof built from r's tiles.
func proveConsistent(ctx context.Context, r *Reader, size uint64, root []byte) error {
	switch {
	case size > r.cp.Size:
		return fmt.Errorf("size %d is beyond the checkpoint's %d", size, r.cp.Size)
	case size == r.cp.Size:
		if !bytes.Equal(root, r.cp.Root) {
			return fmt.Errorf("the tree of its %d entries does not have its checkpoint's root", size)
		}
		return nil
	case size == 0:
		return nil
	}
	pb, err := r.store.proofBuilder(ctx, r.cp.Size)
	if err != nil {
		return err
	}
	p, err := pb.ConsistencyProof(ctx, size, r.cp.Size)
	if err != nil {
		return fmt.Errorf("consistency proof %d→%d: %v", size, r.cp.Size, err)
	}
	if err := proof.VerifyConsistency(rfc6962.DefaultHasher, size, r.cp.Size, p, root, r.cp.Root); err != nil {
		return fmt.Errorf("the tree of its first %d entries is not the one its checkpoint at size %d extends", size, r.cp.Size)
	}
	return nil
}

// leafTiles is level-0 hash tile idx of both copies.
type leafTiles struct {
	a, b []byte // concatenated leaf hashes
	err  error
}

// locateDivergence finds the first leaf at which the trees of a and b differ, and
// proves it (see the notes at the top of this file).
func locateDivergence(ctx context.Context, a, b *Reader, nameA, nameB string) (*Comparison, error) {
	m := min(a.cp.Size, b.cp.Size)
	rng := rangeFactory.NewEmptyRange(0)
	d := m
	var leafA, leafB []byte
	n := (m + layout.EntryBundleWidth - 1) / layout.EntryBundleWidth
	read := func(ctx context.Context, r *Reader, name string, idx uint64) ([]byte, error) {
		p := layout.PartialTileSize(0, idx, r.cp.Size)
		t, err := r.store.tile(ctx, 0, idx, p)
		if err != nil {
			return nil, fmt.Errorf("%s: hash tile 0/%d: %v", name, idx, err)
		}
		return t, nil
	}
	workers := max(4, runtime.GOMAXPROCS(0))
scan:
	for t := range inOrder(ctx, n, workers, func(ctx context.Context, idx uint64) leafTiles {
		ta, err := read(ctx, a, nameA, idx)
		if err != nil {
			return leafTiles{err: err}
		}
		tb, err := read(ctx, b, nameB, idx)
		return leafTiles{a: ta, b: tb, err: err}
	}) {
		if t.err != nil {
			return nil, t.err
		}
		base := rng.End() // every earlier tile was equal and appended
		width := min(m-base, layout.EntryBundleWidth)
		for k := range width {
			ha, hb := t.a[k*oar.HashSize:(k+1)*oar.HashSize], t.b[k*oar.HashSize:(k+1)*oar.HashSize]
			if !bytes.Equal(ha, hb) {
				d, leafA, leafB = base+k, ha, hb
				break scan
			}
			if err := rng.Append(ha, nil); err != nil {
				return nil, err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	root := rfc6962.DefaultHasher.EmptyRoot()
	if d > 0 {
		var err error
		if root, err = rng.GetRootHash(nil); err != nil {
			return nil, err
		}
	}
	for _, s := range []struct {
		r    *Reader
		name string
	}{{a, nameA}, {b, nameB}} {
		if err := proveConsistent(ctx, s.r, d, root); err != nil {
			return nil, damaged(s.name, s.r, err)
		}
	}
	if d == m {
		return identical(m, root, fmt.Sprintf("the leaf hashes of entries 0..%d are the same in both copies and lead to both checkpoints (consistency proofs verified)", m-1)), nil
	}
	descA, err := provenEntry(ctx, a, d, leafA)
	if err != nil {
		return nil, damaged(nameA, a, err)
	}
	descB, err := provenEntry(ctx, b, d, leafB)
	if err != nil {
		return nil, damaged(nameB, b, err)
	}
	return divergent(m, &d, fmt.Sprintf("first divergence at index %d: %s holds %s; %s holds %s", d, nameA, descA, nameB, descB)), nil
}

func damaged(name string, r *Reader, err error) error {
	return fmt.Errorf("%s does not match its own checkpoint at size %d, so it cannot be compared (the copy is damaged or was altered): %v",
		name, r.cp.Size, err)
}

// provenEntry proves that leaf is entry i of r's checkpoint's tree and that r's stored
// entry i hashes to it, and describes the entry.
func provenEntry(ctx context.Context, r *Reader, i uint64, leaf []byte) (string, error) {
	pb, err := r.store.proofBuilder(ctx, r.cp.Size)
	if err != nil {
		return "", err
	}
	p, err := pb.InclusionProof(ctx, i)
	if err != nil {
		return "", fmt.Errorf("inclusion proof of entry %d: %v", i, err)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, r.cp.Size, leaf, p, r.cp.Root); err != nil {
		return "", fmt.Errorf("the leaf hash of entry %d in its hash tile is not in its checkpoint's tree", i)
	}
	e, err := r.Entry(ctx, i)
	if err != nil {
		return "", err
	}
	if !bytes.Equal(oar.RecordHash(e), leaf) {
		return "", &VerifyError{Index: i, Reason: "entry bytes do not match the hash the log committed to (the entry was altered)"}
	}
	return describeEntry(e), nil
}

// describeEntry says what an entry is, for a divergence report.
func describeEntry(e []byte) string {
	h := hex.EncodeToString(oar.RecordHash(e))
	p, err := oar.Parse(e)
	switch {
	case err != nil:
		return fmt.Sprintf("an invalid entry (%v; hash %s)", err, h)
	case p.Kind == oar.KindSeal:
		s := p.Seal
		return fmt.Sprintf("seal %d over records %d..%d (hash %s)", s.Seq, s.First, s.First+s.Count-1, h)
	default:
		r := p.Record
		return fmt.Sprintf("a record of %s by %s at %s (hash %s)", r.Action, r.Actor.ID, r.Time, h)
	}
}

// bundleSide is a verified bundle prepared for comparison.
type bundleSide struct {
	name        string
	cp          *Checkpoint
	start, end  uint64
	entries     [][]byte
	leaves      [][]byte
	left, right [][]byte
}

func prepareBundle(b *Bundle, name string) (*bundleSide, error) {
	if _, err := b.Verify(); err != nil {
		return nil, fmt.Errorf("%s failed verification: %w", name, err)
	}
	// Verify succeeded, so none of these can fail.
	pub, _, err := b.Certificate.Verify()
	if err != nil {
		return nil, err
	}
	cp, err := ParseCheckpoint([]byte(b.Checkpoint), b.Certificate.NodeID, pub)
	if err != nil {
		return nil, err
	}
	s := &bundleSide{name: name, cp: cp, start: b.Start, end: b.Start + uint64(len(b.Entries)),
		entries: make([][]byte, len(b.Entries)), leaves: make([][]byte, len(b.Entries))}
	for i, e := range b.Entries {
		s.entries[i] = []byte(e)
		s.leaves[i] = oar.RecordHash(s.entries[i])
	}
	if s.left, err = unhexAll(b.Left, "left"); err != nil {
		return nil, err
	}
	if s.right, err = unhexAll(b.Right, "right"); err != nil {
		return nil, err
	}
	return s, nil
}

// prefix is the compact range [0, to) of the bundle's tree, for start <= to <= end.
func (s *bundleSide) prefix(to uint64) (*compact.Range, error) {
	rng, err := rangeFactory.NewRange(0, s.start, slices.Clone(s.left))
	if err != nil {
		return nil, err
	}
	for _, h := range s.leaves[:to-s.start] {
		if err := rng.Append(h, nil); err != nil {
			return nil, err
		}
	}
	return rng, nil
}

// suffix is the compact range [from, size) of the bundle's tree, for start <= from <= end.
func (s *bundleSide) suffix(from uint64) (*compact.Range, error) {
	rng := rangeFactory.NewEmptyRange(from)
	for _, h := range s.leaves[from-s.start:] {
		if err := rng.Append(h, nil); err != nil {
			return nil, err
		}
	}
	right, err := rangeFactory.NewRange(s.end, s.cp.Size, slices.Clone(s.right))
	if err != nil {
		return nil, err
	}
	return rng, rng.AppendRange(right, nil)
}

// describe says what the bundle knows of entry i whose leaf hash is leaf.
func (s *bundleSide) describe(i uint64, leaf []byte) string {
	if i >= s.start && i < s.end {
		return describeEntry(s.entries[i-s.start])
	}
	return fmt.Sprintf("an entry outside its range %d..%d (hash %s)", s.start, s.end-1, hex.EncodeToString(leaf))
}

// CompareBundles verifies two evidence bundles, each against its own signed
// checkpoint, and compares them over the entries both hold: byte by byte, and the
// trees over [0, end of those entries) rebuilt from each bundle's compact ranges must
// have one root. nameA and nameB name the bundles in the reasons and errors. An error
// means the bundles could not be compared: one does not verify, they are of different
// nodes, or they share no entry.
func CompareBundles(a, b *Bundle, nameA, nameB string) (*Comparison, error) {
	sa, err := prepareBundle(a, nameA)
	if err != nil {
		return nil, err
	}
	sb, err := prepareBundle(b, nameB)
	if err != nil {
		return nil, err
	}
	if a.Certificate.NodeID != b.Certificate.NodeID {
		return nil, fmt.Errorf("%s holds node %s's log and %s holds node %s's: only bundles of one node's log can be compared",
			nameA, a.Certificate.NodeID, nameB, b.Certificate.NodeID)
	}
	lo, hi := max(sa.start, sb.start), min(sa.end, sb.end)
	if lo >= hi {
		return nil, fmt.Errorf("%s holds entries %d..%d and %s holds entries %d..%d: they share no entry to compare",
			nameA, sa.start, sa.end-1, nameB, sb.start, sb.end-1)
	}

	// Before the entries both hold: each bundle's tree over [0, lo), from its compact
	// range and its own entries. Compact ranges of one size have one shape, so the
	// first node that differs bounds the first divergence.
	pa, err := sa.prefix(lo)
	if err != nil {
		return nil, err
	}
	pb, err := sb.prefix(lo)
	if err != nil {
		return nil, err
	}
	if from, to, ok := firstDifferentNode(0, lo, pa.Hashes(), pb.Hashes()); ok {
		return bundleDivergence(sa, sb, hi, from, to, pa.Hashes(), pb.Hashes(),
			fmt.Sprintf("before entry %d, where the entries both bundles hold begin", lo)), nil
	}

	// The entries both hold, byte by byte.
	for i := lo; i < hi; i++ {
		ea, eb := sa.entries[i-sa.start], sb.entries[i-sb.start]
		if !bytes.Equal(ea, eb) {
			return divergent(hi, &i, fmt.Sprintf("first divergence at index %d: %s holds %s; %s holds %s",
				i, nameA, describeEntry(ea), nameB, describeEntry(eb))), nil
		}
	}

	// The trees over [0, hi) from each bundle must have one root, and it must be a
	// checkpoint's root where the checkpoint is at hi.
	var roots [2][]byte
	for k, s := range []*bundleSide{sa, sb} {
		rng, err := s.prefix(hi)
		if err != nil {
			return nil, err
		}
		if roots[k], err = rng.GetRootHash(nil); err != nil {
			return nil, err
		}
		if s.cp.Size == hi && !bytes.Equal(roots[k], s.cp.Root) {
			return nil, fmt.Errorf("%s: the tree of entries 0..%d does not have its checkpoint's root", s.name, hi-1)
		}
	}
	if !bytes.Equal(roots[0], roots[1]) {
		return nil, fmt.Errorf("the trees of entries 0..%d rebuilt from %s and %s have different roots although their nodes are the same", hi-1, nameA, nameB)
	}

	// Checkpoints of one size with two roots: the node signed two histories, which
	// differ after the entries both bundles hold.
	if sa.cp.Size == sb.cp.Size && !bytes.Equal(sa.cp.Root, sb.cp.Root) {
		size := sa.cp.Size
		ra, err := sa.suffix(hi)
		if err != nil {
			return nil, err
		}
		rb, err := sb.suffix(hi)
		if err != nil {
			return nil, err
		}
		what := fmt.Sprintf("both checkpoints commit to %d entries with different roots (the node signed two histories); they differ after entry %d, the last both bundles hold", size, hi-1)
		if from, to, ok := firstDifferentNode(hi, size, ra.Hashes(), rb.Hashes()); ok {
			return bundleDivergence(sa, sb, hi, from, to, ra.Hashes(), rb.Hashes(), what), nil
		}
		return divergent(hi, nil, what), nil
	}
	return identical(hi, roots[0], fmt.Sprintf("entries %d..%d are byte-identical and both bundles give one root for the tree of entries 0..%d", lo, hi-1, hi-1)), nil
}

// bundleDivergence reports a divergence bounded by the tree node over [from, to),
// outside the entries both bundles hold.
func bundleDivergence(sa, sb *bundleSide, common, from, to uint64, ha, hb [][]byte, where string) *Comparison {
	if to-from == 1 {
		k := nodeIndex(ha, hb)
		return divergent(common, &from, fmt.Sprintf("first divergence at index %d, %s: %s holds %s; %s holds %s",
			from, where, sa.name, sa.describe(from, ha[k]), sb.name, sb.describe(from, hb[k])))
	}
	return divergent(common, nil, fmt.Sprintf("the histories differ %s, within entries %d..%d: export bundles that hold those entries to find the first divergent index",
		where, from, to-1))
}

// nodeIndex is the index of the first hash that differs in two lists of one length.
func nodeIndex(a, b [][]byte) int {
	for k := range a {
		if !bytes.Equal(a[k], b[k]) {
			return k
		}
	}
	return -1
}

// firstDifferentNode compares the nodes of two compact ranges over [begin, end) and
// returns the leaves [from, to) under the first node that differs.
func firstDifferentNode(begin, end uint64, a, b [][]byte) (from, to uint64, ok bool) {
	k := nodeIndex(a, b)
	if k < 0 || len(a) != len(b) {
		return 0, 0, false
	}
	spans := rangeSpans(begin, end)
	return spans[k][0], spans[k][1], true
}

// rangeSpans lists the leaves [from, to) under each node of the compact range
// [begin, end), left to right, as compact.Range orders its hashes.
func rangeSpans(begin, end uint64) [][2]uint64 {
	left, right := compact.Decompose(begin, end)
	var out [][2]uint64
	pos := begin
	for left != 0 {
		size := uint64(1) << bits.TrailingZeros64(left)
		out = append(out, [2]uint64{pos, pos + size})
		pos += size
		left &^= size
	}
	for right != 0 {
		size := uint64(1) << (bits.Len64(right) - 1)
		out = append(out, [2]uint64{pos, pos + size})
		pos += size
		right &^= size
	}
	return out
}
