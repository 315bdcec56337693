package witness

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// FuzzAddCheckpoint feeds arbitrary request bodies to a witness that holds a log. A
// body that parses must encode back to the same bytes (one encoding per request), and
// whatever the body, the witness answers with one of its typed errors or a cosignature
// that verifies, and its cosigned size never moves back.
func FuzzAddCheckpoint(f *testing.F) {
	l := newSiosLog(f, "sios/audit/node_a", 64)
	w := newTestWitness(f, f.TempDir(), l)
	if _, err := w.AddCheckpoint(context.Background(), 0, nil, l.checkpoint(16)); err != nil {
		f.Fatal(err)
	}
	seeds := []*Request{
		{Old: 16, Proof: l.proof(16, 32), Checkpoint: l.checkpoint(32)},
		{Old: 16, Proof: l.proof(16, 17), Checkpoint: l.checkpoint(17)},
		{Old: 0, Proof: [][]byte{}, Checkpoint: l.checkpoint(64)},
		{Old: 16, Proof: [][]byte{}, Checkpoint: l.checkpoint(16)},
		{Old: 3, Proof: l.proof(3, 5), Checkpoint: l.body(5)},
	}
	for _, r := range seeds {
		f.Add(r.Marshal())
	}
	f.Add([]byte("old 0\n\n"))
	f.Add([]byte("old 18446744073709551615\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\nx\n1\n\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := ParseRequest(body)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("untyped parse error: %v", err)
			}
			return
		}
		if got := req.Marshal(); !bytes.Equal(got, body) {
			t.Fatalf("parse then encode:\n%q\nfrom\n%q", got, body)
		}
		before, _, _ := w.Cosigned(l.origin)
		cosig, err := w.AddCheckpoint(context.Background(), req.Old, req.Proof, req.Checkpoint)
		after, root, _ := w.Cosigned(l.origin)
		if after < before || !bytes.Equal(root, l.tree.HashAt(after)) {
			t.Fatalf("cosigned state moved from %d to %d (root %x)", before, after, root)
		}
		var conflict *ConflictError
		switch {
		case err == nil:
			checkCosignature(t, l, req.Checkpoint, cosig)
		case errors.As(err, &conflict), errors.Is(err, ErrMalformed), errors.Is(err, ErrUnknownLog),
			errors.Is(err, ErrUnauthenticated), errors.Is(err, ErrInconsistent):
		default:
			t.Fatalf("untyped error: %v", err)
		}
	})
}
