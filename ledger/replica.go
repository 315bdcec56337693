package ledger

// Replication keeps a verified, byte-identical copy of another node's audit log, so that
// the history survives the node and a rewrite of it is caught (issue 6).
//
// The copy is advanced in sessions. A session starts when the source's checkpoint
// commits to more entries than the copy and is pinned to that checkpoint (the target).
// Each Update fetches the entry bundles and level-0 hash tiles for the next run of
// entries, verifies them and writes them to temporary files under dir/.replica/staging;
// when the whole range up to the target is verified, the staged files are renamed into
// place and the target checkpoint is written last. A signed checkpoint exists only for
// the sizes the source published, so the copy never shows an intermediate size: with
// back pressure (maxEntries) a session spans several Updates, its verified progress
// kept in memory, and the copy's checkpoint moves only at the end of the session.
// Nothing under the copy's own paths changes until then; a failed Update leaves the
// copy as it was.
//
// Verification recomputes everything it can: every entry must be canonical and hash to
// its leaf in the level-0 tile, the seal chain must continue from the copy's, every hash
// tile at every level must equal what the entries imply, and the tree of the copy's
// entries extended by the new ones must have the target's root — which proves the
// target consistent with the copy's checkpoint.
//
// A fork — the source presenting a history other than the one it served before — is
// any of: a checkpoint smaller than one it served, or of the same size with another
// root; a seal the source signed for its own index that does not continue the copy's
// seal chain; other bytes, matching their hash tile, for entries the copy already
// holds; or new entries, all verified, whose tree together with the copy's does not
// give the target's root. Replication then halts until an operator calls Resume, and
// both checkpoints are kept under dir/.replica/evidence/. Anything a damaged or
// tampered file explains — a size, the framing, an entry that does not hash to its leaf,
// a bad signature, a tile that disagrees with the entries — is an ordinary error naming
// the file and the entry, and the next Update retries. (Records the copy holds pending
// their seal, rewritten by the source, show as such an error — the seal's root does not
// match — since that cannot be told from tampering with the new records.)
//
// A crash during a commit may leave files of the next size beside the copy; they are
// never read at the copy's checkpoint, and the next commit replaces them.

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/internal/files"
	"github.com/sios-project/sios/oar"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
)

// Limits on the files a replication source serves, named in the errors that enforce them.
const (
	// MaxTileSize is the largest hash tile: 256 hashes.
	MaxTileSize = layout.TileWidth * oar.HashSize
	// MaxEntryBundleSize is the largest entry bundle: 256 entries of oar.MaxEntrySize,
	// each after its 2-byte length.
	MaxEntryBundleSize = layout.EntryBundleWidth * (2 + oar.MaxEntrySize)
)

// Paths inside a replica directory that are not part of the copy.
const (
	replicaStateDir = ".replica"
	stagingDirName  = "staging"
	evidenceDirName = "evidence"
	haltFileName    = "halt.json"
)

// Fetcher returns the bytes of one file of the source's log by its tlog-tiles path
// relative to the log directory: "checkpoint", layout.TilePath(...), layout.EntriesPath(...).
// It returns an error wrapping fs.ErrNotExist for a file the source does not have.
// Update calls it from several goroutines at once. A Fetcher reading from the network
// should stop reading past MaxCheckpointSize, MaxTileSize or MaxEntryBundleSize: Update
// refuses anything larger.
type Fetcher func(ctx context.Context, path string) ([]byte, error)

// ErrHalted is returned by Update once a fork was detected, until Resume.
var ErrHalted = errors.New("replication from this source is halted after a fork; an operator must act")

// ForkError reports that the source presented a history other than the one it served
// before. Old is the signed checkpoint of the history the copy holds (nil if the copy
// was empty), New the source's conflicting signed checkpoint.
type ForkError struct {
	Old, New []byte
	Reason   string
}

func (e *ForkError) Error() string {
	if e.Old == nil {
		return fmt.Sprintf("fork: the source's checkpoint at size %d contradicts its own entries: %s", noteSize(e.New), e.Reason)
	}
	return fmt.Sprintf("fork: the source's checkpoints at sizes %d and %d are not one history: %s", noteSize(e.Old), noteSize(e.New), e.Reason)
}

