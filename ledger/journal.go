package ledger

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/sios-project/sios/internal/files"
	"github.com/sios-project/sios/oar"
	"golang.org/x/sys/unix"
)

// The journal is a group-commit write-ahead log in front of Tessera. A sealed batch
// (its records followed by their seal) is written as one checksummed frame and
// fdatasync'd before any receipt for it is handed out; Tessera integrates the batch
// afterwards. On open, frames that Tessera had not integrated are replayed into it.
//
// Segments are zero-filled to their full size before use and frames overwrite the
// zeros in place. The file's size and extents then never change while it is written,
// so making a frame durable flushes only data and never waits for a filesystem journal
// commit shared with Tessera's many metadata updates: that is what keeps receipts fast.
// Where the file system takes direct I/O, a frame (padded to its sectors, with the
// zeros already there) goes to the disk by one RWF_DSYNC write on a descriptor opened
// O_DIRECT, past the page cache, instead of a pwrite and an fdatasync: submitted by
// Linux AIO where the kernel has it (asyncWriter; the journaler waits in Go's poller,
// not in the kernel), else by pwritev2; elsewhere (tmpfs, a disk whose logical sectors
// are larger than sectorSize) it is written through the page cache and fdatasynced.
//
// Frame (segments named <first index>.journal): it starts at a multiple of
// sectorSize, and the zeros up to the next multiple follow it.
//
//	u32 payload length | u32 CRC-32C of payload | u32 CRC-32C of the 8 bytes before | payload
//	payload: u64 index of the first entry | u32 entry count | count × (u32 length | bytes)
//
// All integers big-endian. A zero header marks the end of a segment's frames; nothing
// but zeros follows it. Segments are named by the index of their first entry.
//
// A write cut by a power failure can leave only some sectors of the last frame on
// disk; the others keep their zeros. Frames start on a sector, so the header is
// either whole or zero, and the length in a header that checks is the length written.
// A frame whose payload does not check is therefore a torn write (never acknowledged,
// dropped) exactly when it is the last frame of the last segment and one of its
// sectors is all zeros, as etcd's WAL decides; anything else that does not check is
// damage, which Open refuses (acknowledged records would be lost) unless the damaged
// segment holds only entries already integrated into the log. A process killed
// (kill -9) never tears a write: the kernel completes it.
//
// Segments named <first index>.wal hold frames without the header check or sector
// alignment, written by sios before this format; they are replayed, never written.

const (
	segmentSuffix   = ".journal"
	segmentSuffixV1 = ".wal"
	spareName       = "spare.tmp"
	frameHeaderSize = 12
	sectorSize      = 512
	// maxFrame bounds a frame's payload, written or read back: what its 4-byte length
	// can say. (A batch of MaxSealCount+1 entries of MaxEntrySize would not fit; the
	// writer refuses such a batch rather than write a length that wraps.)
	maxFrame = 1<<32 - 1
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

	// Only the journaler goroutine uses these after open.
	cur       *os.File
	direct    *os.File       // cur opened again with O_DIRECT for frame writes, or nil
	aio       *asyncWriter   // makes direct writes without blocking a thread, or nil: pwritev2
	writes    atomic.Value   // string: how frames are made durable now (noteWrites), for any goroutine
	off       int64          // write offset in cur
	limit     int64          // size of cur
	buf       []byte         // the frame being written; aligned for direct I/O (frameBuffer)
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
	// hashes, when it holds one per entry, are the entries' record (leaf) hashes, so
	// that Tessera need not hash them again; batches read back from the journal have
	// none.
	hashes [][]byte
}

func (b *batch) end() uint64 { return b.first + uint64(len(b.entries)) }

func segmentName(first uint64) string { return fmt.Sprintf("%020d%s", first, segmentSuffix) }

// JournalDamage names a place in a journal segment that does not decode.
type JournalDamage struct {
	Path   string
	Offset int64
	Reason string
}

func (d *JournalDamage) Error() string {
	return fmt.Sprintf("journal segment %s is damaged at byte offset %d: %s", d.Path, d.Offset, d.Reason)
}

// segmentFile is one segment as read from disk.
type segmentFile struct {
	path     string
	first    uint64
	v1       bool
	gone     bool // removed while it was being read (a live writer released it)
	batches  []*batch
	validLen int64          // end of the last frame that decoded, with its padding
	torn     *JournalDamage // a torn last frame, dropped
	damage   *JournalDamage // frames from here on cannot be read
}

