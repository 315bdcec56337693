// Package files holds the node's few file primitives, so that every package writes and
// reads files the same way: an atomic replace that survives a crash, a synced write of
// a new file, a directory fsync, and a read of outside bytes that stops at a cap.
package files

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Replace atomically replaces path with data: write a temporary file beside it, fsync
// it, rename it over path and fsync the directory. A crash leaves the old file or the
// new one, never a mix.
func Replace(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	return SyncDir(dir)
}

// WriteNew writes data to path, which must not exist yet, and fsyncs the file (not its
// directory: callers that publish it by a rename sync the directory after).
func WriteNew(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
}

// Write writes data to path, creating or truncating it, and fsyncs the file.
func Write(path string, data []byte, perm os.FileMode) error {
	return write(path, data, perm, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
}

func write(path string, data []byte, perm os.FileMode, flag int) error {
	f, err := os.OpenFile(path, flag, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// SyncDir fsyncs a directory so that entries created or renamed in it survive a crash.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ErrTooLarge marks bytes over a cap (ReadCapped).
var ErrTooLarge = errors.New("too large")

// ReadCapped reads all of r, or fails with ErrTooLarge naming the cap (capName, e.g.
// "MaxBundleSize") once it passes max bytes, having read no more than max+1.
func ReadCapped(r io.Reader, max int64, capName string) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%w: more than %d bytes (%s)", ErrTooLarge, max, capName)
	}
	return b, nil
}

// ReadFileCapped reads the file at path, refusing one larger than max bytes.
func ReadFileCapped(path string, max int64, capName string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := ReadCapped(f, max, capName)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}
