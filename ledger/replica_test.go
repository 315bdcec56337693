package ledger

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/oar"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
	"golang.org/x/mod/sumdb/note"
)

// growLog appends n records to the ledger in dir, creating it if needed, and closes it.
func growLog(t testing.TB, dir string, node *identity.Node, n int) {
	t.Helper()
	l, err := Open(context.Background(), dir, node, Options{CheckpointInterval: 100 * time.Millisecond, SealMaxRecords: 40})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, n, 32)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// fetchLog records the paths a Fetcher was asked for.
type fetchLog struct {
	mu    sync.Mutex
	paths []string
}

func (f *fetchLog) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.paths
	f.paths = nil
	slices.Sort(p)
	return p
}

// serve is a Fetcher over the log of the ledger in dir; alter, if set, may change what
// it returns.
func serve(dir string, log *fetchLog, alter func(path string, data []byte) []byte) Fetcher {
	return func(_ context.Context, path string) ([]byte, error) {
		if log != nil {
			log.mu.Lock()
			log.paths = append(log.paths, path)
			log.mu.Unlock()
		}
		data, err := os.ReadFile(filepath.Join(dir, logDirName, filepath.FromSlash(path)))
		if err == nil && alter != nil {
			data = alter(path, data)
		}
		return data, err
	}
}

// copyFiles maps each file of a replica's copy (not its state) to its contents.
func copyFiles(t testing.TB, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			if rel == replicaStateDir {
				return filepath.SkipDir
			}
			return nil
		}
		data, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// checkIdentical checks that every file of the copy is byte-identical to the source's,
// that the copy is at the source's checkpoint, and that it verifies.
func checkIdentical(t *testing.T, r *Replica, src string) {
	t.Helper()
	checkSameFiles(t, r, src)
	rd, err := r.Reader()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rd.Verify(context.Background(), true); err != nil {
		t.Fatalf("the copy does not verify: %v", err)
	}
}

// checkSameFiles checks that every file of the copy is byte-identical to the source's,
// and that the copy is at the source's checkpoint.
func checkSameFiles(t *testing.T, r *Replica, src string) {
	t.Helper()
	files := copyFiles(t, r.dir)
	for path, data := range files {
		want, err := os.ReadFile(filepath.Join(src, logDirName, filepath.FromSlash(path)))
		if err != nil {
			t.Fatalf("the copy has %s, the source does not: %v", path, err)
		}
		if string(want) != data {
			t.Fatalf("%s differs between the copy and the source", path)
		}
	}
	if want := readTB(t, filepath.Join(src, logDirName, layout.CheckpointPath)); !bytes.Equal(r.Checkpoint(), want) {
		t.Fatalf("the copy is at checkpoint size %d, the source at %d", noteSize(r.Checkpoint()), noteSize(want))
	}
}

func sourceSize(t testing.TB, src string) uint64 {
	t.Helper()
	return noteSize(readTB(t, filepath.Join(src, logDirName, layout.CheckpointPath)))
}