// end is the index after the last entry the segment's readable frames hold.
func (s *segmentFile) end() uint64 {
	if n := len(s.batches); n > 0 {
		return s.batches[n-1].end()
	}
	return s.first
}

// readSegments reads every segment in dir, in order, without changing anything. With
// live set, a writer may be appending to the last segment and releasing old ones: a
// last frame that does not check is a write in flight, and a segment that vanished was
// released after Tessera integrated it.
func readSegments(dir string, live bool) ([]*segmentFile, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var segs []*segmentFile
	for _, de := range des {
		name, v1 := de.Name(), false
		base, ok := strings.CutSuffix(name, segmentSuffix)
		if !ok {
			if base, ok = strings.CutSuffix(name, segmentSuffixV1); !ok {
				continue // the spare segment being prepared
			}
			v1 = true
		}
		first, err := strconv.ParseUint(base, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("journal: unexpected file %s", filepath.Join(dir, name))
		}
		segs = append(segs, &segmentFile{path: filepath.Join(dir, name), first: first, v1: v1})
	}
	sort.Slice(segs, func(a, b int) bool { return segs[a].first < segs[b].first })
	for i, s := range segs {
		data, err := os.ReadFile(s.path)
		if live && errors.Is(err, fs.ErrNotExist) {
			s.gone = true
			continue
		}
		if err != nil {
			return nil, err
		}
		last := i == len(segs)-1
		if s.v1 {
			decodeSegmentV1(s, data, last)
		} else {
			decodeSegment(s, data, last, live)
		}
	}
	return segs, nil
}

// decodeSegment reads the frames of a segment (see the format above).
func decodeSegment(s *segmentFile, data []byte, last, live bool) {
	bad := func(at int, format string, a ...any) {
		s.damage = &JournalDamage{Path: s.path, Offset: int64(at), Reason: fmt.Sprintf(format, a...)}
	}
	off := 0
	for {
		s.validLen = int64(off)
		if off+frameHeaderSize > len(data) || allZero(data[off:off+frameHeaderSize]) {
			if i := firstNonZero(data[off:]); i >= 0 && !live {
				bad(off+i, "a byte after the last frame is not zero")
			}
			return
		}
		b, n, err := decodeFrame(data[off:])
		if err == nil {
			s.batches = append(s.batches, b)
			next := min(alignSector(off+n), len(data))
			if i := firstNonZero(data[off+n : next]); i >= 0 {
				bad(off+n+i, "a byte of the padding after a frame is not zero")
				return
			}
			off = next
			continue
		}
		if last && live {
			return // a frame being written
		}
		var torn *frameTornError
		if last && errors.As(err, &torn) && hasZeroSector(data[off:min(off+torn.size, len(data))]) &&
			firstNonZero(data[min(alignSector(off+torn.size), len(data)):]) < 0 {
			s.torn = &JournalDamage{Path: s.path, Offset: int64(off), Reason: "the last frame was torn by a power failure before it was durable (never acknowledged)"}
			return
		}
		bad(off, "%v", err)
		return
	}
}

// decodeSegmentV1 reads a segment of the earlier format: frames back to back, an
// 8-byte header without its own check, and any bad frame of the last segment taken
// for a torn write.
func decodeSegmentV1(s *segmentFile, data []byte, last bool) {
	off := 0
	for off < len(data) {
		if len(data)-off >= 4 && binary.BigEndian.Uint32(data[off:]) == 0 {
			break
		}
		b, n, err := decodeFrameV1(data[off:])
		if err != nil {
			if !last {
				s.damage = &JournalDamage{Path: s.path, Offset: int64(off), Reason: err.Error()}
			}
			break
		}
		s.batches = append(s.batches, b)
		off += n
	}
	s.validLen = int64(off)
}

func alignSector(n int) int { return (n + sectorSize - 1) / sectorSize * sectorSize }

// hasZeroSector reports whether a frame that starts on a sector holds a whole sector,
// or its last part of one, that is all zeros: sectors a torn write never reached.
func hasZeroSector(frame []byte) bool {
	for at := 0; at < len(frame); at += sectorSize {
		if allZero(frame[at:min(at+sectorSize, len(frame))]) {
			return true
		}
	}
	return false
}

