package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sios-project/sios/oar"
)

// testBatches makes n batches of k entries of about 300 bytes, from index 0.
func testBatches(n, k int) []*batch {
	var out []*batch
	next := uint64(0)
	for range n {
		b := &batch{first: next}
		for e := range k {
			b.entries = append(b.entries, fmt.Appendf(nil, `{"entry":%d,"pad":"%s"}`, next+uint64(e), strings.Repeat("x", 280)))
		}
		next = b.end()
		out = append(out, b)
	}
	return out
}

// writeJournal writes batches to a new journal in dir and closes it without releasing
// anything (as a crash leaves it).
func writeJournal(t *testing.T, dir string, bs []*batch, segSize int64) {
	t.Helper()
	j, got, err := openJournal(dir, segSize, 0)
	if err != nil || len(got) != 0 {
		t.Fatalf("new journal: %v, %d batches", err, len(got))
	}
	for _, b := range bs {
		if err := j.write(b); err != nil {
			t.Fatal(err)
		}
	}
	if j.preparing {
		sp := <-j.spare
		os.Remove(sp.path)
	}
	j.cur.Close()
	if j.direct != nil {
		j.direct.Close()
	}
}

func segmentPaths(t *testing.T, dir string) []string {
	t.Helper()
	segs, err := readSegments(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range segs {
		out = append(out, s.path)
	}
	return out
}

// frameOffsets lists the offsets of the frames in a segment.
func frameOffsets(t *testing.T, path string) []int {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var offs []int
	for off := 0; off+frameHeaderSize <= len(data) && !allZero(data[off:off+frameHeaderSize]); {
		_, n, err := decodeFrame(data[off:])
		if err != nil {
			t.Fatalf("frame at %d: %v", off, err)
		}
		offs = append(offs, off)
		off = alignSector(off + n)
	}
	return offs
}

func editFile(t *testing.T, path string, edit func(b []byte)) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	edit(data)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestJournalTellsATornWriteFromDamage(t *testing.T) {
	bs := testBatches(4, 5) // frames of about 1.5 KiB: three sectors or more
	cases := []struct {
		name        string
		edit        func(t *testing.T, path string, last int)
		wantBatches int    // batches read back when the journal opens
		wantErr     string // or the damage it reports
	}{
		{"intact", func(*testing.T, string, int) {}, 4, ""},
		{"last frame torn: its last sectors never reached the disk", func(t *testing.T, path string, last int) {
			editFile(t, path, func(b []byte) { clear(b[last+sectorSize : last+3*sectorSize]) })
		}, 3, ""},
		{"last frame torn: only its first sector reached the disk", func(t *testing.T, path string, last int) {
			editFile(t, path, func(b []byte) { clear(b[last+sectorSize : alignSector(last+2000)]) })
		}, 3, ""},
		{"a flipped byte in the last frame", func(t *testing.T, path string, last int) {
			editFile(t, path, func(b []byte) { b[last+700] ^= 0x04 })
		}, 0, "frame checksum mismatch"},
		{"a flipped high bit of the last frame's length", func(t *testing.T, path string, last int) {
			editFile(t, path, func(b []byte) { b[last+2] ^= 0x10 })
		}, 0, "header checksum mismatch"},
		{"a flipped byte in an earlier frame", func(t *testing.T, path string, last int) {
			editFile(t, path, func(b []byte) { b[100] ^= 0x01 })
		}, 0, "frame checksum mismatch"},
		{"a flipped byte in the padding after a frame", func(t *testing.T, path string, last int) {
			editFile(t, path, func(b []byte) { b[last-1] ^= 0x01 })
		}, 0, "padding"},
		{"a flipped byte in the zeros after the last frame", func(t *testing.T, path string, last int) {
			editFile(t, path, func(b []byte) { b[len(b)-10] ^= 0x01 })
		}, 0, "after the last frame"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			writeJournal(t, dir, bs, 1<<20)
			paths := segmentPaths(t, dir)
			if len(paths) != 1 {
				t.Fatalf("%d segments", len(paths))
			}
			offs := frameOffsets(t, paths[0])
			c.edit(t, paths[0], offs[len(offs)-1])
			_, got, err := openJournal(dir, 1<<20, 0)
			if c.wantErr != "" {
				var d *JournalDamage
				if !errors.As(err, &d) || !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), paths[0]) {
					t.Fatalf("openJournal: %v, want damage mentioning %q and the segment", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != c.wantBatches {
				t.Fatalf("read back %d batches, want %d", len(got), c.wantBatches)
			}
		})
	}
}

// Damage in a segment that holds only entries the log already integrated is harmless:
// the journal can do without it. Anywhere else it stops the ledger.
func TestJournalDamageBelowTheLogIsHarmless(t *testing.T) {
	bs := testBatches(40, 5)
	dir := t.TempDir()
	writeJournal(t, dir, bs, 1<<12) // small segments: one or two frames each
	paths := segmentPaths(t, dir)
	if len(paths) < 3 {
		t.Fatalf("want several segments, got %d", len(paths))
	}
	editFile(t, paths[0], func(b []byte) { b[50] ^= 0x01 })
	segs, _ := readSegments(dir, false)
	if _, _, err := openJournal(dir, 1<<12, segs[1].first-1); err == nil {
		t.Fatal("damage to entries the log does not hold was ignored")
	}
	_, got, err := openJournal(dir, 1<<12, segs[1].first)
	if err != nil {
		t.Fatalf("damage to entries the log holds: %v", err)
	}
	if len(got) == 0 || got[len(got)-1].end() != bs[len(bs)-1].end() {
		t.Fatalf("the batches after the damaged segment were not read back")
	}
}

// Segments written by the earlier format (.wal) are still replayed.
func TestJournalReadsTheEarlierFormat(t *testing.T) {
	dir := t.TempDir()
	bs := testBatches(3, 2)
	var data []byte
	for _, b := range bs {
		frame := encodeFrame(nil, b)
		payload := frame[frameHeaderSize:]
		data = binary.BigEndian.AppendUint32(data, uint32(len(payload)))
		data = binary.BigEndian.AppendUint32(data, crc32.Checksum(payload, crcTable))
		data = append(data, payload...)
	}
	data = append(data, make([]byte, 4096)...)
	if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%020d.wal", 0)), data, 0o600); err != nil {
		t.Fatal(err)
	}
	j, got, err := openJournal(dir, 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || !bytes.Equal(got[2].entries[1], bs[2].entries[1]) {
		t.Fatalf("read %d batches", len(got))
	}
	if err := j.write(&batch{first: bs[2].end(), entries: [][]byte{[]byte(`{}`)}}); err != nil {
		t.Fatal(err)
	}
	if err := j.close(0); err != nil {
		t.Fatal(err)
	}
	_, got, err = openJournal(dir, 1<<20, 0)
	if err != nil || len(got) != 4 {
		t.Fatalf("after a write in the current format: %d batches, %v", len(got), err)
	}
}

// A batch whose frame length would not fit the frame's 4-byte length is refused
// rather than written with a length that wraps (and then read back as damage).
func TestJournalRefusesABatchBeyondItsFrame(t *testing.T) {
	entry := bytes.Repeat([]byte("x"), oar.MaxEntrySize) // shared: the batch costs 64 KiB
	b := &batch{first: 0, entries: make([][]byte, oar.MaxSealCount+1)}
	for i := range b.entries {
		b.entries[i] = entry
	}
	j, _, err := openJournal(t.TempDir(), 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close(0)
	if err := j.write(b); err == nil || !strings.Contains(err.Error(), "more than a frame holds") {
		t.Fatalf("write of a %d-byte frame: %v", frameSize(b), err)
	}
}

// TestJournalWritesDirectlyWhereItCan: where the file system takes O_DIRECT, frames go
// to the disk by direct I/O (one pwritev2 with RWF_DSYNC each), in every segment, and
// the journal reads every frame back when it opens again.
func TestJournalWritesDirectlyWhereItCan(t *testing.T) {
	t.Run("aio", func(t *testing.T) { testJournalWritesDirectly(t, true) })
	t.Run("pwritev2", func(t *testing.T) { testJournalWritesDirectly(t, false) })
}

// testJournalWritesDirectly writes the frames with Linux AIO (the journal's way where
// the kernel has it) or, with aio false, by pwritev2.
func testJournalWritesDirectly(t *testing.T, aio bool) {
	if aio {
		w, err := newAsyncWriter()
		if err != nil {
			t.Skipf("this kernel refuses Linux AIO (%v); the journal writes by pwritev2", err)
		}
		w.close()
	}
	dir := t.TempDir()
	// Frames of 0.3 to 2 KiB, a short one after a long one, so that a padding written
	// from a buffer that held a longer frame must still be zeros: the 1 MiB first
	// segment and more.
	var bs []*batch
	for i, next := 0, uint64(0); i < 900; i++ {
		b := testBatches(1, 1+5*(i%2))[0]
		for e := range b.entries {
			b.entries[e] = fmt.Appendf(nil, `{"entry":%d,"pad":"%s"}`, next+uint64(e), strings.Repeat("x", 280))
		}
		b.first, next = next, next+uint64(len(b.entries))
		bs = append(bs, b)
	}
	j, _, err := openJournal(dir, 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !aio {
		j.aio.close()
		j.aio = nil
	}
	if err := j.write(bs[0]); err != nil {
		t.Fatal(err)
	}
	probe := openDirect(segmentPaths(t, dir)[0])
	if probe == nil {
		t.Skipf("the file system of %s takes no direct I/O; frames go through the page cache", dir)
	}
	probe.Close()
	for _, b := range bs[1:] {
		if j.direct == nil {
			t.Fatalf("the file system takes O_DIRECT, but segment %s is not written directly", j.curSeg.path)
		}
		if err := j.write(b); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(segmentPaths(t, dir)); n < 2 {
		t.Fatalf("the frames fit in %d segment; the test means to cross into a second", n)
	}
	if aio && j.aio == nil {
		t.Fatal("the journal gave up Linux AIO although this kernel has it")
	}
	if want := map[bool]string{true: WritesAIO, false: WritesPwritev2}[aio]; j.writesNow() != want {
		t.Fatalf("the journal reports its writes as %q, want %q", j.writesNow(), want)
	}
	checkReadBack(t, j, dir, bs)
}

// checkReadBack closes j, opens its directory again and fails unless the journal gives
// back exactly the entries of bs, in order.
func checkReadBack(t *testing.T, j *journal, dir string, bs []*batch) {
	t.Helper()
	if err := j.close(0); err != nil {
		t.Fatal(err)
	}
	j, got, err := openJournal(dir, 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close(0)
	var want, have [][]byte
	for _, b := range bs {
		want = append(want, b.entries...)
	}
	for _, b := range got {
		have = append(have, b.entries...)
	}
	if len(have) != len(want) {
		t.Fatalf("read back %d entries, wrote %d", len(have), len(want))
	}
	for i := range want {
		if !bytes.Equal(have[i], want[i]) {
			t.Fatalf("entry %d read back as %q, written as %q", i, have[i], want[i])
		}
	}
}

// TestJournalFallsBackFromDirectWrites: a direct write the kernel refuses (EINVAL: an
// offset off the disk's logical sectors, as a disk with sectors larger than the
// journal's would refuse every frame) is made through the page cache and fdatasync
// instead, and the segment is written that way from then on; the journal keeps Linux
// AIO for later segments, since pwritev2 refused the write too.
func TestJournalFallsBackFromDirectWrites(t *testing.T) {
	aio, err := newAsyncWriter()
	if err != nil {
		t.Logf("this kernel refuses Linux AIO (%v): only pwritev2 is tried", err)
	}
	path := filepath.Join(t.TempDir(), "segment")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := zeroFill(f, 0, 1<<16); err != nil {
		t.Fatal(err)
	}
	j := &journal{cur: f, direct: openDirect(path), aio: aio}
	if j.direct == nil {
		t.Skipf("the file system of %s takes no direct I/O", path)
	}
	defer func() {
		if j.aio != nil {
			j.aio.close()
		}
	}()
	frame := encodeFrame(frameBuffer(nil, sectorSize), testBatches(1, 1)[0])
	const off = sectorSize + 100 // a direct write must start on a sector
	if err := j.writeDurably(frame, off); err != nil {
		t.Fatalf("a write direct I/O refuses: %v", err)
	}
	if j.direct != nil {
		t.Fatal("after the kernel refused a direct write, the segment is still written directly")
	}
	if aio != nil && j.aio == nil {
		t.Fatal("the journal gave up Linux AIO for a write pwritev2 refused as well")
	}
	if j.writesNow() != WritesFdatasync {
		t.Fatalf("the journal reports its writes as %q, want %q", j.writesNow(), WritesFdatasync)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[off:off+len(frame)], frame) || !allZero(got[:off]) || !allZero(got[off+len(frame):]) {
		t.Fatal("the frame is not where it was written, or other bytes changed")
	}
}

// TestSpareSegmentIsZeros: a spare segment is all zeros, written (not a hole) and exactly its size, whether
// the size is whole chunks, ends inside a sector, or is smaller than one, and whatever
// a spare left before held; where the file system takes direct I/O, every whole sector
// of it is written directly, a chunk at a time (zeroFillDirect), and only the rest
// through the page cache.
func TestSpareSegmentIsZeros(t *testing.T) {
	dir := t.TempDir()
	j := &journal{dir: dir}
	if err := os.WriteFile(filepath.Join(dir, spareName), bytes.Repeat([]byte{0xA5}, 5<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, size := range []int64{1 << 20, 3<<20 + 700, 100} {
		sp := j.makeSpare(size)
		if sp.err != nil {
			t.Fatalf("makeSpare(%d): %v", size, sp.err)
		}
		got, err := os.ReadFile(sp.path)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(got)) != size || sp.size != size || !allZero(got) {
			t.Fatalf("makeSpare(%d): %d bytes (reported %d), all zeros %v", size, len(got), sp.size, allZero(got))
		}
		// Written, not a hole: a frame written into it later changes no metadata.
		fi, err := os.Stat(sp.path)
		if err != nil {
			t.Fatal(err)
		}
		if blocks := fi.Sys().(*syscall.Stat_t).Blocks * 512; blocks < size {
			t.Fatalf("makeSpare(%d): %d bytes allocated; the rest is a hole", size, blocks)
		}
	}
	path := filepath.Join(dir, "probe")
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	probe := openDirect(path)
	if probe == nil {
		t.Skipf("the file system of %s takes no direct I/O; spares are zeroed through the page cache", dir)
	}
	probe.Close()
	if done, err := zeroFillDirect(path, 3<<20+700); err != nil || done != 3<<20+512 {
		t.Fatalf("zeroFillDirect wrote %d bytes directly (%v), want the whole sectors, %d", done, err, 3<<20+512)
	}
}
