package ledger

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"

	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
)

// VerifyResult summarises a successful verification.
type VerifyResult struct {
	Entries uint64 `json:"entries"` // entries the checkpoint commits to
	Records uint64 `json:"records"`
	Seals   uint64 `json:"seals"`
	Pending uint64 `json:"pending"` // records after the last seal, awaiting their seal from a running writer
	// Unsealed is the number of records at the journal's end that a node made durable
	// but stopped before sealing (no writer holds the ledger): the node seals them, in
	// order, when it next starts.
	Unsealed uint64 `json:"unsealed"`
	Size     uint64 `json:"checkpoint_size"`
	Root     []byte `json:"checkpoint_root"`
	SeenSize uint64 `json:"seen_size"` // size of the previously seen checkpoint it is consistent with
	Files    uint64 `json:"files"`     // entry bundles and hash tiles checked, kept partial ones included

	// Live reports that a writer held the ledger: what lies beyond the checkpoint is
	// changing and was not read.
	Live bool `json:"live"`
	// Beyond the checkpoint, in a ledger no writer holds: entries the log's tiles hold
	// (Tessera integrated them, no checkpoint commits to them yet) and entries only the
	// journal holds (receipted, awaiting integration). Both are verified like the rest:
	// every record is covered by a seal whose root and signatures check, continuing the
	// seal chain. The node publishes them when it next runs.
	Integrated     uint64 `json:"integrated"`      // the log's tiles hold entries [0, Integrated)
	JournalEnd     uint64 `json:"journal_end"`     // the journal holds entries up to JournalEnd (≥ Integrated when it holds any beyond)
	BeyondRecords  uint64 `json:"beyond_records"`  // records in [Entries, max(Integrated, JournalEnd))
	TornJournal    string `json:"torn_journal"`    // a torn last journal frame, never acknowledged, that the node drops
	IgnoredJournal string `json:"ignored_journal"` // damage in a journal segment that holds only entries the log has
}

// Verify re-derives the whole log from its stored bytes and changes none of them:
//
//   - every entry's canonical form and hash against the level-0 hash tile, every
//     seal's root, chain and signatures, the tree root against the checkpoint and both
//     checkpoint signatures, and consistency with the last checkpoint this node saw;
//   - every hash tile at every level against the hashes the entries imply, and every
//     partial tile and entry bundle kept beside the full one against it;
//   - when no writer holds the ledger (WriterRunning), Tessera's state under
//     log/.state, and what lies beyond the checkpoint: entries Tessera integrated that
//     no checkpoint commits to yet, and the journal's entries not yet integrated, each
//     continuing the seal chain; damage in the journal that the node would refuse.
//
// Records after the last seal fail verification unless a writer holds the ledger
// (it is sealing them), only the journal holds them (a node made them durable and
// stopped before sealing them; it seals them when it next starts: Unsealed), or
// allowPending is set (a copy whose source checkpointed them before their seal).
func (r *Reader) Verify(ctx context.Context, allowPending bool) (*VerifyResult, error) {
	return r.VerifyWith(ctx, VerifyOptions{AllowPending: allowPending})
}

// VerifyOptions are the options of Reader.VerifyWith.
type VerifyOptions struct {
	// AllowPending accepts records after the last seal (see Verify).
	AllowPending bool
	// Progress, if set, is told the entries verified of those the run verifies
	// (the checkpoint's, and beyond it what the tiles and the journal hold when no
	// writer holds the ledger), and the entry bundles and hash tiles read, at most
	// ProgressSteps+2 times.
	Progress ProgressFunc
}