func openReplica(t testing.TB, dir string, node *identity.Node) *Replica {
	t.Helper()
	r, err := OpenReplica(dir, node.ID(), node.Public())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestReplicaCatchesUpAndFollows: an empty replica catches up with a source of 1,000
// records, then follows it fetching only new files, also after a restart.
func TestReplicaCatchesUpAndFollows(t *testing.T) {
	ctx := context.Background()
	node := newTestNode(t)
	src := t.TempDir()
	growLog(t, src, node, 1000)
	size := sourceSize(t, src)

	dir := t.TempDir()
	r := openReplica(t, dir, node)
	if r.Size() != 0 || r.Checkpoint() != nil || r.Root() != nil {
		t.Fatalf("a new replica is at size %d", r.Size())
	}
	if _, err := r.Reader(); !errors.Is(err, ErrEmpty) {
		t.Fatalf("Reader of an empty replica: %v, want ErrEmpty", err)
	}
	// Readers of the replica's state run beside the update.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			cp := r.Checkpoint()
			if n := r.Size(); cp != nil && n < noteSize(cp) {
				t.Errorf("size %d after a checkpoint at %d", n, noteSize(cp))
			}
			r.Root()
			r.Halted()
			r.Reader()
		}
	}()
	res, err := r.Update(ctx, serve(src, nil, nil), 0)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if res.From != 0 || res.To != size || res.Entries != size || res.Records != 1000 || res.Seals != size-1000 || res.Bytes == 0 {
		t.Fatalf("update: %+v, want 0..%d with 1000 records", res, size)
	}
	if r.Size() != size {
		t.Fatalf("replica at %d, want %d", r.Size(), size)
	}
	checkIdentical(t, r, src)

	// Nothing new: only the checkpoint is fetched.
	var log fetchLog
	if res, err := r.Update(ctx, serve(src, &log, nil), 0); err != nil || res.Entries != 0 {
		t.Fatalf("update with nothing new: %+v, %v", res, err)
	}
	if got := log.take(); !slices.Equal(got, []string{layout.CheckpointPath}) {
		t.Fatalf("update with nothing new fetched %v", got)
	}

	// Incremental: only files the copy does not have are fetched.
	for round, reopen := range []bool{false, true} {
		growLog(t, src, node, 300)
		if reopen { // a restarted replica verifies its copy and resumes where it stopped
			r = openReplica(t, dir, node)
			if r.Size() != size {
				t.Fatalf("reopened replica at %d, want %d", r.Size(), size)
			}
		}
		before := copyFiles(t, dir)
		res, err := r.Update(ctx, serve(src, &log, nil), 0)
		if err != nil {
			t.Fatal(err)
		}
		if res.From != size || res.Records != 300 {
			t.Fatalf("round %d: %+v, want 300 records from %d", round, res, size)
		}
		for _, p := range log.take() {
			if _, ok := before[p]; ok && p != layout.CheckpointPath {
				t.Fatalf("round %d refetched %s, which the copy had", round, p)
			}
		}
		size = sourceSize(t, src)
		checkIdentical(t, r, src)
	}
}

// TestReplicaBackPressure: bounded updates advance a session in whole bundles; the
// copy moves only when the session reaches the checkpoint it started with.
func TestReplicaBackPressure(t *testing.T) {
	ctx := context.Background()
	node := newTestNode(t)
	src := t.TempDir()
	growLog(t, src, node, 1000)
	target := sourceSize(t, src)

	r := openReplica(t, t.TempDir(), node)
	const max = 300 // a call takes whole bundles up to 300 entries, and at least one
	res, err := r.Update(ctx, serve(src, nil, nil), max)
	if err != nil {
		t.Fatal(err)
	}
	if res.From != 0 || res.To != 256 || res.Entries != 256 {
		t.Fatalf("first bounded update: %+v, want entries 0..256", res)
	}
	// No checkpoint exists for size 256: the copy stays as it was.
	if r.Size() != 0 || r.Checkpoint() != nil || len(copyFiles(t, r.dir)) != 0 {
		t.Fatalf("the copy changed before the session reached a checkpoint: size %d, %d files", r.Size(), len(copyFiles(t, r.dir)))
	}

	// The source moves on; the session still ends at the checkpoint it started with.
	growLog(t, src, node, 200)
	calls := 1
	for r.Size() < target {
		from := res.To
		if res, err = r.Update(ctx, serve(src, nil, nil), max); err != nil {
			t.Fatal(err)
		}
		calls++
		if res.From != from || res.Entries == 0 || res.Entries > max || (res.To%256 != 0 && res.To != target) {
			t.Fatalf("call %d: %+v", calls, res)
		}
		if r.Size() != 0 && r.Size() != target {
			t.Fatalf("the copy is at %d, neither empty nor at the session's checkpoint %d", r.Size(), target)
		}
	}
	if calls < int((target+max-1)/max) {
		t.Fatalf("%d calls to reach %d entries, %d at a time", calls, target, max)
	}
	rd, err := r.Reader()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rd.Verify(ctx, true); err != nil {
		t.Fatal(err)
	}
	// The next session takes the rest.
	for {
		res, err := r.Update(ctx, serve(src, nil, nil), 0)
		if err != nil {
			t.Fatal(err)
		}
		if res.Entries == 0 {
			break
		}
	}
	checkIdentical(t, r, src)
}

