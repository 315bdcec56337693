package trace

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// seedTraces are the published vector and a few small traces of the right shape.
func seedTraces(f *testing.F) {
	if b, err := os.ReadFile(filepath.Join("testdata", "vector.json")); err == nil {
		f.Add(b)
	}
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"logs":[],"nodes":[],"records":[],"roots":[],"subject":{"index":0,"node":"","record_hash":""},"v":"trace/1"}`))
	f.Add([]byte(`{"v":"trace/1","subject":{"node":"node_aaaaaaaaaaaaaaaaaaaaaaaaaa","index":1,"record_hash":"00"}}`))
}

// FuzzParse: parsing never panics, and a trace that parses encodes back to exactly the
// bytes it was read from.
func FuzzParse(f *testing.F) {
	seedTraces(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := Parse(b)
		if err != nil {
			return
		}
		again, err := Encode(tr)
		if err != nil {
			t.Fatalf("a trace that parses does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("parse then encode changed the bytes:\n%q\n%q", b, again)
		}
	})
}

// FuzzVerify: verification of any bytes ends in a chain or an error, never a panic; a
// change to the published vector never verifies unless it is the vector.
func FuzzVerify(f *testing.F) {
	seedTraces(f)
	vector, _ := os.ReadFile(filepath.Join("testdata", "vector.json"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Verify(b, Options{})
		if err == nil && c == nil {
			t.Fatal("no chain and no error")
		}
		if err == nil && len(vector) > 0 && len(b) == len(vector) && !bytes.Equal(b, vector) {
			t.Fatalf("a changed vector verifies")
		}
	})
}

// FuzzParsePartRequest: a part request that parses names 1 to MaxRecords record
// hashes, each 64 lowercase hex digits.
func FuzzParsePartRequest(f *testing.F) {
	f.Add([]byte(`{"records":[{"record_hash":"0000000000000000000000000000000000000000000000000000000000000000","index":3}]}`))
	f.Add([]byte(`{"records":[]}`))
	f.Add([]byte(`{"records":[{"record_hash":"x"}],"extra":true}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := ParsePartRequest(b)
		if err != nil {
			return
		}
		if len(req.Records) == 0 || len(req.Records) > MaxRecords {
			t.Fatalf("%d records", len(req.Records))
		}
		for _, r := range req.Records {
			if !isHash(r.RecordHash) {
				t.Fatalf("record hash %q", r.RecordHash)
			}
		}
		if _, err := json.Marshal(req); err != nil {
			t.Fatal(err)
		}
	})
}
