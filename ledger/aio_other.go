//go:build linux && !(amd64 || arm64)

package ledger

import "errors"

// asyncWriter is aio.go's; on other architectures (where its kernel structures are
// not laid out here) the journal writes with pwritev2.
type asyncWriter struct{}

func newAsyncWriter() (*asyncWriter, error) {
	return nil, errors.New("no Linux AIO writes on this architecture")
}

func (w *asyncWriter) pwriteDSync(fd int, b []byte, off int64) (int, error) {
	return 0, submitError{errors.ErrUnsupported}
}

func (w *asyncWriter) close() {}

// submitError is aio.go's; nothing is submitted here.
type submitError struct{ error }
