package oar_test

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
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/oar"
	f_log "github.com/transparency-dev/formats/log"
	"golang.org/x/mod/sumdb/note"
)

var update = flag.Bool("update", false, "rewrite testdata/vectors.json")

// Vectors is the published test-vector file described in docs/open-audit-record.md.
// Regenerate with: go test ./oar -run TestVectors -update
type Vectors struct {
	Comment     string               `json:"comment"`
	RootKey     KeyVector            `json:"root_key"`
	NodeKey     KeyVector            `json:"node_key"`
	Certificate identity.Certificate `json:"certificate"`
	Records     []EntryVector        `json:"records"`
	Seal        SealVector           `json:"seal"`
	Receipts    []json.RawMessage    `json:"receipts"`
	Checkpoint  CheckpointVector     `json:"checkpoint"`
}

type KeyVector struct {
	MLDSA65Seed string `json:"mldsa65_seed_hex"`
	Ed25519Seed string `json:"ed25519_seed_hex"`
	identity.PublicKeyJSON
	ID string `json:"id"`
}

type EntryVector struct {
	Index      uint64 `json:"index"`
	Canonical  string `json:"canonical"`
	RecordHash string `json:"record_hash"`
}

type SealVector struct {
	Body          string `json:"body"`
	SignedMessage string `json:"signed_message_hex"`
	EntryVector
}

type CheckpointVector struct {
	Origin string `json:"origin"`
	Size   uint64 `json:"size"`
	Root   string `json:"root_hex"`
	Note   string `json:"note"`
	// Key IDs of the two signature lines (C2SP signed-note).
	Ed25519KeyID string `json:"ed25519_key_id_hex"`
	MLDSA65KeyID string `json:"mldsa65_key_id_hex"`
}

func seeds(b byte) ([mldsa65.SeedSize]byte, [ed25519.SeedSize]byte) {
	var m [mldsa65.SeedSize]byte
	var e [ed25519.SeedSize]byte
	for i := range m {
		m[i], e[i] = b+byte(i), b^byte(i)
	}
	return m, e
}

func keyVector(k *identity.PrivateKey, prefix string, m [32]byte, e [32]byte) KeyVector {
	return KeyVector{MLDSA65Seed: hex.EncodeToString(m[:]), Ed25519Seed: hex.EncodeToString(e[:]),
		PublicKeyJSON: k.Public().JSON(), ID: k.Public().ID(prefix)}
}

// generate builds every vector from fixed seeds and a fixed clock.
func generate(t *testing.T) *Vectors {
	now := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.UTC)
	rm, re := seeds(0x10)
	nm, ne := seeds(0x80)
	root := identity.KeyFromSeeds(identity.KindRoot, rm, re)
	nodeKey := identity.KeyFromSeeds(identity.KindNode, nm, ne)
	cert, err := identity.Issue(root, nodeKey.Public(), "vector-node", now)
	if err != nil {
		t.Fatal(err)
	}
	nodeID := cert.NodeID
	v := &Vectors{
		Comment:     "Open Audit Record v1 test vectors; see docs/open-audit-record.md. Regenerate: go test ./oar -run TestVectors -update",
		RootKey:     keyVector(root, identity.RootPrefix, rm, re),
		NodeKey:     keyVector(nodeKey, identity.NodePrefix, nm, ne),
		Certificate: cert,
	}
	recs := []*oar.Record{
		{Tenant: "nhs-trust-a", Actor: oar.Actor{ID: "dr.okafor", Clearance: "OFFICIAL-SENSITIVE"}, Action: "brain.invoke",
			Resource: "brain/clinical-coding", Classification: "OFFICIAL-SENSITIVE",
			Decision: &oar.Decision{Effect: "allow", Policies: []string{"permit-clinicians", "forbid-read-up"}},
			Inputs:   []oar.Digest{oar.DigestOf("prompt", []byte("Code this discharge summary."))}},
		{Tenant: "nhs-trust-a", Actor: oar.Actor{ID: "intern.li", Clearance: "OFFICIAL"}, Action: "brain.invoke",
			Resource: "brain/defence-procurement", Classification: "SECRET",
			Decision: &oar.Decision{Effect: "deny", Policies: []string{"forbid-read-up"}}},
		{Actor: oar.Actor{ID: "operator"}, Action: "memory.forget", Resource: "subject/patient-1234",
			Detail: json.RawMessage(`{"reason":"erasure request","unicode":"é€😀","escapes":"line\nbreak \"quoted\""}`)},
	}
	var hashes [][]byte
	var entries [][]byte
	for i, r := range recs {
		r.V, r.Kind, r.Node, r.Time = oar.Version, oar.KindRecord, nodeID, oar.FormatTime(now.Add(time.Duration(i)*time.Millisecond))
		e, err := r.Encode()
		if err != nil {
			t.Fatal(err)
		}
		h := oar.RecordHash(e)
		entries, hashes = append(entries, e), append(hashes, h)
		v.Records = append(v.Records, EntryVector{Index: uint64(i), Canonical: string(e), RecordHash: hex.EncodeToString(h)})
	}
	s, sealEntry, err := oar.NewSeal(nodeKey, nodeID, 0, 0, hashes, nil, now.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := s.Body()
	v.Seal = SealVector{Body: string(body), SignedMessage: hex.EncodeToString(identity.Message(oar.SealDomain, body)),
		EntryVector: EntryVector{Index: 3, Canonical: string(sealEntry), RecordHash: hex.EncodeToString(oar.RecordHash(sealEntry))}}
	for i, p := range oar.MerkleProofs(hashes) {
		rc, _ := json.Marshal(oar.NewReceipt(uint64(i), hashes[i], 3, sealEntry, p))
		v.Receipts = append(v.Receipts, rc)
	}
	entries = append(entries, sealEntry)
	leaves := append(append([][]byte(nil), hashes...), oar.RecordHash(sealEntry))
	origin := ledger.Origin(nodeID)
	cpText := f_log.Checkpoint{Origin: origin, Size: uint64(len(entries)), Hash: oar.MerkleRoot(leaves)}.Marshal()
	ed, ml := nodeKey.NoteSigners(origin)
	n, err := note.Sign(&note.Note{Text: string(cpText)}, ed, ml)
	if err != nil {
		t.Fatal(err)
	}
	v.Checkpoint = CheckpointVector{Origin: origin, Size: uint64(len(entries)), Root: hex.EncodeToString(oar.MerkleRoot(leaves)),
		Note: string(n), Ed25519KeyID: hex.EncodeToString(u32(ed.KeyHash())), MLDSA65KeyID: hex.EncodeToString(u32(ml.KeyHash()))}
	return v
}

