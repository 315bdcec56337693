package memory

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// scrub zeroes the unused space of the database's b-tree pages.
//
// secure_delete zeroes a cell when it is deleted and a page when it is freed, but when
// SQLite rebalances a b-tree it may rebuild a page by packing the cells that stay at
// its end, leaving the bytes of the cells that moved to another page in the gap it
// opens (btree.c rebuildPage). A copy of a cell can so outlive the cell's deletion
// inside a live page. purge runs scrub after a checkpoint. Inside a write transaction,
// so that no other connection commits meanwhile, it reads the database file for the
// b-tree pages whose unused space is not zero, and the WAL for the pages committed
// since the checkpoint (whose newest version the file does not show yet); it reads
// each of those pages as SQLite has it and writes it back, through sqlite_dbpage, with
// exactly its unused bytes zeroed. It returns how many pages it rewrote.
//
// The database file is read through s.db, which stays open as long as the store:
// closing any descriptor of a file drops every POSIX lock the process holds on it,
// including the locks of SQLite's own connections, after which another process could
// take the database as unused (https://www.sqlite.org/howtocorrupt.html, 2.2). The WAL
// file carries no locks (SQLite locks the -shm file), so it is opened per scrub.
func (s *Store) scrub(ctx context.Context) (int, error) {
	var pageSize int
	if err := s.w.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
		return 0, fmt.Errorf("scrub: %w", err)
	}
	path := filepath.Join(s.dir, "memory.db")
	// The transaction takes the write lock at once (_txlock=immediate).
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("scrub: %w", err)
	}
	defer tx.Rollback()
	inWAL, err := walPages(path+"-wal", pageSize)
	if err != nil {
		return 0, err
	}
	get, err := tx.PrepareContext(ctx, "SELECT data FROM sqlite_dbpage WHERE pgno = ?")
	if err != nil {
		return 0, fmt.Errorf("scrub: %w", err)
	}
	defer get.Close()
	put, err := tx.PrepareContext(ctx, "UPDATE sqlite_dbpage SET data = ? WHERE pgno = ?")
	if err != nil {
		return 0, fmt.Errorf("scrub: %w", err)
	}
	defer put.Close()
	n, usable := 0, pageSize
	// fix zeroes a page's unused space, reading the page through SQLite unless the
	// file's copy is its newest version.
	fix := func(pgno int, page []byte) error {
		if page == nil || inWAL[pgno] {
			if err := get.QueryRowContext(ctx, pgno).Scan(&page); err != nil {
				return fmt.Errorf("scrub: read page %d: %w", pgno, err)
			}
		}
		if !zeroUnused(pgno, page, usable) {
			return nil
		}
		if _, err := put.ExecContext(ctx, page, pgno); err != nil {
			return fmt.Errorf("scrub: write page %d: %w", pgno, err)
		}
		n++
		return nil
	}
	seen := make(map[int]bool)
	if usable, err = dirtyPages(s.db, pageSize, func(pgno int, page []byte) error {
		seen[pgno] = true
		return fix(pgno, page)
	}); err != nil {
		return 0, err
	}
	for pgno := range inWAL {
		if !seen[pgno] {
			if err := fix(pgno, nil); err != nil {
				return 0, err
			}
		}
	}
	if n == 0 {
		return 0, nil
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("scrub: %w", err)
	}
	return n, nil
}

// walPages returns the numbers of the pages that have frames in the WAL file at path
// under its current salt (frames left from before the WAL last restarted carry an
// older salt and are no part of the database). A missing or empty WAL has none. See
// https://www.sqlite.org/fileformat2.html#walformat.
func walPages(path string, pageSize int) (map[int]bool, error) {
	pages := make(map[int]bool)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return pages, nil
	}
	if err != nil {
		return nil, fmt.Errorf("scrub: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var hdr [32]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return pages, nil // empty, or too short to hold a frame
	}
	if got := int(binary.BigEndian.Uint32(hdr[8:])); got != pageSize {
		return nil, fmt.Errorf("scrub: WAL %s has pages of %d bytes, the database %d", path, got, pageSize)
	}
	salt := hdr[16:24]
	var fh [24]byte
	for {
		if _, err := io.ReadFull(r, fh[:]); err != nil {
			return pages, nil // the end, or a frame cut short: not committed
		}
		if _, err := r.Discard(pageSize); err != nil {
			return pages, nil
		}
		if bytes.Equal(fh[8:16], salt) {
			pages[int(binary.BigEndian.Uint32(fh[0:]))] = true
		}
	}
}