// VerifyWith is Verify with options.
func (r *Reader) VerifyWith(ctx context.Context, opts VerifyOptions) (*VerifyResult, error) {
	allowPending := opts.AllowPending
	size := r.cp.Size
	live := WriterRunning(r.dir)
	seen, err := readSeen(r.dir, r.nodeID, r.pub)
	if err != nil {
		return nil, err
	}
	if seen != nil && seen.Size > size {
		return nil, fmt.Errorf("%w: the log's checkpoint is at size %d, but this node saw one at size %d (entries were removed)", ErrInconsistent, size, seen.Size)
	}
	res := &VerifyResult{Entries: size, Size: size, Root: r.cp.Root, Live: live, Integrated: size}
	if seen != nil {
		res.SeenSize = seen.Size
	}

	// The tree is verified up to target: the checkpoint's size, or beyond it what
	// Tessera integrated, when nothing is writing.
	target := size
	var state *tesseraState
	if !live {
		if state, err = r.readTesseraState(size); err != nil {
			return nil, err
		}
		if state != nil {
			target = state.Size
		}
	}
	var jr *journalRead
	if !live {
		if jr, err = r.readJournal(target); err != nil {
			return nil, err
		}
	}

	// Beyond what Tessera recorded, a crash during an integration can leave files
	// holding entries [target, …): they must hold the journal's entries, which are
	// what the node integrates there when it next starts.
	var beyond func(i uint64) []byte
	end := target
	if !live && state != nil {
		beyond = jr.beyondEntry
		end = max(target, jr.endOr(0))
	}
	total := target
	if jr != nil {
		total = max(total, jr.end)
	}
	pr := newProgress(opts.Progress, 0, total)
	c := newChain(r.nodeID, r.pub, 0)
	rng := rangeFactory.NewEmptyRange(0)
	var seenRoot, cpRoot []byte
	if seen != nil && seen.Size == 0 {
		seenRoot = rfc6962.DefaultHasher.EmptyRoot()
	}
	tc := &tileChecker{store: r.store, size: end, checkpointSize: size, progress: pr}
	for b := range r.parseBundles(ctx, target, c, beyond) {
		if b.err != nil {
			return nil, b.err
		}
		res.Files += b.files
		pr.read(b.files, b.bytes)
		for k := range b.entries {
			i := b.base + uint64(k)
			if !bytes.Equal(b.leaves[k], b.tile[k]) {
				return nil, &VerifyError{Index: i, Reason: fmt.Sprintf("entry bytes do not match the hash the log committed to in %s (the entry or the hash tile was altered)", b.tilePath)}
			}
			if e, ok := jr.entry(i); ok && !bytes.Equal(e, b.entries[k]) {
				return nil, &VerifyError{Index: i, Reason: fmt.Sprintf("the journal holds other bytes for this entry than %s", b.path)}
			}
			if err := c.addParsed(b.parsed[k], b.errs[k], b.leaves[k], b.sigErrs[k]); err != nil {
				return nil, err
			}
			if err := rng.Append(b.leaves[k], nil); err != nil {
				return nil, err
			}
			if i+1 == size {
				res.Records, res.Seals = c.records, c.seals
				if cpRoot, err = rng.GetRootHash(nil); err != nil {
					return nil, err
				}
			}
			if seen != nil && i+1 == seen.Size {
				if seenRoot, err = rng.GetRootHash(nil); err != nil {
					return nil, err
				}
			}
		}
		if err := tc.addLeaves(ctx, b.leaves); err != nil {
			return nil, err
		}
		pr.advance(b.base + uint64(len(b.entries)))
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if beyond != nil {
		n, err := r.checkFilesBeyond(ctx, target, end, beyond, tc)
		if err != nil {
			return nil, err
		}
		res.Files += n
		pr.read(n, 0) // entry bundles and tiles a crash left, read for checking only
	}
	n, err := tc.finish(ctx)
	if err != nil {
		return nil, err
	}
	res.Files += n
	if size == 0 {
		cpRoot = rfc6962.DefaultHasher.EmptyRoot()
	}
	if !bytes.Equal(cpRoot, r.cp.Root) {
		return nil, fmt.Errorf("the tree over all %d entries does not match the checkpoint's root (hash tiles or checkpoint altered)", size)
	}
	if seen != nil && !bytes.Equal(seenRoot, seen.Root) {
		return nil, fmt.Errorf("%w: the first %d entries do not match the checkpoint this node saw at that size (history was rewritten)", ErrInconsistent, seen.Size)
	}
	if state != nil {
		root := rfc6962.DefaultHasher.EmptyRoot()
		if target > 0 {
			if root, err = rng.GetRootHash(nil); err != nil {
				return nil, err
			}
		}
		if !bytes.Equal(root, state.Root) {
			return nil, fmt.Errorf("%s: the tree over the %d entries Tessera integrated does not have the root it records (the state or the tiles beyond the checkpoint were altered)", state.path, target)
		}
		res.Integrated = target
	}
	if jr != nil {
		if err := jr.continueChain(c); err != nil {
			return nil, err
		}
		res.JournalEnd, res.TornJournal, res.IgnoredJournal = jr.end, jr.torn, jr.ignored
	}
	res.BeyondRecords = c.records - res.Records
	if p := c.pending(); p > 0 && !live && jr != nil && len(jr.beyond) > 0 && c.batchFirst >= max(res.Integrated, jr.beyond[0].first) {
		res.Unsealed = p // only the journal holds them: the node seals them when it starts
	} else if p > 0 {
		if !allowPending && !live {
			return nil, &VerifyError{Index: c.batchFirst, Reason: fmt.Sprintf("%d records at the end of the log are not covered by a seal, and no writer holds the ledger to seal them", p)}
		}
		res.Pending = p
	}
	pr.end()
	return res, nil
}

// parsedBundle is one entry bundle read, hashed and parsed ahead of the in-order checks.
type parsedBundle struct {
	base           uint64
	path, tilePath string
	entries        [][]byte
	tile           [][]byte // leaf hashes the log committed to
	leaves         [][]byte // leaf hashes of the stored entries
	parsed         []*oar.Entry
	errs           []error
	sigErrs        []error // seal signature checks (checkSeal), done ahead on the workers
	files          uint64  // stored versions of the bundle and its level-0 tile checked
	bytes          uint64  // their size
	err            error
}

// parseBundles reads, hashes and parses the bundles of a log of the given size on all
// cores, yielding them in order. It stops early at the first unreadable bundle.
func (r *Reader) parseBundles(ctx context.Context, size uint64, c *chain, beyond func(uint64) []byte) iter.Seq[*parsedBundle] {
	n := (size + layout.EntryBundleWidth - 1) / layout.EntryBundleWidth
	parse := func(_ context.Context, idx uint64) *parsedBundle { return r.parseBundle(idx, size, c, beyond) }
	return func(yield func(*parsedBundle) bool) {
		for b := range inOrder(ctx, n, runtime.GOMAXPROCS(0), parse) {
			if !yield(b) || b.err != nil {
				return
			}
		}
	}
}

// parseBundle reads every stored version of entry bundle idx and of its level-0 hash
// tile (the full file and the partial ones kept beside it), checks that they agree
// with one another, and hashes and parses the entries. Entries and hashes that
// versions hold beyond size are compared with beyond(index) (the journal's), unless
// beyond is nil (a writer is adding them as verification reads).
func (r *Reader) parseBundle(idx, size uint64, c *chain, beyond func(uint64) []byte) *parsedBundle {
	b := &parsedBundle{base: idx * layout.EntryBundleWidth}
	width := int(bundleWidth(idx, size))
	fail := func(err error) *parsedBundle {
		b.err = &VerifyError{Index: b.base, Reason: err.Error()}
		return b
	}
	bundles, err := r.store.versions(layout.EntriesPath(idx, 0))
	if err != nil {
		return fail(fmt.Errorf("entry bundle %d: %v", idx, err))
	}
	versions := make([][][]byte, len(bundles))
	for k, v := range bundles {
		var eb api.EntryBundle
		if err := eb.UnmarshalText(v.data); err != nil {
			return fail(fmt.Errorf("%s: %v", v.path, err))
		}
		if len(eb.Entries) != v.width {
			return fail(fmt.Errorf("%s holds %d entries, want %d", v.path, len(eb.Entries), v.width))
		}
		versions[k] = eb.Entries
	}
	src := bundles.source(width)
	if src < 0 {
		return fail(fmt.Errorf("%s is missing", layout.EntriesPath(idx, layout.PartialTileSize(0, idx, size))))
	}
	b.path, b.entries = bundles[src].path, versions[src][:width]
	for k, v := range bundles {
		for j := range min(v.width, width) {
			if !bytes.Equal(versions[k][j], b.entries[j]) {
				b.err = &VerifyError{Index: b.base + uint64(j), Reason: fmt.Sprintf("%s and %s hold different bytes for this entry (a stored copy was altered)", v.path, b.path)}
				return b
			}
		}
		if err := checkBeyond(v, versions[k], width, b.base, beyond, false); err != nil {
			b.err = err
			return b
		}
	}

	tiles, err := r.store.versions(layout.TilePath(0, idx, 0))
	if err != nil {
		return fail(fmt.Errorf("hash tile 0/%d: %v", idx, err))
	}
	src = tiles.source(width)
	if src < 0 {
		return fail(fmt.Errorf("%s is missing", layout.TilePath(0, idx, layout.PartialTileSize(0, idx, size))))
	}
	if err := tiles.checkSizes(); err != nil {
		return fail(err)
	}
	b.tilePath = tiles[src].path
	b.tile = make([][]byte, width)
	for j := range b.tile {
		b.tile[j] = tiles[src].data[j*oar.HashSize : (j+1)*oar.HashSize]
	}
	for _, v := range tiles {
		if j := tiles.firstDifference(v, tiles[src], width); j >= 0 {
			b.err = &VerifyError{Index: b.base + uint64(j), Reason: fmt.Sprintf("%s and %s hold different hashes for this entry (a stored copy was altered)", v.path, b.tilePath)}
			return b
		}
		if err := checkBeyond(v, tileHashes(v), width, b.base, beyond, true); err != nil {
			b.err = err
			return b
		}
	}
	b.files = uint64(len(bundles) + len(tiles))
	for _, vs := range []storedVersions{bundles, tiles} {
		for _, v := range vs {
			b.bytes += uint64(len(v.data))
		}
	}

	b.leaves = make([][]byte, width)
	b.parsed = make([]*oar.Entry, width)
	b.errs = make([]error, width)
	b.sigErrs = make([]error, width)
	for k, e := range b.entries {
		b.leaves[k] = oar.RecordHash(e)
		b.parsed[k], b.errs[k] = oar.Parse(e)
		b.sigErrs[k] = c.checkSeal(b.parsed[k])
	}
	return b
}

// checkBeyond compares what version v holds from position from on — entries (items)
// of an entry bundle, or leaf hashes of a level-0 tile — with the journal's entries
// at those indices (beyond). A writer may be adding them (beyond is nil): then they
// are not compared.
func checkBeyond(v storedVersion, items [][]byte, from int, base uint64, beyond func(uint64) []byte, hashes bool) error {
	if beyond == nil {
		return nil
	}
	for j := from; j < len(items); j++ {
		i := base + uint64(j)
		want := beyond(i)
		if want == nil {
			return &VerifyError{Index: i, Reason: fmt.Sprintf("%s holds this entry, which is neither in the log Tessera recorded nor in the journal (the file was altered)", v.path)}
		}
		if hashes {
			want = oar.RecordHash(want)
		}
		if !bytes.Equal(items[j], want) {
			return &VerifyError{Index: i, Reason: fmt.Sprintf("%s holds other bytes for this entry than the journal, which the node integrates there when it next starts (the file was altered)", v.path)}
		}
	}
	return nil
}

// tileHashes splits a hash tile version into its hashes.
func tileHashes(v storedVersion) [][]byte {
	out := make([][]byte, len(v.data)/oar.HashSize)
	for j := range out {
		out[j] = v.data[j*oar.HashSize : (j+1)*oar.HashSize]
	}
	return out
}

// checkFilesBeyond checks the entry bundles and level-0 tiles that lie wholly beyond
// Tessera's integrated size (from): a crash during an integration can leave them, and
// they must hold the journal's entries, up to end. It then gives the tile checker the
// journal's leaf hashes of [from, end), so that upper tiles are checked that far.
func (r *Reader) checkFilesBeyond(ctx context.Context, from, end uint64, beyond func(uint64) []byte, tc *tileChecker) (uint64, error) {
	var files uint64
	for idx := (from + layout.EntryBundleWidth - 1) / layout.EntryBundleWidth; ; idx++ {
		base := idx * layout.EntryBundleWidth
		bundles, err := r.store.versions(layout.EntriesPath(idx, 0))
		if err != nil {
			return 0, fmt.Errorf("entry bundle %d: %v", idx, err)
		}
		tiles, err := r.store.versions(layout.TilePath(0, idx, 0))
		if err != nil {
			return 0, fmt.Errorf("hash tile 0/%d: %v", idx, err)
		}
		if len(bundles)+len(tiles) == 0 && base >= end {
			break
		}
		if err := tiles.checkSizes(); err != nil {
			return 0, err
		}
		for _, v := range bundles {
			var eb api.EntryBundle
			if err := eb.UnmarshalText(v.data); err != nil || len(eb.Entries) != v.width {
				return 0, &VerifyError{Index: base, Reason: fmt.Sprintf("%s is not an entry bundle of %d entries (the file was altered)", v.path, v.width)}
			}
			if err := checkBeyond(v, eb.Entries, 0, base, beyond, false); err != nil {
				return 0, err
			}
		}
		for _, v := range tiles {
			if err := checkBeyond(v, tileHashes(v), 0, base, beyond, true); err != nil {
				return 0, err
			}
		}
		files += uint64(len(bundles) + len(tiles))
	}
	var leaves [][]byte
	for i := from; i < end; i++ {
		leaves = append(leaves, oar.RecordHash(beyond(i)))
	}
	if err := tc.addLeaves(ctx, leaves); err != nil {
		return 0, err
	}
	return files, ctx.Err()
}

// storedVersion is one stored version of a tile or entry bundle: the full file (width
// 256) or a partial one kept beside it (width 1..255).
type storedVersion struct {
	path  string // relative to the log directory
	width int
	data  []byte
}

type storedVersions []storedVersion

// versions reads every stored version of the resource at full (a tlog-tiles path
// without a partial suffix), narrowest first: each is a copy a client may fetch. Names
// under the .p directory that are not a width are not part of the layout and ignored.
func (s *store) versions(full string) (storedVersions, error) {
	var out storedVersions
	read := func(rel string, width int) error {
		data, err := os.ReadFile(filepath.Join(s.root, rel))
		if errors.Is(err, fs.ErrNotExist) {
			return nil // removed meanwhile, or never there
		}
		if err != nil {
			return err
		}
		out = append(out, storedVersion{path: rel, width: width, data: data})
		return nil
	}
	des, err := os.ReadDir(filepath.Join(s.root, full+".p"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, de := range des {
		w, ok := partialWidth(de.Name())
		if !ok {
			continue
		}
		if err := read(full+".p/"+de.Name(), w); err != nil {
			return nil, err
		}
	}
	if err := read(full, layout.TileWidth); err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b storedVersion) int { return a.width - b.width })
	return out, nil
}

// partialWidth reads the name of a partial tile or bundle, "1" to "255". Other names
// in a .p directory are not part of the layout: Tessera names its temporary files after
// the target with random digits appended, and a crash can leave them behind.
func partialWidth(name string) (int, bool) {
	w, err := strconv.Atoi(name)
	if err != nil || w < 1 || w >= layout.TileWidth || strconv.Itoa(w) != name {
		return 0, false
	}
	return w, true
}

// source is the version that holds the resource at the given width: the one of that
// width, else the narrowest wider one (Tessera writes a partial only for the sizes it
// integrated at, and may remove partials once the full one exists). -1 if none.
func (vs storedVersions) source(width int) int {
	for k, v := range vs {
		if v.width >= width {
			return k
		}
	}
	return -1
}

// checkSizes requires every hash tile version to hold exactly its width in hashes.
func (vs storedVersions) checkSizes() error {
	for _, v := range vs {
		if len(v.data) != v.width*oar.HashSize {
			return fmt.Errorf("%s is %d bytes, want %d (%d hashes)", v.path, len(v.data), v.width*oar.HashSize, v.width)
		}
	}
	return nil
}

// firstDifference is the first of the first width hashes at which hash tile versions
// a and b differ (as far as both hold them), or -1.
func (storedVersions) firstDifference(a, b storedVersion, width int) int {
	for j := range min(a.width, b.width, width) {
		if !bytes.Equal(a.data[j*oar.HashSize:(j+1)*oar.HashSize], b.data[j*oar.HashSize:(j+1)*oar.HashSize]) {
			return j
		}
	}
	return -1
}

// tileChecker checks the hash tiles above level 0: fed the leaf hashes in order, it
// computes every tile the tree of size entries has and compares every stored version
// of it (the full file and the partials kept beside it) with those hashes. Level-0
// tiles are checked with their entry bundles (parseBundle).
type tileChecker struct {
	store          *store
	size           uint64   // the size verified
	checkpointSize uint64   // tiles a client of the checkpoint needs must exist
	leaves         [][]byte // level-0 hashes not yet in a full tile
	rows           [][][]byte
	full           []uint64 // full tiles checked so far at each level
	files          uint64
	progress       *progress // told the tiles read; nil for none
}

// addLeaves takes the next leaf hashes, in order; each full level-0 tile's root is a
// hash of level 1. (Level-0 tiles themselves are checked with their bundles.)
func (tc *tileChecker) addLeaves(ctx context.Context, leaves [][]byte) error {
	tc.leaves = append(tc.leaves, leaves...)
	for len(tc.leaves) >= layout.TileWidth {
		if err := tc.add(ctx, 1, subtreeRoot(tc.leaves[:layout.TileWidth])); err != nil {
			return err
		}
		tc.leaves = tc.leaves[layout.TileWidth:]
	}
	return nil
}

// add adds hash h at tree level 8*level; a row that fills up is a full tile, checked,
// whose root goes up a level.
func (tc *tileChecker) add(ctx context.Context, level int, h []byte) error {
	for len(tc.rows) <= level {
		tc.rows = append(tc.rows, nil)
		tc.full = append(tc.full, 0)
	}
	tc.rows[level] = append(tc.rows[level], h)
	if len(tc.rows[level]) < layout.TileWidth {
		return nil
	}
	row := tc.rows[level]
	tc.rows[level] = nil
	idx := tc.full[level]
	tc.full[level]++
	if err := tc.check(ctx, level, idx, row); err != nil {
		return err
	}
	return tc.add(ctx, level+1, subtreeRoot(row))
}

// check compares every stored version of tile (level, idx) with row, the hashes the
// entries give it. A version wider than row holds hashes beyond the size verified:
// only the part row covers is compared.
func (tc *tileChecker) check(_ context.Context, level int, idx uint64, row [][]byte) error {
	vs, err := tc.store.versions(layout.TilePath(uint64(level), idx, 0))
	if err != nil {
		return fmt.Errorf("hash tile %d/%d: %v", level, idx, err)
	}
	if err := vs.checkSizes(); err != nil {
		return err
	}
	if need := tileWidthAt(uint64(level), idx, tc.checkpointSize); need > 0 && vs.source(need) < 0 {
		return fmt.Errorf("%s is missing: the checkpoint's tree needs it", layout.TilePath(uint64(level), idx, layout.PartialTileSize(uint64(level), idx, tc.checkpointSize)))
	}
	span := uint64(1) << (8 * level)
	for _, v := range vs {
		for j := range min(v.width, len(row)) {
			if !bytes.Equal(v.data[j*oar.HashSize:(j+1)*oar.HashSize], row[j]) {
				first := (idx*layout.TileWidth + uint64(j)) * span
				return fmt.Errorf("%s: hash %d is not what entries %d..%d imply (the hash tile was altered)", v.path, j, first, first+span-1)
			}
		}
	}
	tc.files += uint64(len(vs))
	if tc.progress != nil {
		var n uint64
		for _, v := range vs {
			n += uint64(len(v.data))
		}
		tc.progress.read(uint64(len(vs)), n)
	}
	return nil
}

// tileWidthAt is the number of hashes tile (level, idx) holds in a tree of size
// entries: 256 for a full tile, 0 for one beyond the tree.
func tileWidthAt(level, idx, size uint64) int {
	n := size >> (8 * level)
	switch {
	case idx < n/layout.TileWidth:
		return layout.TileWidth
	case idx == n/layout.TileWidth:
		return int(n % layout.TileWidth)
	}
	return 0
}

// finish checks the partial tiles at the right edge of the tree, above level 0, and
// returns the number of tile files checked above level 0.
func (tc *tileChecker) finish(ctx context.Context) (uint64, error) {
	for level := 1; level < len(tc.rows); level++ {
		if len(tc.rows[level]) == 0 {
			continue
		}
		idx := (tc.size >> (8 * level)) / layout.TileWidth
		if err := tc.check(ctx, level, idx, tc.rows[level]); err != nil {
			return 0, err
		}
	}
	return tc.files, nil
}

// tesseraState is Tessera's record of what it integrated, log/.state/treeState.
type tesseraState struct {
	path string
	Size uint64
	Root []byte
}

// readTesseraState reads and checks the files Tessera keeps under log/.state: the
// format version, the integrated tree's size and root (checked later against the
// tiles), and how far its garbage collection of partial files got. nil when the log
// has no such state (a replica's copy).
func (r *Reader) readTesseraState(checkpointSize uint64) (*tesseraState, error) {
	dir := filepath.Join(r.store.root, ".state")
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	rel := func(name string) string { return filepath.Join(logDirName, ".state", name) }
	v, err := os.ReadFile(filepath.Join(dir, "version"))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", rel("version"), err)
	}
	if string(v) != "1" {
		return nil, fmt.Errorf("%s holds %q, not Tessera's format version 1 (the file was altered)", rel("version"), v)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "treeState"))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", rel("treeState"), err)
	}
	var ts struct {
		Size *uint64 `json:"size"`
		Root *string `json:"root"`
	}
	if err := jcs.DecodeStrict(raw, &ts); err != nil || ts.Size == nil || ts.Root == nil {
		return nil, fmt.Errorf("%s is not Tessera's tree state {\"size\":…,\"root\":…} (the file was altered): %v", rel("treeState"), err)
	}
	root, err := base64.StdEncoding.Strict().DecodeString(*ts.Root)
	if err != nil || len(root) != oar.HashSize || base64.StdEncoding.EncodeToString(root) != *ts.Root {
		return nil, fmt.Errorf("%s: root is not %d bytes in base64 (the file was altered)", rel("treeState"), oar.HashSize)
	}
	if *ts.Size < checkpointSize {
		return nil, fmt.Errorf("%s says %d entries are integrated, fewer than the checkpoint's %d (the file was altered)", rel("treeState"), *ts.Size, checkpointSize)
	}
	if raw, err := os.ReadFile(filepath.Join(dir, "gcState")); err == nil {
		var gs struct {
			FromSize *uint64 `json:"fromSize"`
		}
		if err := jcs.DecodeStrict(raw, &gs); err != nil || gs.FromSize == nil || *gs.FromSize > *ts.Size {
			return nil, fmt.Errorf("%s is not Tessera's garbage-collection state for a log of %d entries (the file was altered)", rel("gcState"), *ts.Size)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s: %v", rel("gcState"), err)
	}
	return &tesseraState{path: rel("treeState"), Size: *ts.Size, Root: root}, nil
}