// noteSize reads the size line of a checkpoint already verified, for messages.
func noteSize(raw []byte) uint64 {
	lines := strings.SplitN(string(raw), "\n", 3)
	if len(lines) < 2 {
		return 0
	}
	n, _ := strconv.ParseUint(lines[1], 10, 64)
	return n
}

// UpdateResult says what one Update verified. From and To bound the entries verified by
// this call; the copy's checkpoint reached To when Size() equals To, and otherwise the
// session continues in the next call. Bytes counts everything fetched.
type UpdateResult struct {
	From, To                uint64
	Entries, Records, Seals uint64
	Bytes                   int64
}

// Replica is a verified byte-identical copy of one source node's log in dir (dir holds
// the copy in the same layout as the source's DIR/ledger/log, plus replica state files
// that are not part of the copy under dir/.replica/). Safe for concurrent use (one
// Update at a time). One process at a time may use dir.
type Replica struct {
	dir    string
	nodeID string
	pub    identity.PublicKey

	updMu sync.Mutex // serialises Update and Resume
	sess  *session   // guarded by updMu

	mu   sync.RWMutex
	st   *treeState  // guarded by mu; the copy's verified state, replaced on commit, never changed in place
	cp   *Checkpoint // guarded by mu; nil while the copy has no checkpoint
	halt *ForkError  // guarded by mu
}

// treeState is everything verification needs to extend a log of size entries: the
// compact range of its tree, the bottom rows of its incomplete tile at every tile level
// (rows[L] holds the tree level 8L hashes of tile (L, (size>>8L)/256)), and the seal
// chain.
type treeState struct {
	size  uint64
	rng   *compact.Range
	rows  [][][]byte
	chain chain
}

func newTreeState(nodeID string, pub identity.PublicKey) *treeState {
	return &treeState{rng: rangeFactory.NewEmptyRange(0), chain: *newChain(nodeID, pub, 0)}
}

func (s *treeState) clone() *treeState {
	rng, err := rangeFactory.NewRange(s.rng.Begin(), s.rng.End(), slices.Clone(s.rng.Hashes()))
	if err != nil {
		panic(err) // a range's own hashes always make a range
	}
	c := &treeState{size: s.size, rng: rng, rows: make([][][]byte, len(s.rows)), chain: s.chain}
	for i, r := range s.rows {
		c.rows[i] = slices.Clone(r)
	}
	c.chain.hashes = slices.Clone(s.chain.hashes)
	return c
}

// session is a run of Updates towards one source checkpoint.
type session struct {
	target *Checkpoint
	base   uint64     // the copy's size when the session started
	st     *treeState // verified progress
	linked bool       // a new seal has continued the copy's seal chain
	staged []stagedFile
}

// stagedFile is a verified file written to tmp, to be renamed to path in the copy.
type stagedFile struct{ tmp, path string }

// OpenReplica opens or creates the copy of nodeID's log (keys pub) in dir. An existing
// copy is verified in full once (as Reader.Verify does, allowing records pending their
// seal, and every hash tile besides) and its state kept in memory so that Update only
// verifies what is new. Files of an unfinished session are discarded: the session
// starts again.
func OpenReplica(dir, nodeID string, pub identity.PublicKey) (*Replica, error) {
	state := filepath.Join(dir, replicaStateDir)
	if err := os.MkdirAll(state, 0o700); err != nil {
		return nil, err
	}
	if err := os.RemoveAll(filepath.Join(state, stagingDirName)); err != nil {
		return nil, err
	}
	r := &Replica{dir: dir, nodeID: nodeID, pub: pub, st: newTreeState(nodeID, pub)}
	var err error
	if r.halt, err = loadHalt(state); err != nil {
		return nil, err
	}
	raw, err := newStore(dir).checkpoint()
	if errors.Is(err, fs.ErrNotExist) {
		return r, nil
	}
	if err != nil {
		return nil, err
	}
	cp, err := ParseCheckpoint(raw, nodeID, pub)
	if err != nil {
		return nil, fmt.Errorf("replica %s: %v", dir, err)
	}
	sy := &syncer{pub: pub, fetch: localFetcher(dir), target: cp}
	st := newTreeState(nodeID, pub)
	linked := true
	err = sy.advance(context.Background(), st, &linked, 0)
	if err == nil {
		err = sy.finish(context.Background(), st)
	}
	if err != nil {
		var d *divergence
		if errors.As(err, &d) {
			err = errors.New(d.reason)
		}
		return nil, fmt.Errorf("the copy of %s's audit log in %s does not verify: %w", nodeID, dir, err)
	}
	r.st, r.cp = st, cp
	return r, nil
}

