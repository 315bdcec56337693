// Package witness is a transparency-log witness. It cosigns checkpoints of the logs it
// is configured with (an origin and the log's note verifiers) with Ed25519
// cosignature/v1 signatures, and serves the tlog-witness add-checkpoint call so that
// standard logs, witnesses and clients can ask for them.
//
// It guarantees that, for one origin, it never cosigns a checkpoint smaller than the
// latest one it cosigned, nor one of the same size with another root hash, nor one
// that a verified RFC 6962 consistency proof does not tie to it. The latest cosigned
// checkpoint of each origin is written to disk (atomically, synced) before its
// cosignature leaves the witness, and read back when the log is configured again, so
// the guarantee survives a restart.
//
// A cosignature makes the base cosignature/v1 statement only: as of its time, the
// checkpoint is the largest consistent one the witness has seen for that origin.
package witness

// SPEC: https://c2sp.org/tlog-cosignature — Ed25519 cosignature/v1, key type 0x04.
// SPEC: https://c2sp.org/tlog-witness — add-checkpoint.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/sios-project/sios/internal/files"
	flog "github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
	"golang.org/x/mod/sumdb/note"
)

// Limits on what a submitter controls, named in the errors that enforce them.
const (
	// MaxCheckpointSize bounds a submitted checkpoint, signatures included.
	MaxCheckpointSize = 64 << 10
	// MaxProofLines bounds the consistency proof of an add-checkpoint request
	// (tlog-witness: a client MUST NOT send more than 63).
	MaxProofLines = 63
	// MaxRequestSize bounds an add-checkpoint request body: the old size line, the
	// proof lines, the empty line and the checkpoint.
	MaxRequestSize = len("old 18446744073709551615\n") + MaxProofLines*(hashB64Len+1) + 1 + MaxCheckpointSize
)

const (
	hashSize   = sha256.Size
	hashB64Len = (hashSize + 2) / 3 * 4
)

// Errors of AddCheckpoint and Cosign, each answered by Handler with its own HTTP status
// (in brackets). Errors wrap them with the detail.
var (
	// ErrMalformed: the request or the checkpoint is not well-formed [400].
	ErrMalformed = errors.New("malformed add-checkpoint request")
	// ErrUnknownLog: the witness has no log of the checkpoint's origin [404].
	ErrUnknownLog = errors.New("unknown log origin")
	// ErrUnauthenticated: no signature on the checkpoint verifies with a key the
	// witness trusts for its origin [403].
	ErrUnauthenticated = errors.New("the checkpoint is not signed by a known key of its log")
	// ErrInconsistent: the consistency proof does not tie the checkpoint to the latest
	// one the witness cosigned [422].
	ErrInconsistent = errors.New("the consistency proof does not verify")
	// ErrTooLarge: the request body is larger than MaxRequestSize [413].
	ErrTooLarge = fmt.Errorf("the request body is larger than %d bytes (MaxRequestSize)", MaxRequestSize)
)

// ConflictError says that the checkpoint does not follow the latest one the witness
// cosigned for its origin: the request's old size is not that checkpoint's size, the
// checkpoint is smaller, or it has that size and another root hash [409, with Size].
type ConflictError struct {
	Origin string
	Size   uint64 // the size of the latest checkpoint the witness cosigned
	Reason string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("conflict with the latest checkpoint cosigned for %s, of size %d: %s", e.Origin, e.Size, e.Reason)
}

