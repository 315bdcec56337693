package witness

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sios-project/sios/identity"
	flog "github.com/transparency-dev/formats/log"
	fnote "github.com/transparency-dev/formats/note"
	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"
)

const testWitnessName = "sios/witness/node_test"

// testLog is a Merkle tree and the keys that sign its checkpoints.
type testLog struct {
	t         testing.TB
	origin    string
	salt      string // tells apart the histories of one origin
	tree      *testonly.Tree
	signers   []note.Signer
	verifiers []note.Verifier
}

// newSiosLog signs like a sios node: Ed25519 and ML-DSA-65 under the origin.
func newSiosLog(t testing.TB, origin string, entries int) *testLog {
	t.Helper()
	k, err := identity.GenerateKey(identity.KindNode)
	if err != nil {
		t.Fatal(err)
	}
	ed, ml := k.NoteSigners(origin)
	ved, vml := k.Public().NoteVerifiers(origin)
	l := &testLog{t: t, origin: origin, tree: testonly.New(rfc6962.DefaultHasher), signers: []note.Signer{ed, ml}, verifiers: []note.Verifier{ved, vml}}
	l.grow(entries)
	return l
}

// newStandardLog signs with a plain Ed25519 note key, as other tlog software does.
func newStandardLog(t testing.TB, origin string, entries int) *testLog {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := note.NewSigner(skey)
	if err != nil {
		t.Fatal(err)
	}
	v, err := note.NewVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	l := &testLog{t: t, origin: origin, tree: testonly.New(rfc6962.DefaultHasher), signers: []note.Signer{s}, verifiers: []note.Verifier{v}}
	l.grow(entries)
	return l
}

func (l *testLog) grow(n int) {
	for range n {
		if l.salt == "" {
			l.salt = rand.Text()
		}
		l.tree.AppendData(fmt.Appendf(nil, "entry %d of %s (%s)", l.tree.Size(), l.origin, l.salt))
	}
}

func (l *testLog) body(size uint64) []byte {
	return flog.Checkpoint{Origin: l.origin, Size: size, Hash: l.tree.HashAt(size)}.Marshal()
}

func (l *testLog) checkpoint(size uint64) []byte {
	return sign(l.t, l.body(size), l.signers...)
}

func (l *testLog) proof(from, to uint64) [][]byte {
	p, err := l.tree.ConsistencyProof(from, to)
	if err != nil {
		l.t.Fatal(err)
	}
	return p
}