func u32(x uint32) []byte { return []byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)} }

func TestVectors(t *testing.T) {
	path := filepath.Join("testdata", "vectors.json")
	got, err := json.MarshalIndent(generate(t), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
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
}

// TestVectorsVerifyIndependently checks the published file from its own contents, the
// way another implementation would: canonical forms, hashes, signatures, receipts and
// the checkpoint.
func TestVectorsVerifyIndependently(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "vectors.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v Vectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	nodePub, rootPub, err := v.Certificate.Verify()
	if err != nil {
		t.Fatalf("certificate: %v", err)
	}
	if rootPub.ID(identity.RootPrefix) != v.RootKey.ID || nodePub.ID(identity.NodePrefix) != v.NodeKey.ID {
		t.Fatal("key ids do not match the certificate")
	}
	var leaves [][]byte
	for _, e := range append(append([]EntryVector(nil), v.Records...), v.Seal.EntryVector) {
		if !jcs.IsCanonical([]byte(e.Canonical)) {
			t.Fatalf("entry %d is not canonical", e.Index)
		}
		h := oar.RecordHash([]byte(e.Canonical))
		if hex.EncodeToString(h) != e.RecordHash {
			t.Fatalf("entry %d: record hash mismatch", e.Index)
		}
		leaves = append(leaves, h)
	}
	p, err := oar.Parse([]byte(v.Seal.Canonical))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := p.Seal.Body()
	if string(body) != v.Seal.Body {
		t.Fatal("seal body mismatch")
	}
	msg, _ := hex.DecodeString(v.Seal.SignedMessage)
	if !mldsa65.Verify(nodePub.MLDSA65, msg, nil, p.Seal.Sig.MLDSA65) || !ed25519.Verify(nodePub.Ed25519, msg, p.Seal.Sig.Ed25519) {
		t.Fatal("seal signatures do not verify over signed_message")
	}
	if hex.EncodeToString(oar.MerkleRoot(leaves[:3])) != p.Seal.Root {
		t.Fatal("seal root mismatch")
	}
	for i, rc := range v.Receipts {
		var r oar.Receipt
		if err := json.Unmarshal(rc, &r); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Verify(nodePub, []byte(v.Records[i].Canonical)); err != nil {
			t.Fatalf("receipt %d: %v", i, err)
		}
	}
	cp, err := ledger.ParseCheckpoint([]byte(v.Checkpoint.Note), v.Certificate.NodeID, nodePub)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cp.Root, oar.MerkleRoot(leaves)) || cp.Size != 4 {
		t.Fatal("checkpoint does not commit to the four entries")
	}
}
