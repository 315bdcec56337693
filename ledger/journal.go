package ledger

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
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
// Frame: u32 payload length | u32 CRC-32C of payload | payload.
// Payload: u64 index of the first entry | u32 entry count | count × (u32 length | bytes).
// All integers big-endian. Segments are named by the index of their first entry.

const (
	segmentSuffix   = ".wal"
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
	maxSize int64

	mu     sync.Mutex
	closed []segment // guarded by mu; finished segments, oldest first
	cur    *os.File  // only the sealer goroutine writes after open
	curSeg segment
	size   int64
	buf    []byte
}

// batch is a run of consecutive log entries: records followed by their seal.
type batch struct {
	first   uint64
	entries [][]byte
}

func (b *batch) end() uint64 { return b.first + uint64(len(b.entries)) }

func segmentName(first uint64) string { return fmt.Sprintf("%020d%s", first, segmentSuffix) }

// openJournal reads every segment in dir, truncating a torn frame at the tail of the
// last one, and returns the batches it holds in order.
func openJournal(dir string, maxSize int64) (*journal, []*batch, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	names, err := filepath.Glob(filepath.Join(dir, "*"+segmentSuffix))
	if err != nil {
		return nil, nil, err
	}
	sort.Strings(names)
	j := &journal{dir: dir, maxSize: maxSize}
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
		if last {
			f, err := os.OpenFile(name, os.O_RDWR, 0o600)
			if err != nil {
				return nil, nil, err
			}
			if err := f.Truncate(validLen); err != nil {
				f.Close()
				return nil, nil, fmt.Errorf("journal: truncate torn tail of %s: %v", name, err)
			}
			if _, err := f.Seek(validLen, io.SeekStart); err != nil {
				f.Close()
				return nil, nil, err
			}
			j.cur, j.curSeg, j.size = f, seg, validLen
		} else {
			j.closed = append(j.closed, seg)
		}
	}
	return j, batches, nil
}

// readSegment decodes a segment's frames. In the last segment a short or corrupt frame
// is a write torn by a crash: it was never acknowledged, so it is dropped. Anywhere
// else it is corruption.
func readSegment(path string, last bool) ([]*batch, int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	var out []*batch
	off := 0
	for off < len(data) {
		b, n, err := decodeFrame(data[off:])
		if err != nil {
			if last {
				return out, int64(off), nil
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

// write appends a batch as one frame and makes it durable. Called by one goroutine.
func (j *journal) write(b *batch) error {
	if j.cur == nil || j.size >= j.maxSize {
		if err := j.rotate(b.first); err != nil {
			return err
		}
	}
	n := 12
	for _, e := range b.entries {
		n += 4 + len(e)
	}
	buf := j.buf[:0]
	buf = binary.BigEndian.AppendUint32(buf, uint32(n))
	buf = binary.BigEndian.AppendUint32(buf, 0)
	buf = binary.BigEndian.AppendUint64(buf, b.first)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(b.entries)))
	for _, e := range b.entries {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(e)))
		buf = append(buf, e...)
	}
	binary.BigEndian.PutUint32(buf[4:], crc32.Checksum(buf[frameHeaderSize:], crcTable))
	j.buf = buf
	if _, err := j.cur.Write(buf); err != nil {
		return fmt.Errorf("journal write: %v", err)
	}
	if err := syscall.Fdatasync(int(j.cur.Fd())); err != nil {
		return fmt.Errorf("journal sync: %v", err)
	}
	j.size += int64(len(buf))
	j.mu.Lock()
	j.curSeg.end = b.end()
	j.mu.Unlock()
	return nil
}

func (j *journal) rotate(first uint64) error {
	path := filepath.Join(j.dir, segmentName(first))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("journal: new segment: %v", err)
	}
	if err := identity.SyncDir(j.dir); err != nil {
		f.Close()
		return err
	}
	j.mu.Lock()
	if j.cur != nil {
		j.cur.Close()
		if j.curSeg.end > j.curSeg.first {
			j.closed = append(j.closed, j.curSeg)
		} else {
			os.Remove(j.curSeg.path)
		}
	}
	j.cur, j.curSeg, j.size = f, segment{first: first, end: first, path: path}, 0
	j.mu.Unlock()
	return nil
}

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
