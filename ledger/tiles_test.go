package ledger

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/api/layout"
	"github.com/transparency-dev/tessera/storage/posix"
)

// flipByte flips one bit of the byte at off in the file at path.
func flipByte(t *testing.T, path string, off int) {
	t.Helper()
	editFile(t, path, func(b []byte) { b[off] ^= 0x08 })
}

// Every stored tile and bundle is checked: upper levels, and the partial versions
// Tessera keeps beside the full ones, which standard tlog-tiles clients fetch for
// older checkpoints (issue 12, item 2).
func TestVerifyChecksEveryTileAndKeptPartial(t *testing.T) {
	node := newTestNode(t)
	src := t.TempDir()
	// 300 entries, integrated one seal at a time: Tessera keeps a partial tile and
	// bundle of every size it integrated at.
	l, err := Open(context.Background(), src, node, Options{CheckpointInterval: 100 * time.Millisecond, TesseraBatchAge: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 150 {
		if _, _, err := l.Append(context.Background(), testRecord(i)); err != nil {
			t.Fatal(err)
		}
		if err := l.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(src, logDirName)
	kept := func(dir string) string {
		t.Helper()
		names, err := os.ReadDir(filepath.Join(log, dir+".p"))
		if err != nil || len(names) < 1 {
			t.Fatalf("%s: want kept partials, got %d (%v)", dir, len(names), err)
		}
		return dir + ".p/" + names[0].Name()
	}
	cases := map[string]string{
		"upper-level partial tile":   layout.TilePath(1, 0, 1),
		"kept partial level-0 tile":  kept(layout.TilePath(0, 0, 0)),
		"kept partial entry bundle":  kept(layout.EntriesPath(0, 0)),
		"full level-0 tile":          layout.TilePath(0, 0, 0),
		"partial level-0 tile (cur)": layout.TilePath(0, 1, 44),
	}
	for name, file := range cases {
		t.Run(name, func(t *testing.T) {
			dir := copyDir(t, src)
			path := filepath.Join(dir, logDirName, file)
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			flipByte(t, path, int(st.Size())-5)
			r, err := OpenReader(dir, node.ID(), node.Public())
			if err != nil {
				t.Fatal(err)
			}
			_, err = r.Verify(context.Background(), false)
			if err == nil || !strings.Contains(err.Error(), filepath.Base(file)) {
				t.Fatalf("verify after a flip in %s: %v", file, err)
			}
		})
	}
	r, err := OpenReader(src, node.ID(), node.Public())
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Verify(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Files < 10 {
		t.Fatalf("only %d files checked", res.Files)
	}
}

// The tile checker on a tree with a full tile above level 0: 65,536+ leaves, written
// by Tessera as plain entries (a sealed log that size takes too long for a unit test).
func TestTileCheckerFullUpperTile(t *testing.T) {
	dir := t.TempDir()
	const n = 1<<16 + 300
	driver, err := posix.New(context.Background(), posix.Config{Path: dir})
	if err != nil {
		t.Fatal(err)
	}
	node := newTestNode(t)
	ed, _ := node.Key.NoteSigners("test")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app, shutdown, _, err := tessera.NewAppender(ctx, driver, tessera.NewAppendOptions().WithCheckpointSigner(ed).
		WithBatching(4096, 10*time.Millisecond).WithCheckpointInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	futs := make([]tessera.IndexFuture, n)
	leaves := make([][]byte, n)
	for i := range n {
		e := fmt.Appendf(nil, "entry %d", i)
		leaves[i] = rfc6962.DefaultHasher.HashLeaf(e)
		futs[i] = app.Add(ctx, tessera.NewEntry(e))
	}
	for i, f := range futs {
		idx, err := f()
		if err != nil {
			t.Fatal(err)
		}
		if idx.Index != uint64(i) { // the leaves below assume it (SIOS.md change 7)
			t.Fatalf("entry %d was given index %d", i, idx.Index)
		}
	}
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	check := func() error {
		tc := &tileChecker{store: newStore(dir), size: n, checkpointSize: n}
		for base := 0; base < n; base += layout.EntryBundleWidth {
			if err := tc.addLeaves(ctx, leaves[base:min(base+layout.EntryBundleWidth, n)]); err != nil {
				return err
			}
		}
		_, err := tc.finish(ctx)
		return err
	}
	if err := check(); err != nil {
		t.Fatal(err)
	}
	full := filepath.Join(dir, layout.TilePath(1, 0, 0))
	flipByte(t, full, 100*sha256.Size+3)
	if err := check(); err == nil || !strings.Contains(err.Error(), "tile/1/000: hash 100 is not what entries 25600..25855 imply") {
		t.Fatalf("a flip in the full level-1 tile: %v", err)
	}
	flipByte(t, full, 100*sha256.Size+3)
	os.Remove(full)
	if err := check(); err == nil || !strings.Contains(err.Error(), "tile/1/000 is missing") {
		t.Fatalf("the full level-1 tile removed: %v", err)
	}
}

// A crash can leave Tessera's temporary files (the target's name with random digits
// appended) beside the tiles; they are not part of the layout and every reader ignores
// them.
func TestReadersIgnoreTesseraTemporaryFiles(t *testing.T) {
	node := newTestNode(t)
	dir := pristine(t, node, 200) // about 250 entries: bundle 0 partial
	log := filepath.Join(dir, logDirName)
	for _, p := range []string{layout.EntriesPath(0, 0) + ".p/1971234567", layout.TilePath(0, 0, 0) + ".p/25", layout.TilePath(0, 0, 0) + ".p/2581234", "checkpoint55512"} {
		os.MkdirAll(filepath.Dir(filepath.Join(log, p)), 0o755)
		if err := os.WriteFile(filepath.Join(log, p), []byte("left by a crash"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.Remove(filepath.Join(log, layout.TilePath(0, 0, 0)+".p/25")) // only the digit-suffixed ones stay
	r, err := OpenReader(dir, node.ID(), node.Public())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Verify(context.Background(), false); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Pending(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Entries(context.Background(), 0, r.Size()); err != nil {
		t.Fatal(err)
	}
}