func sign(t testing.TB, body []byte, signers ...note.Signer) []byte {
	t.Helper()
	b, err := note.Sign(&note.Note{Text: string(body)}, signers...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var witnessKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

func newTestWitness(t testing.TB, dir string, logs ...*testLog) *Witness {
	t.Helper()
	s, err := NewSigner(testWitnessName, witnessKey)
	if err != nil {
		t.Fatal(err)
	}
	w, err := New(dir, s)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range logs {
		if err := w.AddLog(l.origin, l.verifiers...); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// checkCosignature verifies a cosignature over checkpoint three ways: the note package
// with the formats cosignature/v1 verifier, and by hand from the specification.
func checkCosignature(t *testing.T, l *testLog, checkpoint, cosig []byte) {
	t.Helper()
	if !bytes.HasPrefix(cosig, []byte("— "+testWitnessName+" ")) || bytes.Count(cosig, []byte("\n")) != 1 || !bytes.HasSuffix(cosig, []byte("\n")) {
		t.Fatalf("cosignature is not one note signature line of %s: %q", testWitnessName, cosig)
	}
	vkey, err := VerifierKey(testWitnessName, witnessKey.Public().(ed25519.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	v, err := fnote.NewVerifierForCosignatureV1(vkey)
	if err != nil {
		t.Fatal(err)
	}
	n, err := note.Open(append(bytes.Clone(checkpoint), cosig...), note.VerifierList(append([]note.Verifier{v}, l.verifiers...)...))
	if err != nil {
		t.Fatalf("the cosigned checkpoint does not verify: %v", err)
	}
	var cosigned bool
	for _, s := range n.Sigs {
		if s.Name == testWitnessName && s.Hash == v.KeyHash() {
			cosigned = true
			ts, err := fnote.CoSigV1Timestamp(s)
			if err != nil || time.Since(ts) > time.Minute || time.Until(ts) > time.Second {
				t.Fatalf("cosignature time %v (%v)", ts, err)
			}
		}
	}
	if !cosigned {
		t.Fatal("the witness's signature is not among the verified ones")
	}

	// By hand: base64(key ID || u64 timestamp || Ed25519 signature) over
	// "cosignature/v1\ntime <t>\n" and the checkpoint body; key ID from type 0x04.
	line := strings.TrimSuffix(string(cosig), "\n")
	raw, err := base64.StdEncoding.DecodeString(line[strings.LastIndexByte(line, ' ')+1:])
	if err != nil || len(raw) != 4+8+ed25519.SignatureSize {
		t.Fatalf("cosignature is %d bytes (%v)", len(raw), err)
	}
	id := sha256.Sum256(append([]byte(testWitnessName+"\n\x04"), witnessKey.Public().(ed25519.PublicKey)...))
	if !bytes.Equal(raw[:4], id[:4]) {
		t.Fatalf("key ID %x, want %x", raw[:4], id[:4])
	}
	ts := binary.BigEndian.Uint64(raw[4:12])
	body := checkpoint[:bytes.Index(checkpoint, []byte("\n\n"))+1]
	msg := fmt.Appendf(nil, "cosignature/v1\ntime %d\n%s", ts, body)
	if !ed25519.Verify(witnessKey.Public().(ed25519.PublicKey), msg, raw[12:]) {
		t.Fatal("the Ed25519 signature does not verify over the cosignature/v1 message")
	}
}

func TestWitnessCosignatureVerifies(t *testing.T) {
	for _, l := range []*testLog{newSiosLog(t, "sios/audit/node_a", 10), newStandardLog(t, "example.com/log", 10)} {
		t.Run(l.origin, func(t *testing.T) {
			w := newTestWitness(t, t.TempDir(), l)
			cp := l.checkpoint(10)
			cosig, err := w.AddCheckpoint(context.Background(), 0, nil, cp)
			if err != nil {
				t.Fatal(err)
			}
			checkCosignature(t, l, cp, cosig)
		})
	}
}

// post sends an add-checkpoint request to h and returns the status, content type and body.
func post(t *testing.T, h http.Handler, body []byte) (int, string, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("POST", "/add-checkpoint", bytes.NewReader(body)))
	return rec.Code, rec.Header().Get("Content-Type"), rec.Body.String()
}

func TestWitnessAddCheckpoint(t *testing.T) {
	l := newSiosLog(t, "sios/audit/node_a", 40)
	fork := newSiosLog(t, l.origin, 40) // another history of the same log …
	fork.signers, fork.verifiers = l.signers, l.verifiers
	other := newSiosLog(t, l.origin, 40) // … and a checkpoint signed by another key
	w := newTestWitness(t, t.TempDir(), l)
	h := Handler(w)
	req := func(old uint64, proof [][]byte, cp []byte) []byte {
		return (&Request{Old: old, Proof: proof, Checkpoint: cp}).Marshal()
	}
	badProof := l.proof(20, 30)
	badProof[0] = bytes.Repeat([]byte{1}, 32)
	tooLong := make([][]byte, MaxProofLines+1)
	for i := range tooLong {
		tooLong[i] = make([]byte, 32)
	}

	steps := []struct {
		name   string
		body   []byte
		status int
		want   string // in the body
	}{
		{"first checkpoint, old 0", req(0, nil, l.checkpoint(8)), 200, "— " + testWitnessName + " "},
		{"extends with a proof", req(8, l.proof(8, 20), l.checkpoint(20)), 200, "— " + testWitnessName + " "},
		{"stale old size", req(8, l.proof(8, 30), l.checkpoint(30)), 409, "20\n"},
		{"old size 0 once cosigned", req(0, nil, l.checkpoint(30)), 409, "20\n"},
		{"old larger than the checkpoint", req(20, nil, l.checkpoint(10)), 400, "larger than the checkpoint"},
		{"smaller checkpoint with its old size", req(8, nil, l.checkpoint(8)), 409, "20\n"},
		{"bad proof", req(20, badProof, l.checkpoint(30)), 422, "does not verify"},
		{"proof of another history", req(20, fork.proof(20, 30), fork.checkpoint(30)), 422, "does not verify"},
		{"no proof", req(20, nil, l.checkpoint(30)), 422, "does not verify"},
		{"same size, another root", req(20, nil, fork.checkpoint(20)), 409, "20\n"},
		{"another key", req(20, l.proof(20, 30), other.checkpoint(30)), 403, "not signed by a known key"},
		{"signed by no known key", req(20, l.proof(20, 30), append(l.body(30), "\n— sios/audit/node_a AAAAAAAA\n"...)), 403, "not signed by a known key"},
		{"not a signed note", req(20, l.proof(20, 30), append(l.body(30), '\n')), 400, "not a signed note"},
		{"unknown origin", req(0, nil, newSiosLog(t, "example.com/unknown", 3).checkpoint(3)), 404, "unknown log origin"},
		{"no old line", []byte("\n" + string(l.checkpoint(30))), 400, "old <size>"},
		{"leading zero", []byte("old 020\n\n" + string(l.checkpoint(30))), 400, "old <size>"},
		{"proof line not base64", []byte("old 20\nnot base64!\n\n" + string(l.checkpoint(30))), 400, "not a base64 32-byte hash"},
		{"short hash", []byte("old 20\nAAAA\n\n" + string(l.checkpoint(30))), 400, "not a base64 32-byte hash"},
		{"64 proof lines", req(20, tooLong, l.checkpoint(30)), 400, "more than 63 consistency proof lines (MaxProofLines)"},
		{"no empty line", []byte("old 20\n"), 400, "no empty line"},
		{"no checkpoint", []byte("old 20\n\n"), 400, "no checkpoint"},
		{"proof from 0", req(0, l.proof(20, 30), l.checkpoint(30)), 400, "from size 0"},
		{"oversized", append(req(20, nil, l.checkpoint(30)), make([]byte, MaxRequestSize)...), 413, "MaxRequestSize"},
		{"same checkpoint again", req(20, nil, l.checkpoint(20)), 200, "— " + testWitnessName + " "},
		{"extends after the refusals", req(20, l.proof(20, 40), l.checkpoint(40)), 200, "— " + testWitnessName + " "},
	}
	for _, s := range steps {
		status, ctype, body := post(t, h, s.body)
		if status != s.status || !strings.Contains(body, s.want) {
			t.Fatalf("%s: %d %q, want %d with %q", s.name, status, body, s.status, s.want)
		}
		if status == 409 && ctype != "text/x.tlog.size" {
			t.Fatalf("%s: 409 with content type %q", s.name, ctype)
		}
	}
	if size, _, _ := w.Cosigned(l.origin); size != 40 {
		t.Fatalf("cosigned size %d, want 40", size)
	}
	if status, _, _ := post(t, h, nil); status != 400 {
		t.Fatalf("empty body: %d", status)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/add-checkpoint", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", rec.Code)
	}
}

func TestWitnessErrorsAreTyped(t *testing.T) {
	l := newSiosLog(t, "sios/audit/node_a", 30)
	w := newTestWitness(t, t.TempDir(), l)
	ctx := context.Background()
	if _, err := w.AddCheckpoint(ctx, 0, nil, l.checkpoint(10)); err != nil {
		t.Fatal(err)
	}
	var conflict *ConflictError
	if _, err := w.AddCheckpoint(ctx, 5, nil, l.checkpoint(20)); !errors.As(err, &conflict) || conflict.Size != 10 {
		t.Fatalf("stale old size: %v", err)
	}
	if _, err := w.AddCheckpoint(ctx, 10, l.proof(5, 20), l.checkpoint(20)); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("wrong proof: %v", err)
	}
	if _, err := w.AddCheckpoint(ctx, 0, nil, []byte("no origin line")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("garbage: %v", err)
	}
	if _, err := w.AddCheckpoint(ctx, 0, nil, newSiosLog(t, "x", 1).checkpoint(1)); !errors.Is(err, ErrUnknownLog) {
		t.Fatalf("unknown origin: %v", err)
	}
	other := newSiosLog(t, l.origin, 20)
	if _, err := w.AddCheckpoint(ctx, 10, l.proof(10, 20), other.checkpoint(20)); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("another key: %v", err)
	}
	// A signature by a known key that does not verify (the text was changed).
	cp := l.checkpoint(20)
	forged := bytes.Replace(cp, []byte("\n20\n"), []byte("\n21\n"), 1)
	if _, err := w.AddCheckpoint(ctx, 10, l.proof(10, 20), forged); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("bad signature: %v", err)
	}
	// Only the Ed25519 signature of a log whose keys are Ed25519 and ML-DSA-65: the
	// post-quantum signature is required too.
	edOnly := sign(t, l.body(20), l.signers[0])
	if _, err := w.AddCheckpoint(ctx, 10, l.proof(10, 20), edOnly); !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), "every key of the log must sign") {
		t.Fatalf("Ed25519 alone: %v", err)
	}
}

