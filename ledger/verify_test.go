package ledger

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/oar"
	"github.com/transparency-dev/tessera/api"
	"github.com/transparency-dev/tessera/api/layout"
)

// pristine builds a closed log of n records under small seals and returns its directory.
func pristine(t *testing.T, node *identity.Node, n int) string {
	t.Helper()
	dir := t.TempDir()
	l, err := Open(context.Background(), dir, node, Options{CheckpointInterval: 100 * time.Millisecond, SealMaxRecords: 40})
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, l, n, 8)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	return dir
}

func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	return dst
}

func bundlePath(dir string, idx, size uint64) string {
	return filepath.Join(dir, logDirName, layout.EntriesPath(idx, layout.PartialTileSize(0, idx, size)))
}

func readBundleFile(t *testing.T, path string) [][]byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var b api.EntryBundle
	if err := b.UnmarshalText(raw); err != nil {
		t.Fatal(err)
	}
	return b.Entries
}

func writeBundleFile(t *testing.T, path string, entries [][]byte) {
	t.Helper()
	var buf bytes.Buffer
	for _, e := range entries {
		binary.Write(&buf, binary.BigEndian, uint16(len(e)))
		buf.Write(e)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyNamesTheFirstBadEntry(t *testing.T) {
	node := newTestNode(t)
	src := pristine(t, node, 300)
	r, err := OpenReader(src, node.ID(), node.Public())
	if err != nil {
		t.Fatal(err)
	}
	size := r.Size()
	if _, err := r.Verify(context.Background(), false); err != nil {
		t.Fatalf("pristine log: %v", err)
	}
	first := bundlePath(src, 0, size)[len(src):]
	last := bundlePath(src, (size-1)/256, size)[len(src):]

	cases := []struct {
		name   string
		mutate func(t *testing.T, dir string)
		want   string
	}{
		{"flipped byte", func(t *testing.T, dir string) {
			raw, _ := os.ReadFile(dir + first)
			raw[2+20] ^= 0x01 // inside entry 0, after its 2-byte length
			os.WriteFile(dir+first, raw, 0o644)
			// A partial copy Tessera kept beside it, if any, would disagree first.
			os.RemoveAll(filepath.Join(dir, logDirName, layout.EntriesPath(0, 0)+".p"))
		}, "entry 0: entry bytes do not match"},
		{"swapped records", func(t *testing.T, dir string) {
			es := readBundleFile(t, dir+first)
			es[1], es[2] = es[2], es[1]
			writeBundleFile(t, dir+first, es)
		}, "entry 1: "},
		{"missing bundle", func(t *testing.T, dir string) {
			os.Remove(dir + last)
		}, "entry 256: tile/entries/001"},
		{"extra trailing entry", func(t *testing.T, dir string) {
			es := readBundleFile(t, dir+last)
			writeBundleFile(t, dir+last, append(es, es[len(es)-1]))
		}, "holds"},
		{"truncated bundle", func(t *testing.T, dir string) {
			raw, _ := os.ReadFile(dir + last)
			os.WriteFile(dir+last, raw[:len(raw)-3], 0o644)
		}, "entry 256: "},
		{"altered checkpoint", func(t *testing.T, dir string) {
			p := filepath.Join(dir, logDirName, layout.CheckpointPath)
			raw, _ := os.ReadFile(p)
			lines := strings.SplitN(string(raw), "\n", 3)
			lines[1] = "1"
			os.WriteFile(p, []byte(strings.Join(lines, "\n")), 0o644)
		}, "checkpoint"},
		{"record rewritten with its hash tile", func(t *testing.T, dir string) {
			// A forger rewrites every copy: the partial ones kept beside go.
			os.RemoveAll(filepath.Join(dir, logDirName, layout.EntriesPath(0, 0)+".p"))
			os.RemoveAll(filepath.Join(dir, logDirName, layout.TilePath(0, 0, 0)+".p"))
			es := readBundleFile(t, dir+first)
			var k int
			for k = range es {
				if e, _ := oar.Parse(es[k]); e.Kind == oar.KindRecord {
					break
				}
			}
			es[k] = bytes.Replace(es[k], []byte(`"test.append"`), []byte(`"test.forged"`), 1)
			writeBundleFile(t, dir+first, es)
			tp := filepath.Join(dir, logDirName, layout.TilePath(0, 0, layout.PartialTileSize(0, 0, size)))
			raw, _ := os.ReadFile(tp)
			copy(raw[32*k:], oar.RecordHash(es[k]))
			os.WriteFile(tp, raw, 0o644)
		}, "root does not match records"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := copyDir(t, src)
			tc.mutate(t, dir)
			r, err := OpenReader(dir, node.ID(), node.Public())
			if err == nil {
				_, err = r.Verify(context.Background(), false)
			}
			if err == nil {
				t.Fatal("verification passed")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

func TestVerifyDetectsRewrittenHistory(t *testing.T) {
	node := newTestNode(t)
	a := pristine(t, node, 5)
	ra, err := OpenReader(a, node.ID(), node.Public())
	if err != nil {
		t.Fatal(err)
	}
	if err := ra.NoteSeen(node); err != nil {
		t.Fatal(err)
	}
	// The same key writes another history; the node's seen checkpoint exposes it.
	b := pristine(t, node, 12)
	seen, _ := os.ReadFile(filepath.Join(a, seenFileName))
	os.WriteFile(filepath.Join(b, seenFileName), seen, 0o600)
	rb, err := OpenReader(b, node.ID(), node.Public())
	if err != nil {
		t.Fatal(err)
	}
	_, err = rb.Verify(context.Background(), false)
	if err == nil || !strings.Contains(err.Error(), "history was rewritten") {
		t.Fatalf("verify: %v, want history was rewritten", err)
	}
	// And a log shorter than what was seen.
	os.WriteFile(filepath.Join(a, seenFileName), mustRead(t, filepath.Join(b, logDirName, layout.CheckpointPath)), 0o600)
	_, err = ra.Verify(context.Background(), false)
	if err == nil || !strings.Contains(err.Error(), "entries were removed") {
		t.Fatalf("verify: %v, want entries were removed", err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestOpenRefusesARestoredOldCopy(t *testing.T) {
	node := newTestNode(t)
	dir := t.TempDir()
	l := openTest(t, dir, node)
	appendN(t, l, 4, 2)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	old := copyDir(t, dir)
	l = openTest(t, dir, node)
	appendN(t, l, 6, 2)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	// The old copy comes back, but the node remembers what it saw.
	os.WriteFile(filepath.Join(old, seenFileName), mustRead(t, filepath.Join(dir, seenFileName)), 0o600)
	_, err := Open(context.Background(), old, node, testOptions)
	if !errors.Is(err, ErrInconsistent) || !strings.Contains(err.Error(), "entries were removed") {
		t.Fatalf("Open of a restored old copy: %v, want ErrInconsistent", err)
	}
}

func TestVerifyEmptyLog(t *testing.T) {
	node := newTestNode(t)
	dir := t.TempDir()
	l := openTest(t, dir, node)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err := OpenReader(dir, node.ID(), node.Public())
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Verify(context.Background(), false)
	if err != nil || res.Entries != 0 {
		t.Fatalf("empty log: %+v, %v", res, err)
	}
}

// Verify returns when its context ends, at whatever point it is in: it never waits for
// a bundle nobody will read.
func TestVerifyStopsWhenCancelled(t *testing.T) {
	node := newTestNode(t)
	dir := pristine(t, node, 3000)
	r, err := OpenReader(dir, node.ID(), node.Public())
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { _, err := r.Verify(ctx, false); done <- err }()
		time.Sleep(time.Duration(i*100) * time.Microsecond)
		cancel()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, context.Canceled) {
				t.Fatalf("round %d: %v", i, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: Verify did not return after its context was cancelled", i)
		}
	}
}