func firstNonZero(b []byte) int {
	for i, c := range b {
		if c != 0 {
			return i
		}
	}
	return -1
}

// collectBatches checks that the segments' frames continue one another and returns
// their batches in order. A damaged segment stops it with the damage, unless the
// segment is not the last and holds only entries below integrated (already in the
// log), which a reader can do without.
func collectBatches(segs []*segmentFile, integrated uint64) ([]*batch, error) {
	var batches []*batch
	for i, s := range segs {
		if s.gone {
			continue
		}
		if s.damage != nil {
			if i+1 < len(segs) && segs[i+1].first <= integrated {
				batches = nil // all of it, and all before it, is in the log
				continue
			}
			return nil, s.damage
		}
		for k, b := range s.batches {
			if k == 0 && b.first != s.first {
				return nil, fmt.Errorf("journal: %s starts at entry %d, not %d", s.path, b.first, s.first)
			}
			if n := len(batches); n > 0 && b.first != batches[n-1].end() {
				return nil, fmt.Errorf("journal: %s holds entries from %d where %d was expected", s.path, b.first, batches[n-1].end())
			}
			batches = append(batches, b)
		}
	}
	return batches, nil
}

// openJournal reads every segment in dir, discarding a frame torn by a power failure
// at the tail of the last one, and returns the batches it holds in order. Damage in a
// segment that holds entries the log has not integrated (integrated is its size) stops
// it: those records were acknowledged.
func openJournal(dir string, segSize int64, integrated uint64) (*journal, []*batch, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	os.Remove(filepath.Join(dir, spareName)) // an unfinished spare from before a crash
	segs, err := readSegments(dir, false)
	if err != nil {
		return nil, nil, err
	}
	batches, err := collectBatches(segs, integrated)
	if err != nil {
		return nil, nil, fmt.Errorf("%w (receipted records may be lost: compare with the receipts callers hold before moving the segment aside)", err)
	}
	// The first segment is small, so that a short-lived process (one CLI append) does
	// not zero-fill a full segment; later ones double up to segSize.
	j := &journal{dir: dir, segSize: segSize, spare: make(chan spareFile, 1), nextSize: min(1<<20, segSize)}
	for i, s := range segs {
		seg := segment{first: s.first, end: s.end(), path: s.path}
		if i+1 < len(segs) {
			if s.damage != nil {
				seg.end = segs[i+1].first
			}
			j.closed = append(j.closed, seg)
			continue
		}
		if s.v1 {
			j.closed = append(j.closed, seg) // the next write starts a segment of the current format
			continue
		}
		if err := j.reopen(seg, s.validLen); err != nil {
			return nil, nil, err
		}
	}
	j.aio, _ = newAsyncWriter() // without it, direct writes block a thread in pwritev2
	if j.cur != nil {
		j.noteWrites()
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
	j.direct = openDirect(seg.path)
	j.noteWrites()
	return nil
}

// frameTornError is a frame whose header checks but whose payload does not: torn if
// the write never reached all of its size bytes.
type frameTornError struct{ size int }

func (e *frameTornError) Error() string { return "frame checksum mismatch" }

// decodeFrame decodes the frame at the start of data and returns it with its size
// (header and payload, without padding).
func decodeFrame(data []byte) (*batch, int, error) {
	if len(data) < frameHeaderSize {
		return nil, 0, errors.New("short frame header")
	}
	if crc32.Checksum(data[:8], crcTable) != binary.BigEndian.Uint32(data[8:]) {
		return nil, 0, errors.New("frame header checksum mismatch")
	}
	n := binary.BigEndian.Uint32(data)
	if uint64(n) > maxFrame || int(n) > len(data)-frameHeaderSize {
		return nil, 0, fmt.Errorf("frame length %d exceeds the segment", n)
	}
	payload := data[frameHeaderSize : frameHeaderSize+int(n)]
	if crc32.Checksum(payload, crcTable) != binary.BigEndian.Uint32(data[4:]) {
		return nil, 0, &frameTornError{size: frameHeaderSize + int(n)}
	}
	b, err := decodePayload(payload)
	if err != nil {
		return nil, 0, err
	}
	return b, frameHeaderSize + int(n), nil
}

// decodeFrameV1 decodes a frame of the earlier format: u32 length | u32 CRC | payload.
func decodeFrameV1(data []byte) (*batch, int, error) {
	if len(data) < 8 {
		return nil, 0, errors.New("short frame header")
	}
	n := binary.BigEndian.Uint32(data)
	if uint64(n) > maxFrame || int(n) > len(data)-8 {
		return nil, 0, fmt.Errorf("frame length %d exceeds the data", n)
	}
	payload := data[8 : 8+int(n)]
	if crc32.Checksum(payload, crcTable) != binary.BigEndian.Uint32(data[4:]) {
		return nil, 0, errors.New("frame checksum mismatch")
	}
	b, err := decodePayload(payload)
	if err != nil {
		return nil, 0, err
	}
	return b, 8 + int(n), nil
}

func decodePayload(payload []byte) (*batch, error) {
	if len(payload) < 12 {
		return nil, errors.New("short frame payload")
	}
	b := &batch{first: binary.BigEndian.Uint64(payload)}
	count := binary.BigEndian.Uint32(payload[8:])
	if count == 0 || count > oar.MaxSealCount+1 {
		return nil, fmt.Errorf("frame holds %d entries", count)
	}
	p := payload[12:]
	for i := uint32(0); i < count; i++ {
		if len(p) < 4 {
			return nil, errors.New("truncated entry length")
		}
		l := binary.BigEndian.Uint32(p)
		if l > oar.MaxEntrySize || int(l) > len(p)-4 {
			return nil, fmt.Errorf("entry length %d exceeds the frame", l)
		}
		b.entries = append(b.entries, p[4:4+l:4+l])
		p = p[4+l:]
	}
	if len(p) != 0 {
		return nil, errors.New("trailing bytes in frame")
	}
	return b, nil
}

// frameSize is the size of b's frame payload.
func frameSize(b *batch) uint64 {
	n := uint64(12)
	for _, e := range b.entries {
		n += 4 + uint64(len(e))
	}
	return n
}

func encodeFrame(buf []byte, b *batch) []byte {
	n := frameSize(b)
	buf = binary.BigEndian.AppendUint32(buf[:0], uint32(n))
	buf = binary.BigEndian.AppendUint32(buf, 0)
	buf = binary.BigEndian.AppendUint32(buf, 0)
	buf = binary.BigEndian.AppendUint64(buf, b.first)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(b.entries)))
	for _, e := range b.entries {
		buf = binary.BigEndian.AppendUint32(buf, uint32(len(e)))
		buf = append(buf, e...)
	}
	binary.BigEndian.PutUint32(buf[4:], crc32.Checksum(buf[frameHeaderSize:], crcTable))
	binary.BigEndian.PutUint32(buf[8:], crc32.Checksum(buf[:8], crcTable))
	return buf
}