func TestWitnessStateSurvivesRestart(t *testing.T) {
	l := newSiosLog(t, "sios/audit/node_a", 30)
	dir := t.TempDir()
	ctx := context.Background()
	w := newTestWitness(t, dir, l)
	if _, err := w.AddCheckpoint(ctx, 0, nil, l.checkpoint(10)); err != nil {
		t.Fatal(err)
	}
	if _, err := w.AddCheckpoint(ctx, 10, l.proof(10, 20), l.checkpoint(20)); err != nil {
		t.Fatal(err)
	}

	w = newTestWitness(t, dir, l) // a restart
	size, root, ok := w.Cosigned(l.origin)
	if !ok || size != 20 || !bytes.Equal(root, l.tree.HashAt(20)) {
		t.Fatalf("after a restart the witness holds size %d (ok %v)", size, ok)
	}
	var conflict *ConflictError
	if _, err := w.AddCheckpoint(ctx, 0, nil, l.checkpoint(30)); !errors.As(err, &conflict) || conflict.Size != 20 {
		t.Fatalf("old size 0 after a restart: %v", err)
	}
	if _, err := w.AddCheckpoint(ctx, 10, nil, l.checkpoint(10)); !errors.As(err, &conflict) {
		t.Fatalf("a smaller checkpoint after a restart: %v", err)
	}
	if _, err := w.AddCheckpoint(ctx, 20, l.proof(20, 30), l.checkpoint(30)); err != nil {
		t.Fatal(err)
	}

	// The state is the latest cosigned checkpoint itself; nothing else is left behind.
	files, _ := os.ReadDir(dir)
	if len(files) != 1 {
		t.Fatalf("witness directory holds %d files", len(files))
	}
	raw, _ := os.ReadFile(filepath.Join(dir, files[0].Name()))
	if !bytes.Equal(raw, l.checkpoint(30)) {
		t.Fatalf("state file: %q", raw)
	}
	// A damaged state is an error, never a fresh start.
	os.WriteFile(filepath.Join(dir, files[0].Name()), []byte("garbage"), 0o600)
	s, _ := NewSigner(testWitnessName, witnessKey)
	w2, _ := New(dir, s)
	if err := w2.AddLog(l.origin, l.verifiers...); err == nil || !strings.Contains(err.Error(), l.origin) {
		t.Fatalf("damaged state: %v", err)
	}
}

