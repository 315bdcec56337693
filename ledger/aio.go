//go:build linux && (amd64 || arm64)

package ledger

import (
	"fmt"
	"os"
	"runtime"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// asyncWriter makes the journal's direct writes with Linux native AIO (io_submit)
// instead of a blocking pwritev2, and waits for each through an eventfd in Go's
// network poller. The goroutine waiting parks like one waiting for a socket, and no OS
// thread sits in the kernel for the write's ~50–500 µs. A blocking write instead holds
// its thread, so the Go scheduler hands the thread's processor to another thread after
// 20 µs and the system monitor keeps waking every 20 µs to look for such threads: at
// 2,000 requests/s that was about a third of the node's context switches.
//
// The write is the same: O_DIRECT, RWF_DSYNC (durable when it completes), one frame.
// One write is in flight at a time (the journaler waits for each).
type asyncWriter struct {
	ctx   uint64   // aio_context_t
	event *os.File // eventfd the kernel signals on each completion; nonblocking, polled
	efd   uint32   // its descriptor (event.Fd() would make it blocking)
	cb    iocb
	cbs   [1]*iocb
	evs   [4]ioEvent
	count [8]byte
}

// iocb is the kernel's struct iocb (linux/aio_abi.h) on a 64-bit little-endian machine.
type iocb struct {
	data     uint64
	key      uint32
	rwFlags  uint32 // RWF_* for this write
	opcode   uint16
	reqprio  int16
	fildes   uint32
	buf      uint64
	nbytes   uint64
	offset   int64
	reserved uint64
	flags    uint32 // IOCB_FLAG_*
	resfd    uint32 // eventfd signalled on completion, with IOCB_FLAG_RESFD
}

// ioEvent is the kernel's struct io_event.
type ioEvent struct {
	data uint64
	obj  uint64
	res  int64
	res2 int64
}

const (
	iocbCmdPwrite = 1 // IOCB_CMD_PWRITE
	iocbFlagResfd = 1 // IOCB_FLAG_RESFD
)

// newAsyncWriter sets up an AIO context of one write and its eventfd, or returns the
// reason it cannot (a kernel without AIO, a seccomp filter refusing it, the system's
// fs.aio-max-nr spent): the journal then writes with pwritev2.
func newAsyncWriter() (*asyncWriter, error) {
	w := &asyncWriter{}
	if _, _, e := unix.Syscall(unix.SYS_IO_SETUP, 1, uintptr(unsafe.Pointer(&w.ctx)), 0); e != 0 {
		return nil, fmt.Errorf("io_setup: %w", e)
	}
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		unix.Syscall(unix.SYS_IO_DESTROY, uintptr(w.ctx), 0, 0)
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	// A nonblocking descriptor goes into the runtime's poller, so Read parks the
	// goroutine until the kernel signals a completion.
	w.event, w.efd = os.NewFile(uintptr(fd), "journal-aio-eventfd"), uint32(fd)
	w.cbs[0] = &w.cb
	return w, nil
}

// pwriteDSync writes b at off in fd, durably (RWF_DSYNC), and returns what a
// pwritev2 would: the bytes written or the error. b must stay untouched until it
// returns, which it does only once the kernel is done with b.
func (w *asyncWriter) pwriteDSync(fd int, b []byte, off int64) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	w.cb = iocb{
		data:    uint64(off), // any tag: one write is in flight
		rwFlags: unix.RWF_DSYNC,
		opcode:  iocbCmdPwrite,
		fildes:  uint32(fd),
		buf:     uint64(uintptr(unsafe.Pointer(unsafe.SliceData(b)))),
		nbytes:  uint64(len(b)),
		offset:  off,
		flags:   iocbFlagResfd,
		resfd:   w.efd,
	}
	for {
		_, _, e := unix.Syscall(unix.SYS_IO_SUBMIT, uintptr(w.ctx), 1, uintptr(unsafe.Pointer(&w.cbs[0])))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, submitError{e} // the kernel holds nothing of b
		}
		break
	}
	res, err := w.await()
	runtime.KeepAlive(b)
	if err != nil {
		return 0, err
	}
	if res < 0 {
		return 0, syscall.Errno(-res)
	}
	return int(res), nil
}

// await waits for the write in flight to complete and returns its result.
func (w *asyncWriter) await() (int64, error) {
	var zero unix.Timespec
	for {
		// The eventfd counts completions; reading it resets the count. A read that
		// fails leaves the write in flight: wait for it in the kernel instead, so
		// that its buffer is never reused under it.
		minNr, timeout := 0, &zero
		if _, err := w.event.Read(w.count[:]); err != nil {
			minNr, timeout = 1, nil
		}
		n, _, e := unix.Syscall6(unix.SYS_IO_GETEVENTS, uintptr(w.ctx), uintptr(minNr), uintptr(len(w.evs)),
			uintptr(unsafe.Pointer(&w.evs[0])), uintptr(unsafe.Pointer(timeout)), 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, fmt.Errorf("io_getevents: %w", e)
		}
		if n > 0 {
			return w.evs[n-1].res, nil
		}
	}
}

// submitError is an io_submit that failed: the write was not made, and the same write
// may be made another way.
type submitError struct{ errno syscall.Errno }

func (e submitError) Error() string { return "io_submit: " + e.errno.Error() }
func (e submitError) Unwrap() error { return e.errno }

// close releases the AIO context and the eventfd. No write may be in flight.
func (w *asyncWriter) close() {
	unix.Syscall(unix.SYS_IO_DESTROY, uintptr(w.ctx), 0, 0)
	w.event.Close()
}