// write appends a batch as one frame and makes it durable. Called by one goroutine.
func (j *journal) write(b *batch) error {
	if n := frameSize(b); n > maxFrame {
		return fmt.Errorf("journal: a batch of %d entries takes %d bytes, more than a frame holds (%d): lower SealMaxRecords", len(b.entries), n, maxFrame)
	}
	size := frameHeaderSize + int(frameSize(b))
	j.buf = encodeFrame(frameBuffer(j.buf, alignSector(size)), b)
	// Keep room for the padding and a zero header after the frame, which marks the end.
	need := int64(alignSector(len(j.buf))) + frameHeaderSize
	if j.cur == nil || j.off+need > j.limit {
		if err := j.rotate(b.first, need); err != nil {
			return err
		}
	}
	if err := j.writeDurably(j.buf, j.off); err != nil {
		return err
	}
	j.off = int64(alignSector(int(j.off) + len(j.buf)))
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
	if err := files.SyncDir(j.dir); err != nil {
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
		if j.direct != nil {
			j.direct.Close()
			j.direct = nil
		}
		if j.curSeg.end > j.curSeg.first {
			j.closed = append(j.closed, j.curSeg)
		} else {
			os.Remove(j.curSeg.path)
		}
	}
	j.curSeg = segment{first: first, end: first, path: path}
	j.mu.Unlock()
	j.cur, j.off, j.limit = f, 0, sp.size
	j.direct = openDirect(path)
	j.noteWrites()
	return nil
}

