package ledger

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/oar"
	"github.com/transparency-dev/merkle/compact"
	"github.com/transparency-dev/tessera/api/layout"
)

// compareFixture is one node's log in three copies: prefix (300 entries), a (prefix
// and 60 more) and b (prefix and 60 others): a and b fork at 300 at the same size.
type compareFixture struct {
	node               *identity.Node
	prefix, a, b       string
	common, forkedSize uint64
}

func newCompareFixture(t *testing.T) *compareFixture {
	t.Helper()
	f := &compareFixture{node: newTestNode(t), a: t.TempDir()}
	appendOneByOne(t, f.a, f.node, 150) // 300 entries: a full tile and a partial one
	f.prefix = copyDir(t, f.a)
	f.b = copyDir(t, f.a)
	appendOneByOne(t, f.a, f.node, 30)
	appendOneByOne(t, f.b, f.node, 30)
	f.common, f.forkedSize = 300, 360
	for _, d := range []string{f.prefix, f.a, f.b} {
		if d == f.prefix && sourceSize(t, d) != f.common || d != f.prefix && sourceSize(t, d) != f.forkedSize {
			t.Fatalf("%s has %d entries", d, sourceSize(t, d))
		}
	}
	return f
}

func (f *compareFixture) reader(t *testing.T, dir string) *Reader {
	t.Helper()
	r, err := OpenReader(dir, f.node.ID(), f.node.Public())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (f *compareFixture) export(t *testing.T, dir string, from, to uint64) *Bundle {
	t.Helper()
	b, err := f.reader(t, dir).Export(context.Background(), f.node.Cert, from, to)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rootAt is the root of the tree over entries [0, size) of the log in dir.
func rootAt(t *testing.T, r *Reader, size uint64) []byte {
	t.Helper()
	es, err := r.Entries(context.Background(), 0, size)
	if err != nil {
		t.Fatal(err)
	}
	rng := rangeFactory.NewEmptyRange(0)
	for _, e := range es {
		rng.Append(oar.RecordHash(e), nil)
	}
	root, err := rng.GetRootHash(nil)
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// checkComparison checks a comparison: identical up to size, or diverging first at index at
// (nil: not known) with the reason mentioning each of msgs.
func checkComparison(t *testing.T, c *Comparison, err error, identical bool, size uint64, root []byte, at *uint64, msgs ...string) {
	t.Helper()
	if err != nil {
		t.Fatalf("compare: %v", err)
	}
	if c.Identical != identical || c.CommonSize != size {
		t.Fatalf("compare: %+v, want identical=%v common size %d", c, identical, size)
	}
	if identical && !bytes.Equal(c.Root, root) {
		t.Fatalf("compare: root %x, want %x", c.Root, root)
	}
	if (at == nil) != (c.FirstDivergence == nil) || at != nil && *at != *c.FirstDivergence {
		t.Fatalf("compare: first divergence %v, want %v (%s)", c.FirstDivergence, at, c.Reason)
	}
	for _, m := range msgs {
		if !strings.Contains(c.Reason, m) {
			t.Fatalf("compare: reason %q does not mention %q", c.Reason, m)
		}
	}
}

func index(i uint64) *uint64 { return &i }

func TestCompareLogs(t *testing.T) {
	ctx := context.Background()
	f := newCompareFixture(t)
	prefix, a, b := f.reader(t, f.prefix), f.reader(t, f.a), f.reader(t, f.b)
	rootCommon := prefix.Checkpoint().Root

	c, err := CompareLogs(ctx, a, f.reader(t, copyDir(t, f.a)), "A", "A'")
	checkComparison(t, c, err, true, f.forkedSize, a.Checkpoint().Root, nil, "same root")

	for _, order := range [][2]*Reader{{prefix, a}, {a, prefix}} {
		c, err = CompareLogs(ctx, order[0], order[1], "x", "y")
		checkComparison(t, c, err, true, f.common, rootCommon, nil, "consistency proof verified")
	}

	// Forked at the same size: the first divergence, the entries named.
	c, err = CompareLogs(ctx, a, b, "A", "B")
	checkComparison(t, c, err, false, f.forkedSize, nil, index(300), "first divergence at index 300: A holds a record of test.append", "; B holds a record")

	// Forked at different sizes.
	longer := copyDir(t, f.b)
	appendOneByOne(t, longer, f.node, 5)
	c, err = CompareLogs(ctx, f.reader(t, longer), a, "B", "A")
	checkComparison(t, c, err, false, f.forkedSize, nil, index(300), "first divergence at index 300")
}

func TestCompareLogsOfDifferentNodes(t *testing.T) {
	var rs [2]*Reader
	for k := range rs {
		node, dir := newTestNode(t), t.TempDir()
		appendOneByOne(t, dir, node, 3)
		var err error
		if rs[k], err = OpenReader(dir, node.ID(), node.Public()); err != nil {
			t.Fatal(err)
		}
	}
	_, err := CompareLogs(context.Background(), rs[0], rs[1], "A", "O")
	if err == nil || !strings.Contains(err.Error(), "only copies of one node's log can be compared") {
		t.Fatalf("compare with another node's log: %v", err)
	}
}

// TestCompareLogsRefusesDamagedCopies: a tile or an entry that does not match its copy's
// checkpoint is reported as damage, naming the copy, never as a divergence.
func TestCompareLogsRefusesDamagedCopies(t *testing.T) {
	ctx := context.Background()
	f := newCompareFixture(t)

	// A leaf hash altered before the fork: the scan stops there, and the proofs refuse it.
	b := copyDir(t, f.b)
	tile := filepath.Join(b, logDirName, layout.TilePath(0, 0, 0))
	raw := mustRead(t, tile)
	raw[5*oar.HashSize] ^= 1
	os.WriteFile(tile, raw, 0o644)
	_, err := CompareLogs(ctx, f.reader(t, f.a), f.reader(t, b), "A", "B")
	if err == nil || !strings.Contains(err.Error(), "B does not match its own checkpoint at size 360") {
		t.Fatalf("compare with a damaged tile: %v", err)
	}

	// The entry at the fork altered (its tile intact).
	b = copyDir(t, f.b)
	path := bundlePath(b, 1, f.forkedSize)
	es := readBundleFile(t, path)
	k := 300 - layout.EntryBundleWidth
	es[k] = bytes.Replace(es[k], []byte("test.append"), []byte("test.altered"), 1)
	writeBundleFile(t, path, es)
	_, err = CompareLogs(ctx, f.reader(t, f.a), f.reader(t, b), "A", "B")
	if err == nil || !strings.Contains(err.Error(), "B does not match its own checkpoint") || !strings.Contains(err.Error(), "entry 300: entry bytes do not match") {
		t.Fatalf("compare with an altered entry: %v", err)
	}

	// A damaged tile does not matter where the checkpoints alone prove the copies one.
	a := copyDir(t, f.a)
	tile = filepath.Join(a, logDirName, layout.TilePath(0, 0, 0))
	raw = mustRead(t, tile)
	raw[0] ^= 1
	os.WriteFile(tile, raw, 0o644)
	c, err := CompareLogs(ctx, f.reader(t, f.a), f.reader(t, a), "A", "A'")
	checkComparison(t, c, err, true, f.forkedSize, f.reader(t, f.a).Checkpoint().Root, nil, "same root")
}

// TestCompareReplicaCopy: a replica's copy, opened read-only beside its Replica,
// compares with the source's log.
func TestCompareReplicaCopy(t *testing.T) {
	ctx := context.Background()
	node := newTestNode(t)
	src := t.TempDir()
	growLog(t, src, node, 500)
	dir := t.TempDir()
	r := openReplica(t, dir, node)
	if _, err := r.Update(ctx, serve(src, nil, nil), 0); err != nil {
		t.Fatal(err)
	}
	// A session in progress keeps its files in staging: the reader leaves them alone.
	marker := filepath.Join(dir, replicaStateDir, stagingDirName, "marker")
	os.MkdirAll(filepath.Dir(marker), 0o700)
	os.WriteFile(marker, nil, 0o600)

	growLog(t, src, node, 100)
	cp, err := OpenReplicaReader(dir, node.ID(), node.Public())
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenReader(src, node.ID(), node.Public())
	if err != nil {
		t.Fatal(err)
	}
	c, err := CompareLogs(ctx, cp, s, "copy", "source")
	checkComparison(t, c, err, true, r.Size(), r.Root(), nil, "copy's checkpoint at size", "consistency proof verified")
	if _, err := os.Stat(marker); err != nil {
		t.Fatalf("the reader touched the replica's staging: %v", err)
	}
	if _, err := OpenReplicaReader(t.TempDir(), node.ID(), node.Public()); err != ErrEmpty {
		t.Fatalf("reader of an empty copy: %v, want ErrEmpty", err)
	}
}

func TestCompareBundles(t *testing.T) {
	f := newCompareFixture(t)
	full := func(dir string) *Bundle { return f.export(t, dir, 0, 0) }
	a, prefix := f.reader(t, f.a), f.reader(t, f.prefix)

	c, err := CompareBundles(full(f.a), full(f.a), "A", "A")
	checkComparison(t, c, err, true, f.forkedSize, a.Checkpoint().Root, nil, "entries 0..359 are byte-identical")

	// A longer export of the log against a shorter one: identical up to the shorter.
	c, err = CompareBundles(full(f.a), full(f.prefix), "A", "P")
	checkComparison(t, c, err, true, f.common, prefix.Checkpoint().Root, nil)

	// Bundles that start mid-log: the trees over the entries before them are compared
	// through their compact ranges.
	mid := f.export(t, f.a, 101, 201) // widened to whole seal batches: 100..201
	c, err = CompareBundles(mid, full(f.prefix), "M", "P")
	checkComparison(t, c, err, true, 202, rootAt(t, a, 202), nil, "entries 100..201 are byte-identical")
	c, err = CompareBundles(f.export(t, f.a, 301, 0), f.export(t, f.a, 201, 0), "M", "N")
	checkComparison(t, c, err, true, f.forkedSize, a.Checkpoint().Root, nil, "entries 300..359")

	// Forked: the first divergent entry of the entries both hold.
	c, err = CompareBundles(full(f.a), full(f.b), "A", "B")
	checkComparison(t, c, err, false, f.forkedSize, nil, index(300), "first divergence at index 300: A holds a record", "B holds a record")

	// The fork lies before the entries both hold: their compact ranges bound it.
	c, err = CompareBundles(f.export(t, f.a, 341, 0), f.export(t, f.b, 331, 0), "A", "B")
	checkComparison(t, c, err, false, f.forkedSize, nil, nil, "the histories differ before entry 340", "within entries 256..319")
	c, err = CompareBundles(f.export(t, f.a, 303, 0), full(f.b), "A", "B")
	checkComparison(t, c, err, false, f.forkedSize, nil, nil, "the histories differ before entry 302", "within entries 300..301")

	// Checkpoints of one size with two roots, the fork after the entries both hold.
	c, err = CompareBundles(f.export(t, f.a, 0, 280), f.export(t, f.b, 0, 280), "A", "B")
	checkComparison(t, c, err, false, 280, nil, nil, "both checkpoints commit to 360 entries with different roots", "within entries 288..319")
	c, err = CompareBundles(f.export(t, f.a, 0, 300), f.export(t, f.b, 0, 300), "A", "B")
	checkComparison(t, c, err, false, 300, nil, nil, "within entries 300..303")
}

func TestCompareBundlesRefuses(t *testing.T) {
	f := newCompareFixture(t)
	full := f.export(t, f.a, 0, 0)
	for _, tc := range []struct {
		name string
		a, b func() *Bundle
		msg  string
	}{
		{"no shared entry", func() *Bundle { return f.export(t, f.a, 0, 100) }, func() *Bundle { return f.export(t, f.a, 200, 0) },
			"A holds entries 0..99 and B holds entries 200..359: they share no entry"},
		{"tampered", func() *Bundle { return full }, func() *Bundle {
			b := f.export(t, f.a, 0, 0)
			b.Entries[6] = strings.Replace(b.Entries[6], "test.append", "test.altered", 1)
			return b
		}, "B failed verification: entry "},
		{"another node", func() *Bundle { return full }, func() *Bundle {
			node := newTestNode(t)
			dir := t.TempDir()
			appendOneByOne(t, dir, node, 3)
			r, err := OpenReader(dir, node.ID(), node.Public())
			if err != nil {
				t.Fatal(err)
			}
			b, err := r.Export(context.Background(), node.Cert, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			return b
		}, "only bundles of one node's log can be compared"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := CompareBundles(tc.a(), tc.b(), "A", "B")
			if err == nil || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("compare: %v, want %q", err, tc.msg)
			}
		})
	}
}

func TestRangeSpans(t *testing.T) {
	for _, tc := range []struct {
		begin, end uint64
		want       [][2]uint64
	}{
		{0, 0, nil},
		{0, 13, [][2]uint64{{0, 8}, {8, 12}, {12, 13}}},
		{5, 13, [][2]uint64{{5, 6}, {6, 8}, {8, 12}, {12, 13}}},
		{300, 360, [][2]uint64{{300, 304}, {304, 320}, {320, 352}, {352, 360}}},
	} {
		got := rangeSpans(tc.begin, tc.end)
		if len(got) != len(tc.want) || len(got) != compact.RangeSize(tc.begin, tc.end) {
			t.Fatalf("rangeSpans(%d, %d) = %v, want %v", tc.begin, tc.end, got, tc.want)
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Fatalf("rangeSpans(%d, %d) = %v, want %v", tc.begin, tc.end, got, tc.want)
			}
		}
	}
}

// TestBundleDivergenceAtALeaf: when the first node that differs is a single leaf, its
// index is the first divergence, though neither bundle may hold the entry.
func TestBundleDivergenceAtALeaf(t *testing.T) {
	h := func(b byte) []byte { return bytes.Repeat([]byte{b}, oar.HashSize) }
	sa := &bundleSide{name: "A", start: 5, end: 7}
	sb := &bundleSide{name: "B", start: 4, end: 7, entries: [][]byte{[]byte(`{"not":"an entry"}`)}}
	// The compact ranges over [0, 5): nodes [0, 4) and [4, 5).
	c := bundleDivergence(sa, sb, 7, 4, 5, [][]byte{h(1), h(2)}, [][]byte{h(1), h(3)}, "before entry 5")
	checkComparison(t, c, nil, false, 7, nil, index(4), "first divergence at index 4, before entry 5: A holds an entry outside its range 5..6 (hash 0202",
		"B holds an invalid entry")
	if from, to, ok := firstDifferentNode(0, 5, [][]byte{h(1), h(2)}, [][]byte{h(1), h(3)}); !ok || from != 4 || to != 5 {
		t.Fatalf("firstDifferentNode: %d, %d, %v", from, to, ok)
	}
	if _, _, ok := firstDifferentNode(0, 5, [][]byte{h(1), h(2)}, [][]byte{h(1), h(2)}); ok {
		t.Fatal("firstDifferentNode found a difference in equal ranges")
	}
}