func localFetcher(dir string) Fetcher {
	return func(_ context.Context, path string) ([]byte, error) {
		return os.ReadFile(filepath.Join(dir, filepath.FromSlash(path)))
	}
}

// Size is the number of entries the copy's checkpoint commits to.
func (r *Replica) Size() uint64 {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.st.size
}

// Root is the root hash of the copy's checkpoint, nil when the copy is empty.
func (r *Replica) Root() []byte {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.cp == nil {
		return nil
	}
	return r.cp.Root
}

// Checkpoint is the raw verified checkpoint of the copy, nil when the copy is empty.
func (r *Replica) Checkpoint() []byte {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if r.cp == nil {
		return nil
	}
	return r.cp.Raw
}

// Halted reports whether replication halted after a fork, and the fork.
func (r *Replica) Halted() (bool, *ForkError) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.halt != nil, r.halt
}

// Reader returns a Reader over the copy (for export as a bundle and for audit verify
// and compare). It works at the copy's checkpoint at the time of the call.
func (r *Replica) Reader() (*Reader, error) {
	r.mu.RLock()
	cp := r.cp
	r.mu.RUnlock()
	if cp == nil {
		return nil, ErrEmpty
	}
	// The reader's dir holds no seen-checkpoint: that is a node's record of its own log.
	return &Reader{dir: filepath.Join(r.dir, replicaStateDir), nodeID: r.nodeID, pub: r.pub, store: newStore(r.dir), cp: cp}, nil
}

// Update fetches the source's checkpoint and, if it commits to more entries than the
// copy, verifies and stages the new entries and hash tiles; the copy's checkpoint moves
// once everything up to the source's checkpoint is verified (see the notes at the
// top of this file). maxEntries > 0 bounds the new entries one call takes on, in whole entry
// bundles: bundles are taken while the total stays within maxEntries, and always at
// least one. On a fork it returns a *ForkError and halts; later calls return ErrHalted
// until Resume.
func (r *Replica) Update(ctx context.Context, fetch Fetcher, maxEntries uint64) (*UpdateResult, error) {
	return r.UpdateWith(ctx, fetch, UpdateOptions{MaxEntries: maxEntries})
}

// UpdateOptions are the options of Replica.UpdateWith.
type UpdateOptions struct {
	// MaxEntries > 0 bounds the new entries one call takes on (see Update).
	MaxEntries uint64
	// Progress, if set, is told the entries the copy holds verified — what it held
	// before and what this call verified since — of those the source's checkpoint
	// commits to, and the files and bytes fetched, at most ProgressSteps+2 times per
	// call. A call that finds the copy up to date reports nothing; one that ends the
	// session reports Done == Total last; one that stops short (MaxEntries) reports
	// where it stopped, and the next call goes on from there.
	Progress ProgressFunc
}