// tamperFixture is a replica at an earlier size of its source, ready to be copied.
type tamperFixture struct {
	node     *identity.Node
	src      string // the source ledger
	replica  string // a replica directory at size from
	from, to uint64
	fetched  []string // what a clean update fetches
}

func newTamperFixture(t testing.TB, first, more int) *tamperFixture {
	t.Helper()
	f := &tamperFixture{node: newTestNode(t), src: t.TempDir(), replica: t.TempDir()}
	growLog(t, f.src, f.node, first)
	r := openReplica(t, f.replica, f.node)
	if _, err := r.Update(context.Background(), serve(f.src, nil, nil), 0); err != nil {
		t.Fatal(err)
	}
	growLog(t, f.src, f.node, more)
	f.from, f.to = r.Size(), sourceSize(t, f.src)
	var log fetchLog
	clean := f.copy(t)
	if _, err := clean.Update(context.Background(), serve(f.src, &log, nil), 0); err != nil {
		t.Fatal(err)
	}
	f.fetched = log.take()
	return f
}

// copy opens a fresh copy of the fixture's replica.
func (f *tamperFixture) copy(t testing.TB) *Replica {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "replica")
	if err := os.CopyFS(dir, os.DirFS(f.replica)); err != nil {
		t.Fatal(err)
	}
	return openReplica(t, dir, f.node)
}

func parseBundle(t testing.TB, raw []byte) [][]byte {
	t.Helper()
	var b api.EntryBundle
	if err := b.UnmarshalText(raw); err != nil {
		t.Fatal(err)
	}
	return b.Entries
}

func encodeBundle(entries [][]byte) []byte {
	var buf bytes.Buffer
	for _, e := range entries {
		binary.Write(&buf, binary.BigEndian, uint16(len(e)))
		buf.Write(e)
	}
	return buf.Bytes()
}

