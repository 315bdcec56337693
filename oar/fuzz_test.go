package oar_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
)

func vectorSeeds(f testing.TB) *Vectors {
	raw, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	if err != nil {
		f.Fatal(err)
	}
	var v Vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		f.Fatal(err)
	}
	return &v
}

// FuzzParseEntry: whatever Parse accepts is canonical, and a parsed record or seal
// encodes back to an entry that parses to the same thing.
func FuzzParseEntry(f *testing.F) {
	v := vectorSeeds(f)
	for _, e := range v.Records {
		f.Add([]byte(e.Canonical))
	}
	f.Add([]byte(v.Seal.Canonical))
	f.Add([]byte(`{"kind":"record","v":"oar/1"}`))
	f.Add([]byte(`{"kind":"seal","v":"oar/1","count":0}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := oar.Parse(b)
		if err != nil {
			return
		}
		if !jcs.IsCanonical(b) {
			t.Fatalf("Parse accepted a non-canonical entry: %q", b)
		}
		switch e.Kind {
		case oar.KindRecord:
			again, err := e.Record.Encode()
			if err != nil {
				t.Fatalf("accepted record does not re-encode: %v", err)
			}
			e2, err := oar.Parse(again)
			if err != nil || e2.Record == nil {
				t.Fatalf("re-encoded record does not parse: %v", err)
			}
			third, _ := e2.Record.Encode()
			if !bytes.Equal(again, third) {
				t.Fatalf("record encoding is not stable:\n%s\n%s", again, third)
			}
		case oar.KindSeal:
			if _, err := e.Seal.Body(); err != nil {
				t.Fatalf("accepted seal has no body: %v", err)
			}
			if e.Seal.Index() < e.Seal.First {
				t.Fatal("seal index overflowed")
			}
		default:
			t.Fatalf("Parse returned kind %q", e.Kind)
		}
	})
}

// FuzzReceipt: parsing and verifying an arbitrary receipt never panics, and never
// succeeds unless the seal in it verifies under the vector node key.
func FuzzReceipt(f *testing.F) {
	v := vectorSeeds(f)
	for _, r := range v.Receipts {
		f.Add([]byte(r), []byte(v.Records[0].Canonical))
	}
	nodePub, _, err := v.Certificate.Verify()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, receipt, record []byte) {
		r, err := oar.ParseReceipt(receipt)
		if err != nil {
			return
		}
		s, err := r.Verify(nodePub, record)
		if err != nil {
			return
		}
		if err := s.VerifySignature(nodePub); err != nil {
			t.Fatalf("Verify accepted a receipt whose seal does not verify: %v", err)
		}
		if !bytes.Equal(oar.RecordHash(record), mustHex(t, r.RecordHash)) {
			t.Fatal("Verify accepted a receipt for another record")
		}
	})
}

func mustHex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q", s)
	}
	return b
}

// FuzzEncodeRecord: whatever Encode writes, Parse reads back to the same bytes — the
// writer never produces an entry the verifier would reject.
func FuzzEncodeRecord(f *testing.F) {
	f.Add("alice", "brain.invoke", "brain/legal", "t1", `{"k":"v"}`)
	f.Add("a\u2028b", "x\x00y", "é😀", "", `{}`)
	f.Fuzz(func(t *testing.T, actor, action, resource, tenant, detail string) {
		r := &oar.Record{V: oar.Version, Kind: oar.KindRecord, Time: "2026-01-02T03:04:05Z", Node: "node_x",
			Actor: oar.Actor{ID: actor}, Action: action, Resource: resource, Tenant: tenant}
		if json.Valid([]byte(detail)) {
			r.Detail = json.RawMessage(detail)
		}
		b, err := r.Encode()
		if err != nil {
			return
		}
		e, err := oar.Parse(b)
		if err != nil {
			t.Fatalf("Encode wrote an entry Parse rejects: %v\n%s", err, b)
		}
		again, err := e.Record.Encode()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs: %v\n%s\n%s", err, b, again)
		}
	})
}
