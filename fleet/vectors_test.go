package fleet

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloudflare/circl/sign/mldsa/mldsa65"
	"github.com/sios-project/sios/identity"
)

var updateVectors = flag.Bool("update", false, "rewrite testdata/vectors.json")

// fedVectors is the published test-vector file described in docs/federation.md.
// Regenerate with: go test ./fleet -run TestVectors -update
type fedVectors struct {
	Comment      string            `json:"comment"`
	RootMLDSA65  string            `json:"root_mldsa65_seed_hex"`
	RootEd25519  string            `json:"root_ed25519_seed_hex"`
	NodeMLDSA65  string            `json:"node_mldsa65_seed_hex"`
	NodeEd25519  string            `json:"node_ed25519_seed_hex"`
	NodeID       string            `json:"node_id"`
	RootID       string            `json:"root_id"`
	Records      []fedRecordVector `json:"records"`
	SignedBodies []string          `json:"signed_messages_hex"`
}

type fedRecordVector struct {
	Seq        uint64 `json:"seq"`
	Kind       string `json:"kind"`
	Canonical  string `json:"canonical"`
	RecordHash string `json:"record_hash"`
}

func vectorSeeds(b byte) ([mldsa65.SeedSize]byte, [ed25519.SeedSize]byte) {
	var m [mldsa65.SeedSize]byte
	var e [ed25519.SeedSize]byte
	for i := range m {
		m[i], e[i] = b+byte(i), b^byte(i)
	}
	return m, e
}

func generateVectors(t *testing.T) *fedVectors {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	rm, re := vectorSeeds(0x20)
	nm, ne := vectorSeeds(0x90)
	root := identity.KeyFromSeeds(identity.KindRoot, rm, re)
	key := identity.KeyFromSeeds(identity.KindNode, nm, ne)
	cert, err := identity.Issue(root, key.Public(), "vector-node", now)
	if err != nil {
		t.Fatal(err)
	}
	v := &fedVectors{
		Comment:     "fed/1 federation record test vectors; see docs/federation.md. Regenerate: go test ./fleet -run TestVectors -update",
		RootMLDSA65: hex.EncodeToString(rm[:]), RootEd25519: hex.EncodeToString(re[:]),
		NodeMLDSA65: hex.EncodeToString(nm[:]), NodeEd25519: hex.EncodeToString(ne[:]),
		NodeID: cert.NodeID, RootID: cert.RootID,
	}
	bodies := []struct {
		kind string
		body any
	}{
		{KindIdentity, IdentityBody{Attestation: AttestSoftware, Certificate: cert}},
		{KindPosture, PostureBody{Classification: "SECRET"}},
		{KindBrains, BrainsBody{Brains: []Brain{{ID: "clinical-coding", Kind: "domain", Classification: "OFFICIAL-SENSITIVE"}}}},
		{KindWithdraw, WithdrawBody{Kind: KindBrains, Brain: "clinical-coding"}},
	}
	var prev []byte
	for i, b := range bodies {
		rec, err := NewRecord(key, cert.NodeID, uint64(i), prev, b.kind, b.body, now.Add(time.Duration(i)*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		prev = Hash(rec)
		v.Records = append(v.Records, fedRecordVector{Seq: uint64(i), Kind: b.kind, Canonical: string(rec), RecordHash: hex.EncodeToString(prev)})
		r, err := Parse(rec)
		if err != nil {
			t.Fatal(err)
		}
		signed, err := r.SignedBytes()
		if err != nil {
			t.Fatal(err)
		}
		v.SignedBodies = append(v.SignedBodies, hex.EncodeToString(identity.Message(SignDomain, signed)))
	}
	return v
}

func TestVectors(t *testing.T) {
	path := filepath.Join("testdata", "vectors.json")
	got, err := json.MarshalIndent(generateVectors(t), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *updateVectors {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date with the code: the format changed, or run with -update", path)
	}
	// The published records form a feed a Log accepts under the vector root alone.
	var v fedVectors
	if err := json.Unmarshal(want, &v); err != nil {
		t.Fatal(err)
	}
	rm, re := vectorSeeds(0x20)
	trust := NewTrust(identity.KeyFromSeeds(identity.KindRoot, rm, re).Public())
	log := NewLog()
	for _, r := range v.Records {
		if res, err := log.Add([]byte(r.Canonical), trust); err != nil || res.Status != Applied {
			t.Fatalf("record %d: %v %v", r.Seq, res, err)
		}
		if hex.EncodeToString(Hash([]byte(r.Canonical))) != r.RecordHash {
			t.Fatalf("record %d: hash", r.Seq)
		}
	}
}