// forgeCheckpoint signs a checkpoint of nodeID's log with signer's keys.
func forgeCheckpoint(t testing.TB, signer *identity.Node, nodeID string, size uint64, root []byte) []byte {
	t.Helper()
	ed, ml := signer.Key.NoteSigners(Origin(nodeID))
	text := fmt.Sprintf("%s\n%d\n%s\n", Origin(nodeID), size, base64.StdEncoding.EncodeToString(root))
	msg, err := note.Sign(&note.Note{Text: text}, ed, ml)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// TestReplicaRefusesTampering: a damaged or tampered file is refused with a reason
// naming it, the copy stays as it was, and replication goes on.
func TestReplicaRefusesTampering(t *testing.T) {
	f := newTamperFixture(t, 500, 500)
	// A bundle wholly beyond the copy, its level-0 tile, the last (partial) bundle and
	// the level-1 tile, all of which the update fetches.
	idx := f.from/256 + 1
	full := layout.EntriesPath(idx, 0)
	tile0 := layout.TilePath(0, idx, 0)
	lastIdx := (f.to - 1) / 256
	last := layout.EntriesPath(lastIdx, layout.PartialTileSize(0, lastIdx, f.to))
	lastTile := layout.TilePath(0, lastIdx, layout.PartialTileSize(0, lastIdx, f.to))
	tile1 := layout.TilePath(1, 0, layout.PartialTileSize(1, 0, f.to))
	top := f.to/256 - 1 // the last hash of the level-1 tile
	for _, p := range []string{full, tile0, last, tile1} {
		if !slices.Contains(f.fetched, p) {
			t.Fatalf("a clean update does not fetch %s: %v", p, f.fetched)
		}
	}
	src := readEntries(t, f.src, full)
	seal := slices.IndexFunc(src, func(e []byte) bool { p, _ := oar.Parse(e); return p.Kind == oar.KindSeal })
	record := slices.IndexFunc(src, func(e []byte) bool { p, _ := oar.Parse(e); return p.Kind == oar.KindRecord })
	// replaceEntry changes entry k of the bundle and its leaf in the tile, so that only
	// the entry's own checks can catch it.
	replaceEntry := func(k int, change func([]byte) []byte) func(string, []byte) []byte {
		return func(path string, data []byte) []byte {
			switch path {
			case full:
				es := parseBundle(t, data)
				es[k] = change(es[k])
				return encodeBundle(es)
			case tile0:
				b := parseBundle(t, readTB(t, filepath.Join(f.src, logDirName, full)))
				copy(data[32*k:], oar.RecordHash(change(b[k])))
			}
			return data
		}
	}
	other := newTestNode(t)
	cases := []struct {
		name  string
		alter func(path string, data []byte) []byte
		want  []string
	}{
		{"flipped byte in an entry", func(path string, data []byte) []byte {
			if path == full {
				data[2+20] ^= 1
			}
			return data
		}, []string{fmt.Sprintf("entry %d:", idx*256), full, tile0}},
		{"flipped byte in a level-0 tile", func(path string, data []byte) []byte {
			if path == tile0 {
				data[32*5+3] ^= 1
			}
			return data
		}, []string{fmt.Sprintf("entry %d:", idx*256+5), tile0, "altered"}},
		{"flipped byte in a level-1 tile", func(path string, data []byte) []byte {
			if path == tile1 {
				data[32*top] ^= 1
			}
			return data
		}, []string{tile1, fmt.Sprintf("hash %d is not what entries %d..%d imply", top, top*256, top*256+255)}},
		{"truncated bundle", func(path string, data []byte) []byte {
			if path == last {
				return data[:len(data)-3]
			}
			return data
		}, []string{last, "truncated"}},
		{"bundle with an extra entry", func(path string, data []byte) []byte {
			if path == last {
				es := parseBundle(t, data)
				return encodeBundle(append(es, es[0]))
			}
			return data
		}, []string{last, "holds"}},
		{"oversized bundle", func(path string, data []byte) []byte {
			if path == last {
				return append(data, make([]byte, MaxEntryBundleSize)...)
			}
			return data
		}, []string{last, "more than"}},
		{"oversized tile", func(path string, data []byte) []byte {
			if path == tile0 {
				return append(data, make([]byte, MaxTileSize)...)
			}
			return data
		}, []string{tile0, "more than 8192"}},
		{"tile of the wrong partial width", func(path string, data []byte) []byte {
			if path == lastTile {
				return append(data, data[:32]...)
			}
			return data
		}, []string{lastTile, "want"}},
		{"missing bundle", nil, []string{full, "does not exist"}},
		{"entry that does not parse", replaceEntry(record, func([]byte) []byte { return []byte(`{"v":"oar/1"}`) }),
			[]string{fmt.Sprintf("entry %d:", idx*256+uint64(record)), full}},
		{"bad seal signature", replaceEntry(seal, func(e []byte) []byte {
			e = bytes.Clone(e)
			k := bytes.Index(e, []byte(`"ed25519":"`)) + len(`"ed25519":"`)
			if e[k] == 'A' {
				e[k] = 'B'
			} else {
				e[k] = 'A'
			}
			return e
		}), []string{fmt.Sprintf("entry %d:", idx*256+uint64(seal)), full, "signature"}},
		{"checkpoint signed by another key", func(path string, data []byte) []byte {
			if path == layout.CheckpointPath {
				cp, err := ParseCheckpoint(data, f.node.ID(), f.node.Public())
				if err != nil {
					t.Fatal(err)
				}
				return forgeCheckpoint(t, other, f.node.ID(), cp.Size, cp.Root)
			}
			return data
		}, []string{"checkpoint", "refused"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := f.copy(t)
			before := copyFiles(t, r.dir)
			fetch := serve(f.src, nil, tc.alter)
			if tc.alter == nil {
				fetch = func(ctx context.Context, path string) ([]byte, error) {
					if path == full {
						return nil, fmt.Errorf("open %s: %w", path, fs.ErrNotExist)
					}
					return serve(f.src, nil, nil)(ctx, path)
				}
			}
			_, err := r.Update(context.Background(), fetch, 0)
			if err == nil {
				t.Fatal("update accepted")
			}
			t.Logf("refused: %v", err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("error %q does not mention %q", err, w)
				}
			}
			var fe *ForkError
			if errors.As(err, &fe) {
				t.Fatalf("tampering taken for a fork: %v", err)
			}
			if !maps.Equal(before, copyFiles(t, r.dir)) || r.Size() != f.from {
				t.Fatal("the copy changed")
			}
			// The replica is not halted: the honest source is accepted next.
			if _, err := r.Update(context.Background(), serve(f.src, nil, nil), 0); err != nil {
				t.Fatalf("update after the refusal: %v", err)
			}
			checkSameFiles(t, r, f.src)
		})
	}
}