func TestWitnessCosign(t *testing.T) {
	l := newSiosLog(t, "sios/audit/node_a", 50)
	w := newTestWitness(t, t.TempDir(), l)
	ctx := context.Background()
	var asked []uint64
	prove := func(to uint64) ProofFunc {
		return func(_ context.Context, old uint64) ([][]byte, error) {
			asked = append(asked, old)
			return l.proof(old, to), nil
		}
	}
	for _, size := range []uint64{10, 10, 25} {
		cp := l.checkpoint(size)
		cosig, err := w.Cosign(ctx, cp, prove(size))
		if err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		checkCosignature(t, l, cp, cosig)
	}
	if fmt.Sprint(asked) != "[10]" {
		t.Fatalf("proofs asked from sizes %v, want only from 10", asked)
	}
	var conflict *ConflictError
	if _, err := w.Cosign(ctx, l.checkpoint(20), prove(20)); !errors.As(err, &conflict) || conflict.Size != 25 {
		t.Fatalf("smaller checkpoint: %v", err)
	}
	fork := newSiosLog(t, l.origin, 50)
	fork.signers = l.signers
	if _, err := w.Cosign(ctx, fork.checkpoint(25), prove(25)); !errors.As(err, &conflict) {
		t.Fatalf("same size, other root: %v", err)
	}
	forkProof := func(_ context.Context, old uint64) ([][]byte, error) { return fork.proof(old, 40), nil }
	if _, err := w.Cosign(ctx, fork.checkpoint(40), forkProof); !errors.Is(err, ErrInconsistent) {
		t.Fatalf("a fork with its own proof: %v", err)
	}
	failing := func(context.Context, uint64) ([][]byte, error) { return nil, errors.New("tile missing") }
	if _, err := w.Cosign(ctx, l.checkpoint(40), failing); err == nil || !strings.Contains(err.Error(), "tile missing") {
		t.Fatalf("proof failure: %v", err)
	}
	if size, _, _ := w.Cosigned(l.origin); size != 25 {
		t.Fatalf("refused cosignatures moved the state to %d", size)
	}
}