// NewSigner returns the cosignature/v1 note signer of an Ed25519 key under the
// cosigner name.
func NewSigner(name string, key ed25519.PrivateKey) (note.Signer, error) {
	vkey, err := note.NewEd25519VerifierKey(name, key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	// The standard encoded signer key: PRIVATE+KEY+<name>+<hash>+base64(0x01 || seed).
	parts := strings.Split(vkey, "+")
	skey := "PRIVATE+KEY+" + name + "+" + parts[1] + "+" + base64.StdEncoding.EncodeToString(append([]byte{1}, key.Seed()...))
	return fnote.NewSignerForCosignatureV1(skey)
}

// VerifierKey is the vkey (name+hash+base64(0x04 || key)) that clients configure to
// verify the cosignatures of an Ed25519 key under the cosigner name.
func VerifierKey(name string, key ed25519.PublicKey) (string, error) {
	vkey, err := note.NewEd25519VerifierKey(name, key)
	if err != nil {
		return "", err
	}
	return fnote.VKeyToCosignatureV1(vkey)
}

// NewVerifier returns the note verifier of the cosignatures of an Ed25519 key under
// the cosigner name.
func NewVerifier(name string, key ed25519.PublicKey) (note.Verifier, error) {
	vkey, err := VerifierKey(name, key)
	if err != nil {
		return nil, err
	}
	return fnote.NewVerifierForCosignatureV1(vkey)
}

// Request is an add-checkpoint request body: "old <size>\n", one base64 line per hash
// of the consistency proof, an empty line, then the signed checkpoint.
type Request struct {
	Old        uint64
	Proof      [][]byte
	Checkpoint []byte
}

// ParseRequest parses an add-checkpoint request body. It accepts exactly the bytes
// Marshal produces: canonical decimal and base64, 32-byte hashes, newline-terminated
// lines.
func ParseRequest(body []byte) (*Request, error) {
	if len(body) > MaxRequestSize {
		return nil, ErrTooLarge
	}
	line, rest, ok := bytes.Cut(body, []byte("\n"))
	if !ok {
		return nil, fmt.Errorf("%w: no old size line", ErrMalformed)
	}
	s, ok := strings.CutPrefix(string(line), "old ")
	old, err := strconv.ParseUint(s, 10, 64)
	if !ok || err != nil || strconv.FormatUint(old, 10) != s {
		return nil, fmt.Errorf("%w: the first line %q is not \"old <size>\" in decimal", ErrMalformed, truncate(line))
	}
	req := &Request{Old: old, Proof: [][]byte{}}
	for {
		line, rest, ok = bytes.Cut(rest, []byte("\n"))
		if !ok {
			return nil, fmt.Errorf("%w: no empty line before the checkpoint", ErrMalformed)
		}
		if len(line) == 0 {
			break
		}
		if len(req.Proof) == MaxProofLines {
			return nil, fmt.Errorf("%w: more than %d consistency proof lines (MaxProofLines)", ErrMalformed, MaxProofLines)
		}
		h, err := base64.StdEncoding.DecodeString(string(line))
		if err != nil || len(h) != hashSize || base64.StdEncoding.EncodeToString(h) != string(line) {
			return nil, fmt.Errorf("%w: consistency proof line %d is not a base64 %d-byte hash", ErrMalformed, len(req.Proof)+1, hashSize)
		}
		req.Proof = append(req.Proof, h)
	}
	if len(rest) == 0 {
		return nil, fmt.Errorf("%w: no checkpoint after the empty line", ErrMalformed)
	}
	if len(rest) > MaxCheckpointSize {
		return nil, fmt.Errorf("%w: the checkpoint is %d bytes, more than %d (MaxCheckpointSize)", ErrMalformed, len(rest), MaxCheckpointSize)
	}
	req.Checkpoint = rest
	return req, nil
}

// Marshal encodes the request body.
func (r *Request) Marshal() []byte {
	b := fmt.Appendf(nil, "old %d\n", r.Old)
	for _, h := range r.Proof {
		b = append(base64.StdEncoding.AppendEncode(b, h), '\n')
	}
	b = append(b, '\n')
	return append(b, r.Checkpoint...)
}

func truncate(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "…"
	}
	return string(b)
}

// Witness cosigns the checkpoints of the logs it knows. Safe for concurrent use.
type Witness struct {
	dir    string
	signer note.Signer

	mu   sync.Mutex
	logs map[string]*logState // guarded by mu; by origin
}