func readEntries(t testing.TB, src, path string) [][]byte {
	t.Helper()
	return parseBundle(t, readTB(t, filepath.Join(src, logDirName, path)))
}

// TestReplicaHaltsOnFork: a source that diverges from, or goes back on, what it served
// halts replication with both checkpoints kept, across restarts, until Resume.
func TestReplicaHaltsOnFork(t *testing.T) {
	ctx := context.Background()
	node := newTestNode(t)
	a := t.TempDir()
	growLog(t, a, node, 300)
	old := copyDir(t, a) // the source as it was at 300 records
	b := copyDir(t, a)   // the same key goes on to write two histories
	growLog(t, a, node, 200)
	growLog(t, b, node, 300)

	dir := t.TempDir()
	r := openReplica(t, dir, node)
	if _, err := r.Update(ctx, serve(a, nil, nil), 0); err != nil {
		t.Fatal(err)
	}
	sizeA := r.Size()
	before := copyFiles(t, dir)

	cases := []struct {
		name, src, want string
	}{
		{"diverging history", b, "history was rewritten"},
		{"source gone backwards", old, "entries were removed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.Update(ctx, serve(tc.src, nil, nil), 0)
			var fe *ForkError
			if !errors.As(err, &fe) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("update from a forked source: %v, want a ForkError saying %q", err, tc.want)
			}
			t.Logf("halted: %v", err)
			newCP := readTB(t, filepath.Join(tc.src, logDirName, layout.CheckpointPath))
			if !bytes.Equal(fe.Old, r.Checkpoint()) || !bytes.Equal(fe.New, newCP) {
				t.Fatal("the ForkError does not carry both checkpoints")
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("sizes %d and %d", sizeA, noteSize(newCP))) {
				t.Fatalf("error %q does not name both sizes", err)
			}
			if !maps.Equal(before, copyFiles(t, dir)) {
				t.Fatal("the copy changed")
			}
			// Both checkpoints are kept as evidence.
			evidence, _ := filepath.Glob(filepath.Join(dir, replicaStateDir, evidenceDirName, "*", "*-checkpoint"))
			var found [2]bool
			for _, p := range evidence {
				data := readTB(t, p)
				found[0] = found[0] || bytes.Equal(data, fe.Old) && strings.HasSuffix(p, "old-checkpoint")
				found[1] = found[1] || bytes.Equal(data, fe.New) && strings.HasSuffix(p, "new-checkpoint")
			}
			if !found[0] || !found[1] {
				t.Fatalf("evidence %v lacks a checkpoint", evidence)
			}
			// Halted, also after a restart, until an operator resumes.
			if _, err := r.Update(ctx, serve(a, nil, nil), 0); !errors.Is(err, ErrHalted) {
				t.Fatalf("update after a fork: %v, want ErrHalted", err)
			}
			r = openReplica(t, dir, node)
			if h, fe2 := r.Halted(); !h || fe2.Reason != fe.Reason || !bytes.Equal(fe2.New, fe.New) {
				t.Fatalf("reopened replica: halted %v, %v", h, fe2)
			}
			if _, err := r.Update(ctx, serve(a, nil, nil), 0); !errors.Is(err, ErrHalted) {
				t.Fatalf("update after reopening: %v, want ErrHalted", err)
			}
			if err := r.Resume(); err != nil {
				t.Fatal(err)
			}
			if h, _ := r.Halted(); h {
				t.Fatal("still halted after Resume")
			}
			if _, err := r.Update(ctx, serve(a, nil, nil), 0); err != nil {
				t.Fatalf("update from the honest source after Resume: %v", err)
			}
			if h, _ := openReplica(t, dir, node).Halted(); h {
				t.Fatal("halted again after reopening")
			}
		})
	}
	evidence, _ := filepath.Glob(filepath.Join(dir, replicaStateDir, evidenceDirName, "*"))
	if len(evidence) != len(cases) {
		t.Fatalf("%d evidence directories, want %d (evidence is never overwritten)", len(evidence), len(cases))
	}
	checkIdentical(t, r, a)
}

