package memory

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// scrub must remove what secure_delete leaves: bytes in the unused space of a live
// b-tree page (where SQLite leaves the cells a rebalanced page moved away). The test
// puts a canary there, in the gap and in a free block, and scrubs.
func TestScrubZeroesUnusedSpace(t *testing.T) {
	for _, tc := range []struct {
		name     string
		walInUse bool // another write is in the WAL, so scrub reads pages through SQLite
	}{{"from the file", false}, {"through SQLite, with the WAL in use", true}} {
		t.Run(tc.name, func(t *testing.T) { testScrub(t, tc.walInUse) })
	}
}

func testScrub(t *testing.T, walInUse bool) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir)
	defer s.Close()
	fill(t, s, "t", 400, 20, newTextGen(5))
	// Deleting every other row of a page leaves free blocks in it.
	if _, err := s.w.Exec("DELETE FROM memories WHERE rid % 2 = 0 AND rid < 60"); err != nil {
		t.Fatal(err)
	}
	if err := s.checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	canary := []byte("CANARY-stale-cell-copy")
	var planted []int
	var pageSize int
	s.w.QueryRow("PRAGMA page_size").Scan(&pageSize)
	rows, err := s.w.Query("SELECT pgno, data FROM sqlite_dbpage")
	if err != nil {
		t.Fatal(err)
	}
	type edit struct {
		pgno int
		data []byte
	}
	var edits []edit
	gaps, blocks := 0, 0
	for rows.Next() {
		var pgno int
		var data []byte
		if err := rows.Scan(&pgno, &data); err != nil {
			t.Fatal(err)
		}
		ranges := unusedRanges(pgno, data, pageSize)
		changed := false
		for i, r := range ranges {
			if r[1]-r[0] < len(canary) {
				continue
			}
			if i == 0 && gaps < 3 {
				gaps++
			} else if i > 0 && blocks < 3 {
				blocks++
			} else {
				continue
			}
			copy(data[r[0]:], canary)
			changed = true
		}
		if changed {
			edits = append(edits, edit{pgno, data})
			planted = append(planted, pgno)
		}
	}
	rows.Close()
	if gaps == 0 || blocks == 0 {
		t.Fatalf("found %d gaps and %d free blocks to plant a canary in; the test would prove little", gaps, blocks)
	}
	tx, err := s.w.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range edits {
		if _, err := tx.Exec("UPDATE sqlite_dbpage SET data = ? WHERE pgno = ?", e.data, e.pgno); err != nil {
			t.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	canaries := map[string][][]byte{"canary": {canary}}
	if len(traces(t, dir, canaries)) == 0 {
		t.Fatal("the canaries are not in the file; the test would prove nothing")
	}
	checkIntegrity(t, s)
	if walInUse {
		if _, err := s.Add(ctx, NewMemory{Tenant: "t", Subject: "late", Classification: 1, Text: "written after the checkpoint"}); err != nil {
			t.Fatal(err)
		}
	}

	n, err := s.scrub(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n < len(planted) {
		t.Errorf("scrub rewrote %d pages, want at least the %d planted", n, len(planted))
	}
	if err := s.checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	for _, hit := range traces(t, dir, canaries) {
		t.Errorf("after scrub: %s", hit)
	}
	checkIntegrity(t, s)
	if n, err := s.scrub(ctx); err != nil || n != 0 {
		t.Errorf("a second scrub rewrote %d pages (%v), want none", n, err)
	}
}

// unusedRanges reads page bytes from the database file; whatever they are, the ranges
// it returns lie in the page, after the header and cell pointer array, do not overlap,
// and zeroUnused changes no byte outside them.
func FuzzUnusedRanges(f *testing.F) {
	leaf := make([]byte, 512)
	leaf[0] = 0x0d
	binary.BigEndian.PutUint16(leaf[3:], 2)   // cells
	binary.BigEndian.PutUint16(leaf[5:], 400) // content area
	binary.BigEndian.PutUint16(leaf[8:], 400)
	binary.BigEndian.PutUint16(leaf[10:], 460)
	binary.BigEndian.PutUint16(leaf[1:], 420) // a free block at 420, 20 bytes
	binary.BigEndian.PutUint16(leaf[422:], 20)
	copy(leaf[20:], "stale bytes in the gap")
	f.Add(uint16(2), leaf)
	interior := bytes.Clone(leaf)
	interior[0] = 0x05
	f.Add(uint16(3), interior)
	first := make([]byte, 512)
	copy(first, "SQLite format 3\x00")
	first[100] = 0x0d
	binary.BigEndian.PutUint16(first[105:], 512)
	f.Add(uint16(1), first)
	f.Add(uint16(9), []byte{0, 0, 0, 7, 1, 2, 3})
	f.Add(uint16(4), []byte{0x0a, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, pgno uint16, page []byte) {
		p := int(pgno)%4 + 1
		usable := len(page)
		ranges := unusedRanges(p, page, usable)
		hdr := 0
		if p == 1 {
			hdr = 100
		}
		end := hdr + 8
		for i, r := range ranges {
			if r[0] < end || r[1] > usable || r[0] > r[1] {
				t.Fatalf("range %d %v outside [%d, %d) or overlapping: %v", i, r, end, usable, ranges)
			}
			end = r[1]
		}
		if len(ranges) > 0 {
			cells := int(binary.BigEndian.Uint16(page[hdr+3:]))
			if ranges[0][0] < hdr+8+2*cells {
				t.Fatalf("range %v covers the cell pointer array of %d cells", ranges[0], cells)
			}
		}
		before := bytes.Clone(page)
		zeroUnused(p, page, usable)
		in := func(i int) bool {
			for _, r := range ranges {
				if i >= r[0] && i < r[1] {
					return true
				}
			}
			return false
		}
		for i := range page {
			if page[i] != before[i] && !in(i) {
				t.Fatalf("zeroUnused changed byte %d outside %v", i, ranges)
			}
		}
	})
}

// walFile builds a WAL file: a header with salt, then one frame per page number, each
// under the salt given for it.
func walFile(pageSize int, salt uint64, frames []uint32, salts []uint64) []byte {
	b := make([]byte, 32)
	binary.BigEndian.PutUint32(b[0:], 0x377f0682)
	binary.BigEndian.PutUint32(b[4:], 3007000)
	binary.BigEndian.PutUint32(b[8:], uint32(pageSize))
	binary.BigEndian.PutUint64(b[16:], salt)
	for i, pgno := range frames {
		fh := make([]byte, 24+pageSize)
		binary.BigEndian.PutUint32(fh[0:], pgno)
		binary.BigEndian.PutUint64(fh[8:], salts[i])
		b = append(b, fh...)
	}
	return b
}

func TestWALPages(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		wal  []byte
		want []int
	}{
		{"missing", nil, nil},
		{"empty", []byte{}, nil},
		{"frames under the current salt only", walFile(512, 7, []uint32{3, 4, 3, 9}, []uint64{7, 6, 7, 7}), []int{3, 9}},
		{"a frame cut short", walFile(512, 7, []uint32{5, 6}, []uint64{7, 7})[:32+24+512+30], []int{5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			if tc.wal != nil {
				if err := os.WriteFile(path, tc.wal, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			got, err := walPages(path, 512)
			if err != nil {
				t.Fatal(err)
			}
			var pages []int
			for p := range got {
				pages = append(pages, p)
			}
			slices.Sort(pages)
			if !slices.Equal(pages, tc.want) {
				t.Errorf("walPages = %v, want %v", pages, tc.want)
			}
		})
	}
	if err := os.WriteFile(filepath.Join(dir, "wrong"), walFile(1024, 1, []uint32{2}, []uint64{1}), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := walPages(filepath.Join(dir, "wrong"), 512); err == nil || !strings.Contains(err.Error(), "1024") {
		t.Errorf("a WAL of another page size: %v, want an error naming it", err)
	}

	// A live store: the WAL names the pages a write changed until a checkpoint.
	ctx := context.Background()
	s := openStore(t, filepath.Join(dir, "store"))
	defer s.Close()
	if err := s.checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	var pageSize, pageCount int
	s.w.QueryRow("PRAGMA page_size").Scan(&pageSize)
	wal := filepath.Join(s.dir, "memory.db-wal")
	if got, err := walPages(wal, pageSize); err != nil || len(got) != 0 {
		t.Fatalf("after a checkpoint: %v, %v; want no pages", got, err)
	}
	if _, err := s.Add(ctx, NewMemory{Tenant: "t", Subject: "s", Classification: 1, Text: "one memory"}); err != nil {
		t.Fatal(err)
	}
	s.w.QueryRow("PRAGMA page_count").Scan(&pageCount)
	got, err := walPages(wal, pageSize)
	if err != nil || len(got) == 0 {
		t.Fatalf("after a write: %v, %v; want its pages", got, err)
	}
	for p := range got {
		if p < 1 || p > pageCount {
			t.Errorf("page %d is not in a database of %d pages", p, pageCount)
		}
	}
}

// walPages reads a file from the data directory: whatever it holds, it returns pages
// or an error, never panics, and names only pages of frames under the header's salt.
func FuzzWALPages(f *testing.F) {
	f.Add(walFile(512, 7, []uint32{3, 4}, []uint64{7, 6}))
	f.Add(walFile(512, 0, nil, nil))
	f.Add([]byte("not a WAL"))
	f.Add(walFile(1024, 7, []uint32{1}, []uint64{7}))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, wal []byte) {
		path := filepath.Join(dir, "wal")
		if err := os.WriteFile(path, wal, 0o600); err != nil {
			t.Fatal(err)
		}
		got, err := walPages(path, 512)
		if err != nil {
			return
		}
		want := map[int]bool{}
		if len(wal) >= 32 {
			for off := 32; off+24+512 <= len(wal); off += 24 + 512 {
				if bytes.Equal(wal[off+8:off+16], wal[16:24]) {
					want[int(binary.BigEndian.Uint32(wal[off:]))] = true
				}
			}
		}
		if len(got) != len(want) {
			t.Fatalf("walPages = %v, want %v", got, want)
		}
		for p := range got {
			if !want[p] {
				t.Fatalf("walPages = %v, want %v", got, want)
			}
		}
	})
}