// logState is what the witness knows of one log.
type logState struct {
	origin string
	path   string

	mu        sync.Mutex // held from the check of a checkpoint until its state is on disk
	verifiers note.Verifiers
	required  []note.Verifier // guarded by mu; every one of them must have signed
	size      uint64          // guarded by mu; of the latest checkpoint cosigned
	root      []byte          // guarded by mu; nil if the witness never cosigned for this log
}

// New returns a witness that keeps its state in dir (created when first needed) and
// signs with signer, which should be a cosignature/v1 signer (NewSigner); its name is
// the witness's name.
func New(dir string, signer note.Signer) (*Witness, error) {
	if signer == nil {
		return nil, errors.New("witness: no signer")
	}
	return &Witness{dir: dir, signer: signer, logs: map[string]*logState{}}, nil
}

// Name is the witness's name: the key name of its cosignatures.
func (w *Witness) Name() string { return w.signer.Name() }

// AddLog configures the log of origin: its checkpoints must carry a signature by every
// one of verifiers — for a sios node, both its Ed25519 and its ML-DSA-65 key, so that a
// cosignature never vouches for a checkpoint only a classical signature protects
// (signatures of other keys are ignored). Calling it again
// replaces the verifiers. The state kept for origin in the witness's directory is read
// the first time; AddLog fails if it cannot be read, rather than forget it.
func (w *Witness) AddLog(origin string, verifiers ...note.Verifier) error {
	if origin == "" || strings.ContainsAny(origin, "\n") {
		return fmt.Errorf("witness: origin %q is not a checkpoint origin line", origin)
	}
	if len(verifiers) == 0 {
		return fmt.Errorf("witness: log %s has no verifier", origin)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if l := w.logs[origin]; l != nil {
		l.mu.Lock()
		l.verifiers, l.required = note.VerifierList(verifiers...), verifiers
		l.mu.Unlock()
		return nil
	}
	sum := sha256.Sum256([]byte(origin))
	l := &logState{origin: origin, path: filepath.Join(w.dir, hex.EncodeToString(sum[:])), verifiers: note.VerifierList(verifiers...), required: verifiers}
	raw, err := os.ReadFile(l.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("witness state of %s: %v", origin, err)
	default:
		cp, err := parseBody(raw)
		if err == nil && cp.Origin != origin {
			err = fmt.Errorf("it is of origin %q", cp.Origin)
		}
		if err != nil {
			return fmt.Errorf("witness state of %s in %s: %v", origin, l.path, err)
		}
		l.size, l.root = cp.Size, cp.Hash
	}
	w.logs[origin] = l
	return nil
}

// Cosigned returns the size and root hash of the latest checkpoint the witness
// cosigned for origin; ok is false if it never did or does not know the log.
func (w *Witness) Cosigned(origin string) (size uint64, root []byte, ok bool) {
	w.mu.Lock()
	l := w.logs[origin]
	w.mu.Unlock()
	if l == nil {
		return 0, nil, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size, l.root, l.root != nil
}

// AddCheckpoint is the tlog-witness add-checkpoint call: it cosigns checkpoint if
// oldSize is the size of the latest checkpoint cosigned for its origin (0 if none) and
// proof is the consistency proof from that checkpoint to this one. It returns the
// cosignature: note signature lines, each ending in a newline.
func (w *Witness) AddCheckpoint(ctx context.Context, oldSize uint64, proof [][]byte, checkpoint []byte) ([]byte, error) {
	l, n, cp, err := w.open(checkpoint)
	if err != nil {
		return nil, err
	}
	if oldSize > cp.Size {
		return nil, fmt.Errorf("%w: old size %d is larger than the checkpoint's %d", ErrMalformed, oldSize, cp.Size)
	}
	if oldSize == 0 && len(proof) > 0 {
		return nil, fmt.Errorf("%w: a consistency proof from size 0", ErrMalformed)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if oldSize != l.size {
		return nil, &ConflictError{Origin: l.origin, Size: l.size, Reason: fmt.Sprintf("the request's old size is %d", oldSize)}
	}
	return w.cosignLocked(l, n, cp, checkpoint, proof)
}

// ProofFunc returns the RFC 6962 consistency proof from the tree of the log's first
// oldSize entries to the tree of the checkpoint being cosigned. It runs with the
// witness's lock for that log held: it must not call the witness about the same log.
type ProofFunc func(ctx context.Context, oldSize uint64) ([][]byte, error)

// Cosign cosigns checkpoint for a caller that holds the log (a replica): the witness
// asks prove for the consistency proof from the latest checkpoint it cosigned for the
// origin, and checks it as AddCheckpoint does. A checkpoint smaller than that one is
// a *ConflictError.
func (w *Witness) Cosign(ctx context.Context, checkpoint []byte, prove ProofFunc) ([]byte, error) {
	l, n, cp, err := w.open(checkpoint)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if cp.Size < l.size {
		return nil, &ConflictError{Origin: l.origin, Size: l.size, Reason: fmt.Sprintf("the checkpoint is smaller, of size %d", cp.Size)}
	}
	var p [][]byte
	if l.size > 0 && l.size < cp.Size {
		if p, err = prove(ctx, l.size); err != nil {
			return nil, fmt.Errorf("consistency proof of %s from size %d to %d: %w", l.origin, l.size, cp.Size, err)
		}
	}
	return w.cosignLocked(l, n, cp, checkpoint, p)
}

// open verifies a checkpoint's signature by its log and parses it.
func (w *Witness) open(checkpoint []byte) (*logState, *note.Note, *flog.Checkpoint, error) {
	if len(checkpoint) > MaxCheckpointSize {
		return nil, nil, nil, fmt.Errorf("%w: the checkpoint is %d bytes, more than %d (MaxCheckpointSize)", ErrMalformed, len(checkpoint), MaxCheckpointSize)
	}
	origin, _, ok := bytes.Cut(checkpoint, []byte("\n"))
	if !ok || len(origin) == 0 {
		return nil, nil, nil, fmt.Errorf("%w: the checkpoint has no origin line", ErrMalformed)
	}
	w.mu.Lock()
	l := w.logs[string(origin)]
	w.mu.Unlock()
	if l == nil {
		return nil, nil, nil, fmt.Errorf("%w: %q", ErrUnknownLog, truncate(origin))
	}
	l.mu.Lock()
	vs, required := l.verifiers, l.required
	l.mu.Unlock()
	n, err := OpenNote(checkpoint, vs)
	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	switch {
	case errors.As(err, &unverified):
		return nil, nil, nil, fmt.Errorf("%w: no signature verifies with a key of %s", ErrUnauthenticated, l.origin)
	case errors.As(err, &invalid):
		return nil, nil, nil, fmt.Errorf("%w: the signature of %s+%08x does not verify", ErrUnauthenticated, invalid.Name, invalid.Hash)
	case err != nil:
		return nil, nil, nil, fmt.Errorf("%w: the checkpoint is not a signed note: %v", ErrMalformed, err)
	}
	for _, v := range required {
		if !slices.ContainsFunc(n.Sigs, func(s note.Signature) bool { return s.Name == v.Name() && s.Hash == v.KeyHash() }) {
			return nil, nil, nil, fmt.Errorf("%w: the checkpoint carries no signature of %s+%08x; every key of the log must sign it", ErrUnauthenticated, v.Name(), v.KeyHash())
		}
	}
	var cp flog.Checkpoint
	if _, err := cp.Unmarshal([]byte(n.Text)); err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(cp.Hash) != hashSize {
		return nil, nil, nil, fmt.Errorf("%w: the root hash is %d bytes, want %d", ErrMalformed, len(cp.Hash), hashSize)
	}
	return l, n, &cp, nil
}

// cosignLocked checks that cp follows the latest checkpoint cosigned for l (the
// request's old size being that one's) with proof, records it and cosigns it.
func (w *Witness) cosignLocked(l *logState, n *note.Note, cp *flog.Checkpoint, raw []byte, p [][]byte) ([]byte, error) {
	switch {
	case l.root == nil:
		if len(p) > 0 {
			return nil, fmt.Errorf("%w: a consistency proof from size 0", ErrMalformed)
		}
	case l.size == cp.Size && !bytes.Equal(l.root, cp.Hash):
		return nil, &ConflictError{Origin: l.origin, Size: l.size, Reason: "the checkpoint has its size and another root hash: the log forked"}
	default:
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, l.size, cp.Size, p, l.root, cp.Hash); err != nil {
			return nil, fmt.Errorf("%w: from size %d to %d of %s: %v", ErrInconsistent, l.size, cp.Size, l.origin, err)
		}
	}
	signed, err := note.Sign(&note.Note{Text: n.Text}, w.signer)
	if err != nil {
		return nil, fmt.Errorf("cosigning %s: %v", l.origin, err)
	}
	if l.root == nil || l.size != cp.Size {
		if err := os.MkdirAll(w.dir, 0o700); err != nil {
			return nil, err
		}
		if err := files.Replace(l.path, raw, 0o600); err != nil {
			return nil, fmt.Errorf("witness state of %s: %w", l.origin, err)
		}
		l.size, l.root = cp.Size, cp.Hash
	}
	return signed[len(n.Text)+1:], nil
}

// parseBody parses the checkpoint body of a signed note without verifying it.
func parseBody(raw []byte) (*flog.Checkpoint, error) {
	i := bytes.Index(raw, []byte("\n\n"))
	if i < 0 {
		return nil, errors.New("not a signed note")
	}
	var cp flog.Checkpoint
	if _, err := cp.Unmarshal(raw[:i+1]); err != nil {
		return nil, err
	}
	if len(cp.Hash) != hashSize {
		return nil, fmt.Errorf("the root hash is %d bytes, want %d", len(cp.Hash), hashSize)
	}
	return &cp, nil
}

// Handler serves the tlog-witness API of w: POST /add-checkpoint. Mount it at the
// witness's submission prefix.
func Handler(w *Witness) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add-checkpoint", w.serveAddCheckpoint)
	return mux
}

func (w *Witness) serveAddCheckpoint(rw http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, int64(MaxRequestSize)))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		err = ErrTooLarge
	case err != nil:
		err = fmt.Errorf("%w: reading the body: %v", ErrMalformed, err)
	}
	var req *Request
	if err == nil {
		req, err = ParseRequest(body)
	}
	var cosig []byte
	if err == nil {
		cosig, err = w.AddCheckpoint(r.Context(), req.Old, req.Proof, req.Checkpoint)
	}
	if err != nil {
		writeError(rw, err)
		return
	}
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rw.Write(cosig)
}

// writeError answers an add-checkpoint error with its status: the one place errors
// become responses.
func writeError(rw http.ResponseWriter, err error) {
	var conflict *ConflictError
	if errors.As(err, &conflict) {
		rw.Header().Set("Content-Type", "text/x.tlog.size")
		rw.WriteHeader(http.StatusConflict)
		fmt.Fprintf(rw, "%d\n", conflict.Size)
		return
	}
	status := http.StatusInternalServerError
	for _, c := range []struct {
		err    error
		status int
	}{
		{ErrMalformed, http.StatusBadRequest},
		{ErrTooLarge, http.StatusRequestEntityTooLarge},
		{ErrUnknownLog, http.StatusNotFound},
		{ErrUnauthenticated, http.StatusForbidden},
		{ErrInconsistent, http.StatusUnprocessableEntity},
	} {
		if errors.Is(err, c.err) {
			status = c.status
		}
	}
	msg := err.Error()
	if status == http.StatusInternalServerError {
		msg = "the witness could not record its state" // the error names local paths
	}
	http.Error(rw, msg, status)
}