// TestReplicaForkFromRoot: a checkpoint the source signed over another tree than its
// entries make is a fork, also for an empty copy.
func TestReplicaForkFromRoot(t *testing.T) {
	ctx := context.Background()
	node := newTestNode(t)
	src := t.TempDir()
	growLog(t, src, node, 100)
	old := copyDir(t, src)
	growLog(t, src, node, 100)
	forged := forgeCheckpoint(t, node, node.ID(), sourceSize(t, src), make([]byte, 32))
	fetch := serve(src, nil, func(path string, data []byte) []byte {
		if path == layout.CheckpointPath {
			return forged
		}
		return data
	})
	for _, from := range []string{"", old} {
		r := openReplica(t, t.TempDir(), node)
		if from != "" {
			if _, err := r.Update(ctx, serve(from, nil, nil), 0); err != nil {
				t.Fatal(err)
			}
		}
		before := copyFiles(t, r.dir)
		_, err := r.Update(ctx, fetch, 0)
		var fe *ForkError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), "does not have the root of the source's checkpoint") {
			t.Fatalf("update to a checkpoint over another tree: %v, want a ForkError", err)
		}
		t.Logf("halted: %v", err)
		if !bytes.Equal(fe.Old, r.Checkpoint()) || !bytes.Equal(fe.New, forged) || !maps.Equal(before, copyFiles(t, r.dir)) {
			t.Fatal("wrong evidence, or the copy changed")
		}
	}
}