// writeDurably writes the frame in frame at off and returns once it is durable: by
// direct I/O where the segment was opened for it (padded with zeros to its sectors,
// within frame's capacity: frameBuffer), else through the page cache and fdatasync. A direct write the kernel refuses for its alignment (EINVAL: the disk's
// logical sectors are larger than sectorSize) gives up direct I/O for the segment and
// writes the frame the other way; so does a kernel without RWF_DSYNC.
func (j *journal) writeDurably(frame []byte, off int64) error {
	if j.direct != nil && cap(frame) >= alignSector(len(frame)) {
		padded := frame[:alignSector(len(frame))] // the zeros after it are on disk already
		clear(padded[len(frame):])
		n, err := j.writeDirect(padded, off)
		switch {
		case err == nil && n == len(padded):
			return nil
		case err == nil:
			return fmt.Errorf("journal write: %d of a frame's %d bytes written", n, len(padded))
		case !refusedDirect(err):
			return fmt.Errorf("journal write: %v", err)
		}
		j.direct.Close()
		j.direct = nil
		j.noteWrites()
	}
	if _, err := j.cur.WriteAt(frame, off); err != nil {
		return fmt.Errorf("journal write: %v", err)
	}
	if err := syscall.Fdatasync(int(j.cur.Fd())); err != nil {
		return fmt.Errorf("journal sync: %v", err)
	}
	return nil
}

// writeDirect writes b at off through the direct descriptor and returns once it is
// durable (RWF_DSYNC): by Linux AIO where the journal has it, else by pwritev2. An AIO
// write that could not be submitted (EAGAIN, a seccomp filter's EPERM, …) or that the
// kernel refused as invalid or unsupported is made again by pwritev2; if that takes it
// (a kernel that takes RWF_DSYNC in pwritev2 but not in AIO), the journal stops using
// AIO. A refusal of both is writeDurably's to handle; an AIO write that failed on the
// disk (EIO) is not made again.
func (j *journal) writeDirect(b []byte, off int64) (int, error) {
	fd := int(j.direct.Fd())
	if j.aio == nil {
		return pwritev2DSync(fd, b, off)
	}
	n, err := j.aio.pwriteDSync(fd, b, off)
	var notSubmitted submitError
	if !errors.As(err, &notSubmitted) && !refusedDirect(err) {
		return n, err
	}
	if n, err = pwritev2DSync(fd, b, off); err == nil {
		j.aio.close()
		j.aio = nil
		j.noteWrites()
	}
	return n, err
}

// pwritev2DSync writes b at off in fd by one pwritev2(RWF_DSYNC), again if a signal
// interrupts it.
func pwritev2DSync(fd int, b []byte, off int64) (int, error) {
	for {
		n, err := unix.Pwritev2(fd, [][]byte{b}, off, unix.RWF_DSYNC)
		if !errors.Is(err, unix.EINTR) {
			return n, err
		}
	}
}

// How the journal makes frames durable (Ledger.JournalWrites).
const (
	WritesAIO       = "aio"       // direct I/O (O_DIRECT, RWF_DSYNC) submitted by Linux AIO
	WritesPwritev2  = "pwritev2"  // direct I/O by pwritev2, a thread waiting in the kernel
	WritesFdatasync = "fdatasync" // through the page cache, then fdatasync
)

// noteWrites records, for other goroutines, how the current segment's frames are
// written. Only the goroutine that writes frames calls it, after changing direct or aio.
func (j *journal) noteWrites() {
	w := WritesFdatasync
	switch {
	case j.direct != nil && j.aio != nil:
		w = WritesAIO
	case j.direct != nil:
		w = WritesPwritev2
	}
	j.writes.Store(w)
}

// writesNow is what noteWrites last recorded, or "" before the first segment.
func (j *journal) writesNow() string {
	w, _ := j.writes.Load().(string)
	return w
}

// openDirect opens a segment again for direct I/O (O_DIRECT), or returns nil where the
// file system does not take it.
func openDirect(path string) *os.File {
	f, err := os.OpenFile(path, os.O_WRONLY|unix.O_DIRECT, 0)
	if err != nil {
		return nil
	}
	return f
}

// directAlign is the memory alignment of frame buffers: direct I/O needs at least the
// disk's logical sector size, and no disk asks for more than a page.
const directAlign = 4096

