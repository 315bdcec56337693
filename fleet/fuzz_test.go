package fleet

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseRecord: whatever Parse accepts re-encodes to exactly its input.
func FuzzParseRecord(f *testing.F) {
	fx := newFixture(f)
	fb := newFeed(f, fx.a1).standard()
	fb.add(KindWithdraw, &WithdrawBody{Kind: KindBrains, Brain: "legal"})
	for _, r := range fb.recs {
		f.Add(r)
	}
	f.Add([]byte(`{"body":{},"kind":"limits","node":"node_a","prev":"","seq":0,"time":"2026-01-01T00:00:00Z","v":"fed/1"}`))
	f.Add(tpmIdentityRecord(f, fx))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Parse(b)
		if err != nil {
			return
		}
		again, err := encode(r)
		if err != nil {
			t.Fatalf("accepted record does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("parse-then-encode changed the record:\n%s\n%s", b, again)
		}
	})
}

// FuzzLogAdd: arbitrary bytes never panic Add, and never make a node appear in View
// that is not one of the trusted institution's nodes.
func FuzzLogAdd(f *testing.F) {
	fx := newFixture(f)
	a1, a2, b1 := newFeed(f, fx.a1).standard(), newFeed(f, fx.a2).standard(), newFeed(f, fx.b1).standard()
	for _, fb := range []*feedBuilder{a1, a2, b1} {
		for _, r := range fb.recs {
			f.Add(r)
		}
	}
	f.Add(tpmIdentityRecord(f, fx))
	trusted := map[string]bool{fx.a1.ID(): true, fx.a2.ID(): true}
	rootA := fx.rootA.ID("root")
	f.Fuzz(func(t *testing.T, b []byte) {
		// The input alone, then again after b1's (untrusted) identity and with a1's
		// feed waiting for it, so that it may fill a gap, fork a feed or be held.
		l := NewLog()
		l.Add(a1.recs[0], fx.onlyA)
		l.Add(a1.recs[2], fx.onlyA)
		l.Add(b, fx.onlyA)
		l.Add(b1.recs[0], fx.onlyA)
		l.Add(b1.recs[1], fx.onlyA)
		l.Add(b, fx.onlyA)
		l.Add(a1.recs[1], fx.onlyA)
		for _, v := range l.View() {
			if !trusted[v.Node] || v.Institution != rootA {
				t.Fatalf("untrusted node %s (institution %s) in View", v.Node, v.Institution)
			}
		}
		for id := range l.Digest() {
			if !trusted[id] {
				t.Fatalf("untrusted node %s in Digest", id)
			}
		}
	})
}

// tpmIdentityRecord is an identity record of attestation tpm carrying real evidence
// (identity/tpm's test vectors, made by swtpm): well formed, though the evidence binds
// another node's keys, so Log.Add refuses it.
func tpmIdentityRecord(f *testing.F, fx *fleetFixture) []byte {
	f.Helper()
	b, err := os.ReadFile(filepath.Join("..", "identity", "tpm", "testdata", "vectors.json"))
	if err != nil {
		f.Fatal(err)
	}
	var v struct {
		Evidence string `json:"evidence"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		f.Fatal(err)
	}
	rec, err := NewRecord(fx.a1.Key, fx.a1.ID(), 0, nil, KindIdentity,
		&IdentityBody{Attestation: AttestTPM, Certificate: fx.a1.Cert, Evidence: []byte(v.Evidence)}, t0)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := NewLog().Add(rec, fx.onlyA); !errors.Is(err, ErrAttestation) {
		f.Fatalf("a record whose evidence binds other keys: %v, want ErrAttestation", err)
	}
	return rec
}
