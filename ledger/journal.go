package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/oar"
)

// The journal is a group-commit write-ahead log in front of Tessera. A sealed batch
// (its records followed by their seal) is written as one checksummed frame and
// fdatasync'd before any receipt for it is handed out; Tessera integrates the batch
// afterwards. On open, frames that Tessera had not integrated are replayed into it.
//
// Segments are zero-filled to their full size before use and frames overwrite the
// zeros in place. The file's size and extents then never change while it is written,
// so fdatasync flushes only data and never waits for a filesystem journal commit
// shared with Tessera's many metadata updates: that is what keeps receipts fast.
//
// Frame: u32 payload length | u32 CRC-32C of payload | payload.
// Payload: u64 index of the first entry | u32 entry count | count × (u32 length | bytes).
// All integers big-endian. A zero length marks the end of a segment's frames.
// Segments are named by the index of their first entry.

const (
	segmentSuffix   = ".wal"
	spareName       = "spare.tmp"
	frameHeaderSize = 8
	// maxFrame bounds a frame read back: a batch of MaxSealCount full-size entries.
	maxFrame = (oar.MaxSealCount + 1) * (oar.MaxEntrySize + 4)
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

type segment struct {
	first uint64 // index of the first entry in the segment
	end   uint64 // index after the last entry written to it
	path  string
}

type journal struct {
	dir     string
	segSize int64

	mu     sync.Mutex
	closed []segment // guarded by mu; finished segments, oldest first
	curSeg segment   // guarded by mu

	// Only the sealer goroutine uses these after open.
	cur       *os.File
	off       int64 // write offset in cur
	limit     int64 // size of cur
	buf       []byte
	spare     chan spareFile // a zero-filled segment prepared in the background
	preparing bool           // a spare is on its way to the spare channel
	nextSize  int64          // size of the next segment: small at first, doubling up to segSize
}

type spareFile struct {
	path string
	size int64
	err  error
}

// batch is a run of consecutive log entries: records followed by their seal.
type batch struct {
	first   uint64
	entries [][]byte
}

func (b *batch) end() uint64 { return b.first + uint64(len(b.entries)) }

func segmentName(first uint64) string { return fmt.Sprintf("%020d%s", first, segmentSuffix) }

// openJournal reads every segment in dir, discarding a frame torn by a crash at the
// tail of the last one, and returns the batches it holds in order.
func openJournal(dir string, segSize int64) (*journal, []*batch, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	os.Remove(filepath.Join(dir, spareName)) // an unfinished spare from before a crash
	names, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	if err != nil {
		return nil, nil, err
	}
	sort.Strings(names)
	// The first segment is small, so that a short-lived process (one CLI append) does
	// not zero-fill a full segment; later ones double up to segSize.
	j := &journal{dir: dir, segSize: segSize, spare: make(chan spareFile, 1), nextSize: min(1<<20, segSize)}
	var batches []*batch
	for i, name := range names {
		first, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(name), segmentSuffix), 10, 64)
		if err != nil {
			return nil, nil, fmt.Errorf("journal: unexpected file %s", name)
		}
		last := i == len(names)-1
		bs, validLen, err := readSegment(name, last)
		if err != nil {
			return nil, nil, err
		}
		seg := segment{first: first, end: first, path: name}
		for k, b := range bs {
			if k == 0 && b.first != first {
				return nil, nil, fmt.Errorf("journal: %s starts at entry %d, not %d", name, b.first, first)
			}
			if n := len(batches); n > 0 && b.first != batches[n-1].end() {
				return nil, nil, fmt.Errorf("journal: %s holds entries from %d where %d was expected", name, b.first, batches[n-1].end())
			}
			seg.end = b.end()
			batches = append(batches, b)
		}
		if !last {
			j.closed = append(j.closed, seg)
			continue
		}
		if err := j.reopen(seg, validLen); err != nil {
			return nil, nil, err
		}
	}
	return j, batches, nil
}