// Concurrent submissions of the same old size: one wins, the others conflict, and
// the state never moves back (tlog-witness: check and persist atomically).
func TestWitnessConcurrentAddCheckpoint(t *testing.T) {
	l := newSiosLog(t, "sios/audit/node_a", 64)
	w := newTestWitness(t, t.TempDir(), l)
	ctx := context.Background()
	if _, err := w.AddCheckpoint(ctx, 0, nil, l.checkpoint(1)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for size := uint64(2); size <= 64; size++ {
		wg.Go(func() {
			_, err := w.AddCheckpoint(ctx, 1, l.proof(1, size), l.checkpoint(size))
			var conflict *ConflictError
			if err != nil && !errors.As(err, &conflict) {
				t.Errorf("size %d: %v", size, err)
			}
			if err == nil {
				mu.Lock()
				won++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if size, _, _ := w.Cosigned(l.origin); won != 1 || size < 2 {
		t.Fatalf("%d requests from old size 1 won; state at %d", won, size)
	}
}

func TestWitnessRequestRoundTrip(t *testing.T) {
	l := newSiosLog(t, "sios/audit/node_a", 20)
	for _, r := range []*Request{
		{Old: 0, Proof: [][]byte{}, Checkpoint: l.checkpoint(3)},
		{Old: 7, Proof: l.proof(7, 20), Checkpoint: l.checkpoint(20)},
	} {
		b := r.Marshal()
		got, err := ParseRequest(b)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Marshal(), b) || got.Old != r.Old || len(got.Proof) != len(r.Proof) {
			t.Fatalf("round trip: %q", got.Marshal())
		}
	}
	// The example request of the specification parses.
	spec := "old 20852014\nPlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\njrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=\n5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=\n/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=\n\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n\n— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n"
	r, err := ParseRequest([]byte(spec))
	if err != nil || r.Old != 20852014 || len(r.Proof) != 4 || !strings.HasPrefix(string(r.Checkpoint), "example.com/behind-the-sofa\n") {
		t.Fatalf("specification example: %+v %v", r, err)
	}
}

// The handler reads no more than MaxRequestSize of a body.
func TestWitnessHandlerBoundsBody(t *testing.T) {
	w := newTestWitness(t, t.TempDir())
	rec := httptest.NewRecorder()
	body := io.MultiReader(strings.NewReader("old 0\n\n"), &endless{})
	Handler(w).ServeHTTP(rec, httptest.NewRequest("POST", "/add-checkpoint", body))
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("endless body: %d %s", rec.Code, rec.Body)
	}
}

type endless struct{}

func (*endless) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}