// UpdateWith is Update with options.
func (r *Replica) UpdateWith(ctx context.Context, fetch Fetcher, opts UpdateOptions) (*UpdateResult, error) {
	maxEntries := opts.MaxEntries
	r.updMu.Lock()
	defer r.updMu.Unlock()
	r.mu.RLock()
	halted, cur, curCP := r.halt != nil, r.st, r.cp
	r.mu.RUnlock()
	if halted {
		return nil, ErrHalted
	}
	res := &UpdateResult{From: cur.size, To: cur.size}
	raw, err := fetch(ctx, layout.CheckpointPath)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", layout.CheckpointPath, err)
	}
	res.Bytes += int64(len(raw))
	cp, err := ParseCheckpoint(raw, r.nodeID, r.pub)
	if err != nil {
		return nil, fmt.Errorf("the source's %s is refused: %v", layout.CheckpointPath, err)
	}

	// Forks the checkpoints alone prove, against the last one the source served.
	prev := curCP
	if r.sess != nil {
		prev = r.sess.target
	}
	if prev != nil {
		switch {
		case cp.Size < prev.Size:
			return nil, r.forkLocked(prev.Raw, raw, fmt.Sprintf("the source now commits to %d entries, fewer than the %d it committed to before (entries were removed)", cp.Size, prev.Size))
		case cp.Size == prev.Size && !bytes.Equal(cp.Root, prev.Root):
			return nil, r.forkLocked(prev.Raw, raw, fmt.Sprintf("two different roots at size %d (history was rewritten)", cp.Size))
		}
	}
	if r.sess == nil {
		if curCP != nil && cp.Size == curCP.Size {
			return res, nil
		}
		if err := r.resetStaging(); err != nil {
			return nil, err
		}
		r.sess = &session{target: cp, base: cur.size, st: cur.clone()}
	}

	s := r.sess
	sy := &syncer{pub: r.pub, fetch: fetch, target: s.target, base: s.base, stageDir: r.stagingDir()}
	st, linked := s.st.clone(), s.linked
	res.From = st.size
	sy.progress = newProgress(opts.Progress, st.size, s.target.Size)
	err = sy.advance(ctx, st, &linked, maxEntries)
	if err == nil && st.size == s.target.Size {
		err = sy.finish(ctx, st)
	}
	res.Bytes += sy.bytes.Load()
	sy.progress.fetched(uint64(sy.files.Load()), uint64(sy.bytes.Load()))
	if err != nil {
		var d *divergence
		if errors.As(err, &d) {
			var old []byte
			if curCP != nil {
				old = curCP.Raw
			}
			return nil, r.forkLocked(old, s.target.Raw, d.reason)
		}
		if s.st.size == s.base {
			r.sess = nil // no progress to keep: the next call starts from the newest checkpoint
		}
		return nil, err
	}
	res.To, res.Entries = st.size, st.size-s.st.size
	res.Records = st.chain.records - s.st.chain.records
	res.Seals = st.chain.seals - s.st.chain.seals
	s.st, s.linked = st, linked
	s.staged = append(s.staged, sy.staged...)
	if st.size < s.target.Size {
		sy.progress.stop()
		return res, nil
	}
	if err := r.commitLocked(s); err != nil {
		r.sess = nil
		return nil, fmt.Errorf("write the copy in %s: %v", r.dir, err)
	}
	sy.progress.end()
	return res, nil
}

func (r *Replica) stagingDir() string {
	return filepath.Join(r.dir, replicaStateDir, stagingDirName)
}

func (r *Replica) resetStaging() error {
	if err := os.RemoveAll(r.stagingDir()); err != nil {
		return err
	}
	return os.MkdirAll(r.stagingDir(), 0o700)
}