// reopen continues writing the last segment after its last valid frame, first zeroing
// whatever a torn write left there.
func (j *journal) reopen(seg segment, validLen int64) error {
	f, err := os.OpenFile(seg.path, os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	if tail := st.Size() - validLen; tail > 0 {
		head := make([]byte, min(tail, frameHeaderSize))
		f.ReadAt(head, validLen)
		if !allZero(head) {
			if err := zeroFill(f, validLen, st.Size()); err != nil {
				f.Close()
				return fmt.Errorf("journal: clear torn tail of %s: %v", seg.path, err)
			}
		}
	}
	j.cur, j.curSeg, j.off, j.limit = f, seg, validLen, st.Size()
	return nil
}

// readSegment decodes a segment's frames up to the zeros that follow them. In the last
// segment a short or corrupt frame is a write torn by a crash: it was never
// acknowledged, so it is dropped. Anywhere else it is corruption.
func readSegment(path string, last bool) ([]*batch, int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	var out []*batch
	off := 0
	for off < len(data) {
		if len(data)-off >= 4 && binary.BigEndian.Uint32(data[off:]) == 0 {
			break // the zero-filled rest of the segment
		}
		b, n, err := decodeFrame(data[off:])
		if err != nil {
			if last {
				break
			}
			return nil, 0, fmt.Errorf("journal: %s is corrupt at offset %d: %v", path, off, err)
		}
		out = append(out, b)
		off += n
	}
	return out, int64(off), nil
}

func decodeFrame(data []byte) (*batch, int, error) {
	if len(data) < frameHeaderSize {
		return nil, 0, errors.New("short frame header")
	}
	n := binary.BigEndian.Uint32(data)
	if uint64(n) > maxFrame || int(n) > len(data)-frameHeaderSize {
		return nil, 0, fmt.Errorf("frame length %d exceeds the data", n)
	}
	payload := data[frameHeaderSize : frameHeaderSize+int(n)]
	if crc32.Checksum(payload, crcTable) != binary.BigEndian.Uint32(data[4:]) {
		return nil, 0, errors.New("frame checksum mismatch")
	}
	if len(payload) < 12 {
		return nil, 0, errors.New("short frame payload")
	}
	b := &batch{first: binary.BigEndian.Uint64(payload)}
	count := binary.BigEndian.Uint32(payload[8:])
	if count == 0 || count > oar.MaxSealCount+1 {
		return nil, 0, fmt.Errorf("frame holds %d entries", count)
	}
	p := payload[12:]
	for i := uint32(0); i < count; i++ {
		if len(p) < 4 {
			return nil, 0, errors.New("truncated entry length")
		}
		l := binary.BigEndian.Uint32(p)
		if l > oar.MaxEntrySize || int(l) > len(p)-4 {
			return nil, 0, fmt.Errorf("entry length %d exceeds the frame", l)
		}
		b.entries = append(b.entries, p[4:4+l:4+l])
		p = p[4+l:]
	}
	if len(p) != 0 {
		return nil, 0, errors.New("trailing bytes in frame")
	}
	return b, frameHeaderSize + int(n), nil
}

func encodeFrame(buf []byte, b *batch) []byte {
	n := 12
	for _, e := range b.entries {
		n += 4 + len(e)
	}
	buf = binary.BigEndian.AppendUint32(buf[:0], uint32(n))
	buf = binary.BigEndian.AppendUint32(buf, 0)
	buf = binary.BigEndian.AppendUint64(buf, b.first)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(b.entries)))
	for _, e := range b.entries {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(e)))
		buf = append(buf, e...)
	}
	binary.BigEndian.PutUint32(buf[4:], crc32.Checksum(buf[frameHeaderSize:], crcTable))
	return buf
}

// write appends a batch as one frame and makes it durable. Called by one goroutine.
func (j *journal) write(b *batch) error {
	j.buf = encodeFrame(j.buf, b)
	// Keep room for a zero length after the frame, which marks the end of the frames.
	need := int64(len(j.buf)) + 4
	if j.cur == nil || j.off+need > j.limit {
		if err := j.rotate(b.first, need); err != nil {
			return err
		}
	}
	if _, err := j.cur.WriteAt(j.buf, j.off); err != nil {
		return fmt.Errorf("journal write: %v", err)
	}
	if err := syscall.Fdatasync(int(j.cur.Fd())); err != nil {
		return fmt.Errorf("journal sync: %v", err)
	}
	j.off += int64(len(j.buf))
	j.mu.Lock()
	j.curSeg.end = b.end()
	j.mu.Unlock()
	return nil
}

// rotate starts a new segment at entry first, big enough for need bytes, using the
// spare prepared in the background when there is one that fits.
func (j *journal) rotate(first uint64, need int64) error {
	var sp spareFile
	if j.preparing {
		sp, j.preparing = <-j.spare, false
		if sp.err == nil && sp.size < need {
			os.Remove(sp.path)
			sp = j.makeSpare(need)
		}
	} else {
		sp = j.makeSpare(max(need, j.nextSize))
	}
	if sp.err != nil {
		return fmt.Errorf("journal: prepare segment: %v", sp.err)
	}
	path := filepath.Join(j.dir, segmentName(first))
	if err := os.Rename(sp.path, path); err != nil {
		return fmt.Errorf("journal: new segment: %v", err)
	}
	if err := identity.SyncDir(j.dir); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	j.nextSize = min(2*j.nextSize, j.segSize)
	j.preparing = true
	go func(size int64) { j.spare <- j.makeSpare(size) }(j.nextSize)
	j.mu.Lock()
	if j.cur != nil {
		j.cur.Close()
		if j.curSeg.end > j.curSeg.first {
			j.closed = append(j.closed, j.curSeg)
		} else {
			os.Remove(j.curSeg.path)
		}
	}
	j.curSeg = segment{first: first, end: first, path: path}
	j.mu.Unlock()
	j.cur, j.off, j.limit = f, 0, sp.size
	return nil
}

// makeSpare writes a zero-filled file of the given size and makes it durable.
func (j *journal) makeSpare(size int64) spareFile {
	path := filepath.Join(j.dir, spareName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return spareFile{err: err}
	}
	defer f.Close()
	if err := zeroFill(f, 0, size); err != nil {
		return spareFile{err: err}
	}
	return spareFile{path: path, size: size}
}

// zeroFill writes zeros over [from, to) and fsyncs, so the extents are allocated and
// written and later in-place writes change no metadata.
func zeroFill(f *os.File, from, to int64) error {
	zeros := make([]byte, 1<<20)
	for off := from; off < to; {
		n := min(int64(len(zeros)), to-off)
		if _, err := f.WriteAt(zeros[:n], off); err != nil {
			return err
		}
		off += n
	}
	return f.Sync()
}

func allZero(b []byte) bool { return len(bytes.Trim(b, "\x00")) == 0 }

// release deletes finished segments whose entries Tessera has all integrated.
func (j *journal) release(integrated uint64) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for len(j.closed) > 0 && j.closed[0].end <= integrated {
		os.Remove(j.closed[0].path)
		j.closed = j.closed[1:]
	}
}

// close closes the journal; with everything integrated it removes every segment.
func (j *journal) close(integrated uint64) error {
	j.release(integrated)
	if j.preparing {
		sp := <-j.spare
		os.Remove(sp.path)
		j.preparing = false
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.cur == nil {
		return nil
	}
	err := j.cur.Close()
	if j.curSeg.end <= integrated && len(j.closed) == 0 {
		os.Remove(j.curSeg.path)
	}
	j.cur = nil
	return err
}