// frameBuffer returns buf emptied, or a new buffer in its place, with room for n bytes
// starting at an address aligned for direct I/O, so that a frame encoded into it
// (appending, within its capacity) can be written padded to its sectors.
func frameBuffer(buf []byte, n int) []byte {
	if cap(buf) < n {
		raw := make([]byte, n+directAlign)
		skip := 0
		if r := int(uintptr(unsafe.Pointer(unsafe.SliceData(raw))) % directAlign); r != 0 {
			skip = directAlign - r
		}
		return raw[skip : skip : skip+n]
	}
	return buf[:0]
}

// makeSpare writes a zero-filled file of the given size and makes it durable. Where the
// file system takes direct I/O it writes the zeros by zeroFillDirect, a chunk at a time;
// through the page cache the zeros of a whole segment would reach the disk in one burst
// at the fsync, and the frames the journal writes meanwhile would queue behind it (frame
// writes of 10–18 ms at 3,500 requests/s, when a 32 or 64 MiB spare was made so).
func (j *journal) makeSpare(size int64) spareFile {
	path := filepath.Join(j.dir, spareName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return spareFile{err: err}
	}
	defer f.Close()
	done, err := zeroFillDirect(path, size)
	if err != nil {
		return spareFile{err: err}
	}
	if err := zeroFill(f, done, size); err != nil {
		return spareFile{err: err}
	}
	return spareFile{path: path, size: size}
}

// refusedDirect says whether a direct write failed because the kernel or the file
// system refuses it (its alignment, RWF_DSYNC unknown, no such call), not the disk: the
// write is then made another way.
func refusedDirect(err error) bool {
	return errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS)
}

// spareChunk is how many zeros zeroFillDirect writes at a time.
const spareChunk = 1 << 20

// zeroFillDirect writes zeros over the file at path from its start, by direct I/O in
// chunks of spareChunk, each durable (RWF_DSYNC) before the next, resting after each as
// long as it took, so that a frame written to the same disk meanwhile waits behind one
// chunk at most and the disk is the journal's half the time. It returns how far it
// wrote: a whole number of sectors up to size, or less — 0 where the file system takes
// no direct I/O — for zeroFill to finish through the page cache. Only a failed write
// is an error.
func zeroFillDirect(path string, size int64) (int64, error) {
	d := openDirect(path)
	if d == nil {
		return 0, nil
	}
	defer d.Close()
	zeros := frameBuffer(nil, spareChunk)[:spareChunk]
	end := size / sectorSize * sectorSize
	off := int64(0)
	for off < end {
		n := min(int64(spareChunk), end-off)
		t := time.Now()
		w, err := pwritev2DSync(int(d.Fd()), zeros[:n], off)
		if refusedDirect(err) {
			return off, nil // refused (sectors larger than ours, no RWF_DSYNC): zeroFill goes on
		}
		if err != nil {
			return off, fmt.Errorf("journal: prepare segment: %v", err)
		}
		if int64(w) != n {
			return off, fmt.Errorf("journal: prepare segment: %d of %d bytes written", w, n)
		}
		off += n
		time.Sleep(time.Since(t))
	}
	return off, nil
}

// zeroFill writes zeros over [from, to) and fsyncs, so the extents are allocated and
// written and later in-place writes change no metadata.
func zeroFill(f *os.File, from, to int64) error {
	zeros := make([]byte, min(1<<20, max(to-from, 0)))
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

// release deletes finished segments whose entries Tessera has all integrated. It
// removes them after letting go of mu, which the journaler takes after every frame: a
// 64 MiB file took up to 3.5 ms to remove here.
func (j *journal) release(integrated uint64) {
	j.mu.Lock()
	var done []segment
	for len(j.closed) > 0 && j.closed[0].end <= integrated {
		done, j.closed = append(done, j.closed[0]), j.closed[1:]
	}
	j.mu.Unlock()
	for _, seg := range done {
		os.Remove(seg.path)
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
	if j.aio != nil {
		j.aio.close()
		j.aio = nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.cur == nil {
		return nil
	}
	err := j.cur.Close()
	if j.direct != nil {
		j.direct.Close()
		j.direct = nil
	}
	if j.curSeg.end <= integrated && len(j.closed) == 0 {
		os.Remove(j.curSeg.path)
	}
	j.cur = nil
	return err
}