// commitLocked moves the session's staged files into the copy, makes them durable, and
// then writes the target checkpoint, so that a crash never leaves a checkpoint that
// commits to files the copy lacks.
func (r *Replica) commitLocked(s *session) error {
	dirs := map[string]bool{r.dir: true}
	for _, f := range s.staged {
		dst := filepath.Join(r.dir, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.Rename(f.tmp, dst); err != nil {
			return err
		}
		for d := filepath.Dir(dst); len(d) > len(r.dir); d = filepath.Dir(d) {
			dirs[d] = true
		}
	}
	for d := range dirs {
		if err := files.SyncDir(d); err != nil {
			return err
		}
	}
	if err := files.Replace(filepath.Join(r.dir, layout.CheckpointPath), s.target.Raw, 0o644); err != nil {
		return err
	}
	r.mu.Lock()
	r.st, r.cp = s.st, s.target
	r.mu.Unlock()
	r.sess = nil
	// As Tessera does, drop the partial versions of what is now full: readers fall back
	// to the full file, and the copy keeps only files the source still has.
	for _, f := range s.staged {
		if !strings.Contains(f.path, ".p/") {
			os.RemoveAll(filepath.Join(r.dir, filepath.FromSlash(f.path)) + ".p")
		}
	}
	return os.RemoveAll(r.stagingDir())
}

// haltRecord is the persisted halt: dir/.replica/halt.json.
type haltRecord struct {
	Reason   string `json:"reason"`
	Old      string `json:"old_checkpoint,omitempty"`
	New      string `json:"new_checkpoint"`
	Evidence string `json:"evidence"`
}

// forkLocked halts replication: it keeps both checkpoints as evidence and persists the
// halt. The halt holds in memory even if it cannot be written.
func (r *Replica) forkLocked(old, new []byte, reason string) error {
	fe := &ForkError{Old: old, New: new, Reason: reason}
	r.sess = nil
	os.RemoveAll(r.stagingDir())
	r.mu.Lock()
	r.halt = fe
	r.mu.Unlock()
	if err := r.saveHalt(fe); err != nil {
		return errors.Join(fe, fmt.Errorf("record the fork evidence: %v", err))
	}
	return fe
}

func (r *Replica) saveHalt(fe *ForkError) error {
	state := filepath.Join(r.dir, replicaStateDir)
	evDir, everr := r.saveEvidence(fe)
	rel, _ := filepath.Rel(r.dir, evDir)
	data, err := json.MarshalIndent(haltRecord{Reason: fe.Reason, Old: string(fe.Old), New: string(fe.New), Evidence: rel}, "", "  ")
	if err == nil {
		err = files.Replace(filepath.Join(state, haltFileName), data, 0o600)
	}
	return errors.Join(everr, err)
}

// saveEvidence writes both checkpoints of a fork to a new directory under
// dir/.replica/evidence/, never overwriting earlier evidence.
func (r *Replica) saveEvidence(fe *ForkError) (string, error) {
	evDir := filepath.Join(r.dir, replicaStateDir, evidenceDirName)
	if err := os.MkdirAll(evDir, 0o700); err != nil {
		return "", err
	}
	name := fmt.Sprintf("%s-%d-%d", time.Now().UTC().Format("20060102T150405Z"), noteSize(fe.Old), noteSize(fe.New))
	var dir string
	for k := 1; ; k++ {
		dir = filepath.Join(evDir, name)
		if k > 1 {
			dir += "-" + strconv.Itoa(k)
		}
		err := os.Mkdir(dir, 0o700)
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", err
		}
	}
	write := func(file string, data []byte) error {
		f, err := os.OpenFile(filepath.Join(dir, file), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = f.Write(data)
		if serr := f.Sync(); err == nil {
			err = serr
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		return err
	}
	if fe.Old != nil {
		if err := write("old-checkpoint", fe.Old); err != nil {
			return dir, err
		}
	}
	if err := write("new-checkpoint", fe.New); err != nil {
		return dir, err
	}
	if err := files.SyncDir(dir); err != nil {
		return dir, err
	}
	return dir, files.SyncDir(evDir)
}

func loadHalt(state string) (*ForkError, error) {
	p := filepath.Join(state, haltFileName)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var h haltRecord
	if err := json.Unmarshal(data, &h); err != nil {
		return nil, fmt.Errorf("%s: %v", p, err)
	}
	fe := &ForkError{New: []byte(h.New), Reason: h.Reason}
	if h.Old != "" {
		fe.Old = []byte(h.Old)
	}
	return fe, nil
}

// Resume is the operator's action after a fork: it clears the halt. The evidence stays.
func (r *Replica) Resume() error {
	r.updMu.Lock()
	defer r.updMu.Unlock()
	state := filepath.Join(r.dir, replicaStateDir)
	if err := os.Remove(filepath.Join(state, haltFileName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := files.SyncDir(state); err != nil {
		return err
	}
	r.mu.Lock()
	r.halt = nil
	r.mu.Unlock()
	return nil
}

// divergence is a fork found in the source's data, turned into a ForkError by Update.
type divergence struct{ reason string }

func (d *divergence) Error() string { return d.reason }

// syncer verifies the entries and tiles of one source checkpoint (the target) that
// extend a treeState, staging what it fetched when stageDir is set.
type syncer struct {
	pub      identity.PublicKey
	fetch    Fetcher
	target   *Checkpoint
	base     uint64 // size of the copy the session extends
	stageDir string // "" to verify a copy in place
	bytes    atomic.Int64
	files    atomic.Int64 // files fetched, with bytes
	staged   []stagedFile // files of the entries verified so far, in order
	progress *progress    // told the entries verified in order; nil for none
}

// fetchedBundle is one entry bundle and its level-0 tile, fetched, checked against each
// other, parsed and staged ahead of the in-order checks.
type fetchedBundle struct {
	base           uint64
	path, tilePath string
	leaves         [][]byte
	parsed         []*oar.Entry
	errs, sigErrs  []error
	staged         []stagedFile
	err            error
}

// advance verifies the entries after st.size, up to the target or to the bundle where
// limit (if > 0) would be exceeded, and extends st with them.
func (s *syncer) advance(ctx context.Context, st *treeState, linked *bool, limit uint64) error {
	size := s.target.Size
	if st.size >= size {
		return nil
	}
	first, last := st.size/layout.EntryBundleWidth, st.size/layout.EntryBundleWidth
	for {
		end := min(size, (last+1)*layout.EntryBundleWidth)
		if last > first && limit > 0 && end-st.size > limit {
			break
		}
		last++
		if end == size {
			break
		}
	}
	from := st.size
	workers := max(4, runtime.GOMAXPROCS(0))
	for b := range inOrder(ctx, last-first, workers, func(ctx context.Context, i uint64) *fetchedBundle {
		return s.loadBundle(ctx, first+i, from)
	}) {
		if b.err != nil {
			return b.err
		}
		if err := s.addBundle(ctx, st, linked, b); err != nil {
			return err
		}
		if s.progress != nil {
			s.progress.fetched(uint64(s.files.Load()), uint64(s.bytes.Load()))
			s.progress.advance(st.size)
		}
	}
	return ctx.Err()
}

// get fetches the resource of partial width p (0: full). A partial one the source no
// longer has (Tessera removes partials once the full resource exists) is taken from the
// full resource, which starts with the same bytes: exact is then false.
func (s *syncer) get(ctx context.Context, path func(p uint8) string, p uint8) (raw []byte, exact bool, err error) {
	raw, err = s.fetch(ctx, path(p))
	exact = true
	if err != nil && p > 0 && errors.Is(err, fs.ErrNotExist) {
		if full, ferr := s.fetch(ctx, path(0)); ferr == nil {
			raw, exact, err = full, false, nil
		}
	}
	if err != nil {
		return nil, false, fmt.Errorf("fetch %s: %w", path(p), err)
	}
	s.bytes.Add(int64(len(raw)))
	s.files.Add(1)
	return raw, exact, nil
}

// tile fetches hash tile (level, idx) at its width in the target and returns its bytes,
// refusing a tile of the wrong size.
func (s *syncer) tile(ctx context.Context, level, idx uint64) (path string, data []byte, err error) {
	p := layout.PartialTileSize(level, idx, s.target.Size)
	path = layout.TilePath(level, idx, p)
	raw, exact, err := s.get(ctx, func(p uint8) string { return layout.TilePath(level, idx, p) }, p)
	if err != nil {
		return path, nil, err
	}
	if len(raw) > MaxTileSize {
		return path, nil, fmt.Errorf("%s: hash tile is %d bytes, more than %d (MaxTileSize)", path, len(raw), MaxTileSize)
	}
	width := int(p)
	if width == 0 {
		width = layout.TileWidth
	}
	want := width * oar.HashSize
	if !exact {
		want = MaxTileSize
	}
	if len(raw) != want {
		return path, nil, fmt.Errorf("%s: hash tile is %d bytes, want %d (%d hashes)", path, len(raw), want, want/oar.HashSize)
	}
	return path, raw[:width*oar.HashSize], nil
}

// stage writes data to a temporary file for path, durably.
func (s *syncer) stage(path string, data []byte) (stagedFile, error) {
	f := stagedFile{tmp: filepath.Join(s.stageDir, strings.ReplaceAll(path, "/", "_")), path: path}
	if err := files.Write(f.tmp, data, 0o644); err != nil {
		return f, fmt.Errorf("stage %s: %v", path, err)
	}
	return f, nil
}

// loadBundle fetches entry bundle idx and its level-0 tile at their width in the target,
// checks the entries against the tile, parses the entries from index from on, checks
// seal signatures and stages both files.
func (s *syncer) loadBundle(ctx context.Context, idx, from uint64) *fetchedBundle {
	size := s.target.Size
	width := bundleWidth(idx, size)
	p := layout.PartialTileSize(0, idx, size)
	b := &fetchedBundle{base: idx * layout.EntryBundleWidth, path: layout.EntriesPath(idx, p)}
	bad := func(format string, a ...any) *fetchedBundle {
		b.err = fmt.Errorf("%s: "+format, append([]any{b.path}, a...)...)
		return b
	}
	raw, exact, err := s.get(ctx, func(p uint8) string { return layout.EntriesPath(idx, p) }, p)
	if err != nil {
		b.err = err
		return b
	}
	if limit := int(width) * (2 + oar.MaxEntrySize); exact && len(raw) > limit {
		return bad("entry bundle is %d bytes, more than %d entries can take (%d)", len(raw), width, limit)
	} else if len(raw) > MaxEntryBundleSize {
		return bad("entry bundle is %d bytes, more than %d (MaxEntryBundleSize)", len(raw), MaxEntryBundleSize)
	}
	var eb api.EntryBundle
	if err := eb.UnmarshalText(raw); err != nil {
		return bad("entry bundle is truncated or malformed: %v", err)
	}
	want := width
	if !exact {
		want = layout.EntryBundleWidth
	}
	if got := uint64(len(eb.Entries)); got != want {
		return bad("entry bundle holds %d entries, want %d", got, want)
	}
	entries := eb.Entries[:width]
	n := 0
	for _, e := range entries {
		n += 2 + len(e)
	}
	raw = raw[:n]

	var tile []byte
	b.tilePath, tile, b.err = s.tile(ctx, 0, idx)
	if b.err != nil {
		return b
	}
	b.leaves = make([][]byte, width)
	b.parsed = make([]*oar.Entry, width)
	b.errs = make([]error, width)
	b.sigErrs = make([]error, width)
	for k, e := range entries {
		b.leaves[k] = oar.RecordHash(e)
		if !bytes.Equal(b.leaves[k], tile[k*oar.HashSize:(k+1)*oar.HashSize]) {
			b.err = &VerifyError{Index: b.base + uint64(k),
				Reason: fmt.Sprintf("the entry in %s does not hash to its leaf in %s (the entry or the hash tile was altered)", b.path, b.tilePath)}
			return b
		}
		if b.base+uint64(k) < from {
			continue // held by the copy already: compared by hash in addBundle
		}
		b.parsed[k], b.errs[k] = oar.Parse(e)
		if e := b.parsed[k]; e != nil && e.Seal != nil {
			b.sigErrs[k] = e.Seal.VerifySignature(s.pub)
		}
	}
	if s.stageDir != "" {
		for _, f := range []struct {
			path string
			data []byte
		}{{b.path, raw}, {b.tilePath, tile}} {
			sf, err := s.stage(f.path, f.data)
			if err != nil {
				b.err = err
				return b
			}
			b.staged = append(b.staged, sf)
		}
	}
	return b
}

// addBundle runs the in-order checks of a fetched bundle and extends st with its new
// entries.
func (s *syncer) addBundle(ctx context.Context, st *treeState, linked *bool, b *fetchedBundle) error {
	held := st.size - b.base // entries of this bundle the state holds already
	if held > 0 {
		if len(st.rows) == 0 || uint64(len(st.rows[0])) != held {
			return fmt.Errorf("%s: internal error: the state holds %d leaves of this bundle", b.path, held)
		}
		for k := range held {
			if !bytes.Equal(b.leaves[k], st.rows[0][k]) {
				return &divergence{fmt.Sprintf("entry %d: the source now serves other bytes in %s for an entry the copy already holds (history was rewritten)", b.base+k, b.path)}
			}
		}
	}
	for k := held; k < uint64(len(b.leaves)); k++ {
		i := b.base + k
		e, leaf := b.parsed[k], b.leaves[k]
		isSeal := b.errs[k] == nil && e.Kind == oar.KindSeal
		if isSeal && !*linked && s.base > 0 && b.sigErrs[k] == nil {
			if reason := divergentSeal(&st.chain, e.Seal, i); reason != "" {
				return &divergence{reason}
			}
		}
		if err := st.chain.addParsed(e, b.errs[k], leaf, b.sigErrs[k]); err != nil {
			return fmt.Errorf("%s: %w", b.path, err)
		}
		if isSeal {
			*linked = true
		}
		if err := st.rng.Append(leaf, nil); err != nil {
			return err
		}
		st.size++
		if err := s.addNode(ctx, st, 0, leaf); err != nil {
			return err
		}
	}
	s.staged = append(s.staged, b.staged...)
	return nil
}

// divergentSeal returns why seal, which the source signed for index i, contradicts the
// copy's seal chain c, or "" if it does not. Only a seal at its own index proves a fork:
// one moved elsewhere is an ordinary error.
func divergentSeal(c *chain, seal *oar.Seal, i uint64) string {
	if seal.Node != c.nodeID || seal.First+seal.Count != i {
		return ""
	}
	switch {
	case seal.First != c.batchFirst:
		return fmt.Sprintf("entry %d: the source's seal %d covers records from %d, but the copy's records after its last seal start at %d (history was rewritten)", i, seal.Seq, seal.First, c.batchFirst)
	case c.known && seal.Seq != c.seq:
		return fmt.Sprintf("entry %d: the source's seal is number %d, but the copy's seal chain continues with %d (history was rewritten)", i, seal.Seq, c.seq)
	case c.known && seal.Prev != hex.EncodeToString(c.prev):
		return fmt.Sprintf("entry %d: the source's seal %d does not link to the copy's last seal (history was rewritten)", i, seal.Seq)
	}
	return ""
}

// addNode adds hash h at tree level 8*level to st's tile rows. A row that fills up is a
// full tile: above level 0 (whose tiles loadBundle checks) it is compared with the
// source's tile, and its root goes up to the next tile level.
func (s *syncer) addNode(ctx context.Context, st *treeState, level int, h []byte) error {
	for len(st.rows) <= level {
		st.rows = append(st.rows, nil)
	}
	st.rows[level] = append(st.rows[level], h)
	if len(st.rows[level]) < layout.TileWidth {
		return nil
	}
	row := st.rows[level]
	st.rows[level] = nil
	if level > 0 {
		idx := (st.size>>(8*level))/layout.TileWidth - 1
		if err := s.checkTile(ctx, uint64(level), idx, row); err != nil {
			return err
		}
	}
	return s.addNode(ctx, st, level+1, subtreeRoot(row))
}

// checkTile compares hash tile (level, idx) of the target with the hashes the entries
// imply, and stages it.
func (s *syncer) checkTile(ctx context.Context, level, idx uint64, nodes [][]byte) error {
	path, data, err := s.tile(ctx, level, idx)
	if err != nil {
		return err
	}
	for k, h := range nodes {
		if !bytes.Equal(data[k*oar.HashSize:(k+1)*oar.HashSize], h) {
			span := uint64(1) << (8 * level)
			first := (idx*layout.TileWidth + uint64(k)) * span
			return fmt.Errorf("%s: hash %d is not what entries %d..%d imply (the hash tile was altered)", path, k, first, first+span-1)
		}
	}
	if s.stageDir != "" {
		f, err := s.stage(path, data)
		if err != nil {
			return err
		}
		s.staged = append(s.staged, f)
	}
	return nil
}

// finish checks the partial tiles above level 0 that changed since the copy's size and
// the tree root against the target's.
func (s *syncer) finish(ctx context.Context, st *treeState) error {
	size := s.target.Size
	for level := 1; level < len(st.rows); level++ {
		shift := uint(8 * level)
		if len(st.rows[level]) == 0 || size>>shift == s.base>>shift {
			continue
		}
		if err := s.checkTile(ctx, uint64(level), (size>>shift)/layout.TileWidth, st.rows[level]); err != nil {
			return err
		}
	}
	root := rfc6962.DefaultHasher.EmptyRoot()
	if size > 0 {
		var err error
		if root, err = st.rng.GetRootHash(nil); err != nil {
			return err
		}
	}
	if !bytes.Equal(root, s.target.Root) {
		return &divergence{fmt.Sprintf("the tree of entries 0..%d does not have the root of the source's checkpoint at size %d", size-1, size)}
	}
	return nil
}

// subtreeRoot is the root of the perfect tree over hashes (a power of two of them).
func subtreeRoot(hashes [][]byte) []byte {
	row := slices.Clone(hashes)
	for len(row) > 1 {
		for i := 0; i < len(row); i += 2 {
			row[i/2] = oar.HashChildren(row[i], row[i+1])
		}
		row = row[:len(row)/2]
	}
	return row[0]
}

// inOrder runs work(ctx, i) for i in [0, n) on workers goroutines, up to 4×workers
// ahead, and yields the results in order. Breaking out of the loop stops the work.
func inOrder[T any](ctx context.Context, n uint64, workers int, work func(context.Context, uint64) T) iter.Seq[T] {
	return func(yield func(T) bool) {
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		defer wg.Wait()
		defer cancel()
		futures := make(chan chan T, 4*workers)
		jobs := make(chan func())
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
			for i := range n {
				f := make(chan T, 1)
				select {
				case futures <- f:
				case <-ctx.Done():
					return
				}
				select {
				case jobs <- func() { f <- work(ctx, i) }:
				case <-ctx.Done():
					return
				}
			}
		}()
		for f := range futures {
			select {
			case v := <-f:
				if !yield(v) {
					return
				}
			case <-ctx.Done():
				return
			}
		}
	}
}