// dirtyPages reads the database file db from its start (without moving its offset,
// and without closing it) and calls dirty with each b-tree page whose unused space
// holds a byte that is not zero. It returns the usable size of a page: the page size
// less the reserved bytes the header names. dirty may change the page it is given.
func dirtyPages(db *os.File, pageSize int, dirty func(pgno int, page []byte) error) (usable int, err error) {
	const chunkPages = 256
	buf := make([]byte, chunkPages*pageSize)
	usable = pageSize
	for pgno, off := 1, int64(0); ; off += int64(len(buf)) {
		n, err := db.ReadAt(buf, off)
		if pgno == 1 && n > 20 {
			usable -= int(buf[20]) // reserved bytes at the end of every page
		}
		for off := 0; off+pageSize <= n; off += pageSize {
			page := buf[off : off+pageSize]
			for _, r := range unusedRanges(pgno, page, usable) {
				if !allZero(page[r[0]:r[1]]) {
					if err := dirty(pgno, page); err != nil {
						return 0, err
					}
					break
				}
			}
			pgno++
		}
		if errors.Is(err, io.EOF) {
			return usable, nil
		}
		if err != nil {
			return 0, fmt.Errorf("scrub: read %s: %w", db.Name(), err)
		}
	}
}

// zeroUnused zeroes the unused space of a b-tree page and reports whether it changed
// a byte.
func zeroUnused(pgno int, page []byte, usable int) bool {
	changed := false
	for _, r := range unusedRanges(pgno, page, usable) {
		if u := page[r[0]:r[1]]; !allZero(u) {
			clear(u)
			changed = true
		}
	}
	return changed
}

// unusedRanges returns the byte ranges of a b-tree page that no cell uses: the gap
// between the cell pointer array and the cell content area, and the body of each free
// block (after its 4-byte header). It returns nil for a page that is not a b-tree page
// — an overflow or free-list page, whose first byte is the high byte of a page number
// and so 0 in any database under 2^24 pages — and for one whose header does not add
// up, which is then left alone. usable is the page size less the reserved bytes.
// See https://www.sqlite.org/fileformat2.html#b_tree_pages.
func unusedRanges(pgno int, page []byte, usable int) [][2]int {
	hdr := 0
	if pgno == 1 {
		hdr = 100 // the database header
	}
	if usable > len(page) || usable < hdr+12 {
		return nil
	}
	var headerSize int
	switch page[hdr] {
	case 0x02, 0x05: // interior index, interior table
		headerSize = 12
	case 0x0a, 0x0d: // leaf index, leaf table
		headerSize = 8
	default:
		return nil
	}
	cells := int(binary.BigEndian.Uint16(page[hdr+3:]))
	content := int(binary.BigEndian.Uint16(page[hdr+5:]))
	if content == 0 {
		content = 65536
	}
	gapStart := hdr + headerSize + 2*cells
	if gapStart > content || content > usable {
		return nil
	}
	out := [][2]int{{gapStart, content}}
	for fb := int(binary.BigEndian.Uint16(page[hdr+1:])); fb != 0; {
		if fb < content || fb+4 > usable {
			return nil
		}
		size := int(binary.BigEndian.Uint16(page[fb+2:]))
		next := int(binary.BigEndian.Uint16(page[fb:]))
		if size < 4 || fb+size > usable || (next != 0 && next <= fb+size) {
			return nil
		}
		out = append(out, [2]int{fb + 4, fb + size})
		fb = next
	}
	return out
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