// journalRead is the journal of a ledger no writer holds, as verification reads it.
type journalRead struct {
	held    map[uint64][]byte // entries the log holds too, by index: they must agree
	beyond  []*batch          // entries only the journal holds, from the log's size on
	flat    [][]byte          // the entries of beyond, in order
	end     uint64
	torn    string
	ignored string
}

// readJournal reads the journal without changing it, splitting its entries at the
// log's integrated size. Damage that the node would refuse to start on fails it.
func (r *Reader) readJournal(integrated uint64) (*journalRead, error) {
	segs, err := readSegments(filepath.Join(r.dir, journalDirName), false)
	if err != nil || len(segs) == 0 {
		return nil, err
	}
	batches, err := collectBatches(segs, integrated)
	if err != nil {
		return nil, fmt.Errorf("%w: the journal holds receipted records that cannot be read, and the node will refuse to start", err)
	}
	jr := &journalRead{held: map[uint64][]byte{}}
	for _, s := range segs {
		if s.damage != nil {
			jr.ignored = s.damage.Error() + " (the segment holds only entries the log has; the node does without it)"
		}
		if s.torn != nil {
			jr.torn = s.torn.Error()
		}
	}
	for _, b := range batches {
		for k, e := range b.entries {
			if i := b.first + uint64(k); i < integrated {
				jr.held[i] = e
			}
		}
		if b.end() > integrated {
			from := max(b.first, integrated)
			jr.beyond = append(jr.beyond, &batch{first: from, entries: b.entries[from-b.first:]})
			jr.flat = append(jr.flat, b.entries[from-b.first:]...)
		}
		jr.end = b.end()
	}
	if len(jr.beyond) > 0 && jr.beyond[0].first > integrated {
		return nil, fmt.Errorf("entries %d..%d are neither in the log nor in the journal (the journal starts at %d): the node will refuse to start",
			integrated, jr.beyond[0].first-1, jr.beyond[0].first)
	}
	return jr, nil
}

// beyondEntry is the journal's entry i, for i at or past the log's integrated size,
// or nil.
func (jr *journalRead) beyondEntry(i uint64) []byte {
	if jr == nil || len(jr.beyond) == 0 || i < jr.beyond[0].first || i-jr.beyond[0].first >= uint64(len(jr.flat)) {
		return nil
	}
	return jr.flat[i-jr.beyond[0].first]
}

// endOr is the index after the journal's last entry, or def without a journal.
func (jr *journalRead) endOr(def uint64) uint64 {
	if jr == nil {
		return def
	}
	return jr.end
}

func (jr *journalRead) entry(i uint64) ([]byte, bool) {
	if jr == nil {
		return nil, false
	}
	e, ok := jr.held[i]
	return e, ok
}

// continueChain checks the entries only the journal holds as the continuation of the
// log's seal chain c, which ends where they begin.
func (jr *journalRead) continueChain(c *chain) error {
	for _, b := range jr.beyond {
		for _, e := range b.entries {
			if err := c.add(e, oar.RecordHash(e)); err != nil {
				var ve *VerifyError
				if errors.As(err, &ve) {
					ve.Reason += " (an entry only the journal holds, not yet in the log)"
				}
				return err
			}
		}
	}
	return nil
}