// TestReplicaTakesPartialsFromFullFiles: a source that grew past the checkpoint an
// update works towards may have removed the partial tiles and bundles of that size once
// the full ones existed; the copy then takes their bytes from the full files.
func TestReplicaTakesPartialsFromFullFiles(t *testing.T) {
	node := newTestNode(t)
	src := t.TempDir()
	growLog(t, src, node, 300)
	old := copyDir(t, src)
	growLog(t, src, node, 400)
	var log fetchLog
	fetch := serve(src, &log, nil)
	r := openReplica(t, t.TempDir(), node)
	_, err := r.Update(context.Background(), func(ctx context.Context, path string) ([]byte, error) {
		if path == layout.CheckpointPath {
			return readTB(t, filepath.Join(old, logDirName, path)), nil
		}
		if i := strings.Index(path, ".p/"); i >= 0 {
			if _, err := os.Stat(filepath.Join(src, logDirName, filepath.FromSlash(path[:i]))); err == nil {
				return nil, fmt.Errorf("open %s: %w", path, fs.ErrNotExist) // removed once full
			}
		}
		return fetch(ctx, path)
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	fromFull := 0
	for _, p := range log.take() {
		if !strings.Contains(p, ".p/") && p != layout.CheckpointPath {
			if _, err := os.Stat(filepath.Join(old, logDirName, filepath.FromSlash(p))); err != nil {
				fromFull++ // a full file the old source did not have yet
			}
		}
	}
	if fromFull == 0 {
		t.Fatal("no partial was taken from a full file")
	}
	checkIdentical(t, r, old)
}

// appendOneByOne appends n records one at a time, each under its own seal: the log
// grows by exactly 2n entries.
func appendOneByOne(t testing.TB, dir string, node *identity.Node, n int) {
	t.Helper()
	l, err := Open(context.Background(), dir, node, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, _, err := l.Append(context.Background(), testRecord(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestReplicaForkFromSealChain: with the copy at a bundle boundary no bundle is shared,
// and the fork shows first in the seal chain: the source's next seal, validly signed,
// does not link to the copy's last one.
func TestReplicaForkFromSealChain(t *testing.T) {
	ctx := context.Background()
	node := newTestNode(t)
	a := t.TempDir()
	appendOneByOne(t, a, node, 100)
	b := copyDir(t, a)
	appendOneByOne(t, a, node, 28) // 256 entries
	appendOneByOne(t, b, node, 40)
	r := openReplica(t, t.TempDir(), node)
	if _, err := r.Update(ctx, serve(a, nil, nil), 0); err != nil {
		t.Fatal(err)
	}
	if r.Size() != 256 {
		t.Fatalf("copy at %d, want 256", r.Size())
	}
	_, err := r.Update(ctx, serve(b, nil, nil), 0)
	var fe *ForkError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "entry 257: the source's seal 128 does not link to the copy's last seal") {
		t.Fatalf("update from a forked source: %v, want a ForkError at seal 128", err)
	}
}

func readTB(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// FuzzReplicaUpdate: whatever the source serves for one of the files an update fetches,
// the update never panics, a failed update leaves the copy as it was, and an accepted
// one leaves a copy identical to the source's log.
func FuzzReplicaUpdate(f *testing.F) {
	fx := newTamperFixture(f, 150, 150)
	for i, p := range fx.fetched {
		data := readTB(f, filepath.Join(fx.src, logDirName, filepath.FromSlash(p)))
		f.Add(uint8(i), data)
	}
	f.Add(uint8(1), []byte("\x00\x05abc"))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		path := fx.fetched[int(which)%len(fx.fetched)]
		r := fx.copy(t)
		before := copyFiles(t, r.dir)
		_, err := r.Update(context.Background(), serve(fx.src, nil, func(p string, d []byte) []byte {
			if p == path {
				return data
			}
			return d
		}), 0)
		if err != nil {
			if r.Size() != fx.from || !maps.Equal(before, copyFiles(t, r.dir)) {
				t.Fatalf("the copy changed after a failed update: %v", err)
			}
			return
		}
		checkIdentical(t, r, fx.src)
	})
}

// BenchmarkReplicaUpdate measures an empty replica catching up with a source of 20,000
// records: entries fetched (from the local file system), verified and written.
func BenchmarkReplicaUpdate(b *testing.B) {
	const records = 20000
	node := newTestNode(b)
	src := b.TempDir()
	l, err := Open(context.Background(), src, node, testOptions)
	if err != nil {
		b.Fatal(err)
	}
	appendN(b, l, records, 64)
	if err := l.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	size := sourceSize(b, src)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		r := openReplica(b, b.TempDir(), node)
		b.StartTimer()
		res, err := r.Update(context.Background(), serve(src, nil, nil), 0)
		if err != nil {
			b.Fatal(err)
		}
		if res.To != size || r.Size() != size {
			b.Fatalf("replica at %d, want %d", r.Size(), size)
		}
	}
	s := b.Elapsed().Seconds()
	b.ReportMetric(float64(size)*float64(b.N)/s, "entries/s")
	b.ReportMetric(float64(records)*float64(b.N)/s, "records/s")
}
