//go:build linux && (amd64 || arm64)

package ledger

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestAsyncWriterIsPwritev2: a Linux AIO write answers as pwritev2(RWF_DSYNC) does on
// the same descriptor — the bytes written and where they land, and each refusal
// (an offset or a length off the sectors, a descriptor not open for writing, no
// descriptor) with the same errno, so that the journal's fallbacks see the same errors.
func TestAsyncWriterIsPwritev2(t *testing.T) {
	w, err := newAsyncWriter()
	if err != nil {
		t.Skipf("this kernel refuses Linux AIO (%v); the journal writes by pwritev2", err)
	}
	defer w.close()
	dir := t.TempDir()
	open := func(name string, flag int) *os.File {
		t.Helper()
		path := filepath.Join(dir, name)
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if err := zeroFill(f, 0, 1<<16); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if f, err = os.OpenFile(path, flag, 0); err != nil {
			t.Skipf("the file system of %s takes no direct I/O: %v", dir, err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	buf := frameBuffer(nil, 5*sectorSize)[:5*sectorSize]
	for i := range buf {
		buf[i] = byte(i*7 + 1)
	}
	for _, c := range []struct {
		name string
		flag int
		fd   int // when not 0, write to this descriptor instead
		b    []byte
		off  int64
	}{
		{name: "one sector", flag: os.O_WRONLY | unix.O_DIRECT, b: buf[:sectorSize], off: 0},
		{name: "four sectors further in", flag: os.O_WRONLY | unix.O_DIRECT, b: buf[:4*sectorSize], off: 8 * sectorSize},
		{name: "offset off a sector", flag: os.O_WRONLY | unix.O_DIRECT, b: buf[:sectorSize], off: sectorSize + 100},
		{name: "length off a sector", flag: os.O_WRONLY | unix.O_DIRECT, b: buf[:sectorSize+1], off: 0},
		{name: "buffer off a sector", flag: os.O_WRONLY | unix.O_DIRECT, b: buf[1 : sectorSize+1], off: 0},
		{name: "descriptor read-only", flag: os.O_RDONLY | unix.O_DIRECT, b: buf[:sectorSize], off: 0},
		{name: "no descriptor", fd: -1, b: buf[:sectorSize], off: 0},
		{name: "through the page cache", flag: os.O_WRONLY, b: buf[:sectorSize+1], off: 100},
	} {
		t.Run(c.name, func(t *testing.T) {
			fa, fp := c.fd, c.fd
			var pathA, pathP string
			if c.fd == 0 {
				a, p := open(c.name+".aio", c.flag), open(c.name+".pwritev2", c.flag)
				fa, fp, pathA, pathP = int(a.Fd()), int(p.Fd()), a.Name(), p.Name()
			}
			na, errA := w.pwriteDSync(fa, c.b, c.off)
			np, errP := pwritev2DSync(fp, c.b, c.off)
			if !errors.Is(errA, errP) || errA == nil && na != np {
				t.Fatalf("AIO wrote %d bytes (%v), pwritev2 %d (%v)", na, errA, np, errP)
			}
			if errA != nil {
				t.Logf("both refuse: %v", errA)
			}
			if pathA == "" {
				return
			}
			ga, err := os.ReadFile(pathA)
			if err != nil {
				t.Fatal(err)
			}
			gp, err := os.ReadFile(pathP)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ga, gp) {
				t.Fatal("the files differ after the same write")
			}
			if errA == nil && !bytes.Equal(ga[c.off:c.off+int64(na)], c.b[:na]) {
				t.Fatal("the bytes written are not where they were written")
			}
		})
	}
}

// TestJournalLeavesAIOThatStopsWorking: when the kernel stops taking AIO writes (the
// context is gone, so io_submit fails), each frame is written by pwritev2 instead —
// nothing is lost and the ledger does not fail — and the journal gives AIO up.
func TestJournalLeavesAIOThatStopsWorking(t *testing.T) {
	dir := t.TempDir()
	j, _, err := openJournal(dir, 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	if j.aio == nil {
		t.Skip("this kernel refuses Linux AIO; the journal writes by pwritev2")
	}
	bs := testBatches(20, 3)
	if err := j.write(bs[0]); err != nil {
		t.Fatal(err)
	}
	if j.direct == nil {
		t.Skipf("the file system of %s takes no direct I/O", dir)
	}
	unix.Syscall(unix.SYS_IO_DESTROY, uintptr(j.aio.ctx), 0, 0)
	for _, b := range bs[1:] {
		if err := j.write(b); err != nil {
			t.Fatalf("a write after AIO stopped working: %v", err)
		}
	}
	if j.aio != nil {
		t.Fatal("the journal kept an AIO context whose writes fail")
	}
	if j.direct == nil {
		t.Fatal("the journal gave up direct I/O, not just AIO")
	}
	if j.writesNow() != WritesPwritev2 {
		t.Fatalf("the journal reports its writes as %q, want %q", j.writesNow(), WritesPwritev2)
	}
	checkReadBack(t, j, dir, bs)
}

// BenchmarkDirectWrite: one journal frame of 1.5 KiB written durably to a zero-filled
// file opened O_DIRECT, one after another, by Linux AIO (waiting in Go's poller) and by
// pwritev2 (waiting in the kernel): the process's CPU per write and the time per write.
// Alone, with nothing else to run, the blocking write costs the scheduler nothing;
// BenchmarkRequestsLikeTheGateway and 'sios bench gateway' measure them among other work.
func BenchmarkDirectWrite(b *testing.B) {
	for _, aio := range []bool{true, false} {
		name := map[bool]string{true: "aio", false: "pwritev2"}[aio]
		b.Run(name, func(b *testing.B) {
			var w *asyncWriter
			if aio {
				var err error
				if w, err = newAsyncWriter(); err != nil {
					b.Skipf("this kernel refuses Linux AIO: %v", err)
				}
				defer w.close()
			}
			path := filepath.Join(b.TempDir(), "segment")
			f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
			if err != nil {
				b.Fatal(err)
			}
			const size = 64 << 20
			if err := zeroFill(f, 0, size); err != nil {
				b.Fatal(err)
			}
			f.Close()
			d, err := os.OpenFile(path, os.O_WRONLY|unix.O_DIRECT, 0)
			if err != nil {
				b.Skipf("the file system takes no direct I/O: %v", err)
			}
			defer d.Close()
			fd := int(d.Fd())
			frame := frameBuffer(nil, 3*sectorSize)[:3*sectorSize]
			cpu0 := processCPU()
			b.ResetTimer()
			for i := range b.N {
				off := int64(i*len(frame)) % size
				var err error
				if aio {
					_, err = w.pwriteDSync(fd, frame, off)
				} else {
					_, err = pwritev2DSync(fd, frame, off)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64((processCPU()-cpu0).Nanoseconds())/1e3/float64(b.N), "cpu-µs/write")
		})
	}
}
