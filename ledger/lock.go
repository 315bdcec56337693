package ledger

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ErrLocked is returned when another process holds the ledger.
var ErrLocked = errors.New("ledger is in use by another process")

// LockedError names the directory and the process that holds it.
type LockedError struct {
	Dir string
	PID int
}

func (e *LockedError) Error() string {
	if e.PID > 0 {
		return fmt.Sprintf("audit ledger %s is in use by another sios process (pid %d)", e.Dir, e.PID)
	}
	return fmt.Sprintf("audit ledger %s is in use by another sios process", e.Dir)
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// lockDir takes an exclusive flock on dir/LOCK, recording our pid in it. The kernel
// drops the lock when the process dies, so a crash never leaves a stale lock.
func lockDir(dir string) (*os.File, error) {
	p := filepath.Join(dir, "LOCK")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:n])))
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &LockedError{Dir: dir, PID: pid}
		}
		return nil, fmt.Errorf("lock %s: %v", p, err)
	}
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

// WriterRunning reports whether a process holds the ledger in dir right now, without
// changing anything: it opens dir/LOCK read-only (a ledger without one was never
// opened for writing), takes a shared lock, which fails while a writer holds its
// exclusive one, and lets it go at once.
func WriterRunning(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "LOCK"))
	if err != nil {
		return false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return errors.Is(err, syscall.EWOULDBLOCK)
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}
