// sios: tests of Config.SyncBatches (SIOS.md, change 11).

package posix

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestKernelAtLeast(t *testing.T) {
	for release, want := range map[string]bool{
		"6.1.0-18-amd64":   true,
		"6.18.44-fc-v1272": true,
		"5.8.0":            true,
		"5.8-rc1":          true,
		"5.10.0-28-cloud":  true,
		"5.7.19":           false,
		"4.19.0-26-amd64":  false,
		"":                 false,
		"linux":            false,
	} {
		if got := kernelAtLeast(release, 5, 8); got != want {
			t.Errorf("kernelAtLeast(%q, 5, 8) = %v, want %v", release, got, want)
		}
	}
}

// filesUnder lists the regular files under dir, relative to it.
func filesUnder(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Under SyncBatches a batch's files reach their paths only when the tree state is
// written, whole and after a sync: until then each is a temporary file beside its
// target, which a crash leaves where readers ignore it.
func TestSyncBatchesRenamesFilesIntoPlaceWithTheTreeState(t *testing.T) {
	if !canSyncFS() {
		t.Skip("syncfs(2) does not report write-back errors on this system: every file is written as upstream")
	}
	dir := t.TempDir()
	s := &Storage{cfg: Config{Path: dir, SyncBatches: true}}
	batch := map[string][]byte{
		"tile/entries/000":      bytes.Repeat([]byte{1}, 300),
		"tile/entries/001.p/17": bytes.Repeat([]byte{2}, 40),
		"tile/0/001.p/17":       bytes.Repeat([]byte{3}, 17*32),
	}
	stage := func() {
		t.Helper()
		for p, d := range batch {
			if err := s.createBatchFile(p, d); err != nil {
				t.Fatal(err)
			}
		}
		var files []string
		for _, f := range filesUnder(t, dir) {
			if !strings.HasPrefix(f, stateDir+"/") {
				files = append(files, f)
			}
		}
		if len(files) != len(batch) {
			t.Fatalf("staged files %v, want one for each of %d", files, len(batch))
		}
		for _, f := range files {
			if _, ok := batch[f]; ok {
				t.Fatalf("%s is at its path before the tree state is written", f)
			}
		}
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	stage()
	if err := s.writeTreeState(context.Background(), 273, bytes.Repeat([]byte{9}, 32)); err != nil {
		t.Fatal(err)
	}
	for p, d := range batch {
		got, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil || !bytes.Equal(got, d) {
			t.Fatalf("%s after the tree state: %d bytes, %v", p, len(got), err)
		}
	}
	if files := filesUnder(t, dir); len(files) != len(batch)+1 || !strings.Contains(strings.Join(files, " "), ".state/treeState") {
		t.Fatalf("files after the tree state: %v, want the batch's and the tree state only", files)
	}
	if size, _, err := s.readTreeState(context.Background()); err != nil || size != 273 {
		t.Fatalf("tree state size %d, %v", size, err)
	}
	if s.fs != nil || len(s.staged) != 0 {
		t.Fatal("the batch's file system descriptor or staged files outlived its tree state")
	}

	// A batch that fails before its tree state leaves no file behind, and nothing of
	// it reaches the next batch's tree state.
	for p := range batch {
		os.Remove(filepath.Join(dir, p))
	}
	stage()
	s.dropStaged()
	if files := filesUnder(t, dir); len(files) != 1 {
		t.Fatalf("files after a failed batch: %v, want the tree state only", files)
	}
	if err := s.writeTreeState(context.Background(), 273, bytes.Repeat([]byte{9}, 32)); err != nil {
		t.Fatal(err)
	}
	if files := filesUnder(t, dir); len(files) != 1 {
		t.Fatalf("files after the next tree state: %v, want the tree state only", files)
	}
}

// Without SyncBatches every file is at its path as soon as it is written, as upstream.
func TestWithoutSyncBatchesFilesAreWrittenAtOnce(t *testing.T) {
	dir := t.TempDir()
	s := &Storage{cfg: Config{Path: dir}}
	if err := s.createBatchFile("tile/0/000", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "tile/0/000")); err != nil || string(got) != "x" {
		t.Fatalf("got %q, %v", got, err)
	}
	if len(s.staged) != 0 {
		t.Fatal("a file was staged without SyncBatches")
	}
}

// A sync that fails (a write-back error the file system reports) fails the tree state's
// write: it does not move, no file of the batch is at its path, and no temporary file is
// left.
func TestSyncBatchesFailedSyncLeavesTheTreeStateAlone(t *testing.T) {
	if !canSyncFS() {
		t.Skip("syncfs(2) does not report write-back errors on this system: every file is written as upstream")
	}
	dir := t.TempDir()
	s := &Storage{cfg: Config{Path: dir, SyncBatches: true}}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writeTreeState(context.Background(), 10, bytes.Repeat([]byte{1}, 32)); err != nil {
		t.Fatal(err)
	}
	real := syncFS
	defer func() { syncFS = real }()
	syncFS = func(*os.File) error { return syscall.EIO }
	for _, p := range []string{"tile/entries/000.p/20", "tile/0/000.p/20"} {
		if err := s.createBatchFile(p, []byte("batch")); err != nil {
			t.Fatal(err)
		}
	}
	err := s.writeTreeState(context.Background(), 20, bytes.Repeat([]byte{2}, 32))
	if !errors.Is(err, syscall.EIO) || !strings.Contains(err.Error(), "sync the log's file system") {
		t.Fatalf("tree state written over a failed sync: %v", err)
	}
	if files := filesUnder(t, dir); len(files) != 1 || files[0] != stateDir+"/"+treeStateFile {
		t.Fatalf("files after the failed sync: %v, want the old tree state only", files)
	}
	if size, _, err := s.readTreeState(context.Background()); err != nil || size != 10 {
		t.Fatalf("tree state size %d, %v: want 10, as before the failed batch", size, err)
	}
}
