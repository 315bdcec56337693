package oar

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/jcs"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

// KindReceipt marks a receipt document (receipts are handed out, never logged).
const KindReceipt = "receipt"

// MaxProofLen bounds an inclusion proof: a seal covers at most 2^16 records.
const MaxProofLen = 16

// Receipt proves that a record is in the log under a signed seal. It verifies with the
// node's public keys alone: the record hash is in the seal's Merkle root (inclusion
// proof), and the seal carries the node's ML-DSA-65 and Ed25519 signatures.
type Receipt struct {
	V              string          `json:"v"`
	Kind           string          `json:"kind"`
	Index          uint64          `json:"index"`
	RecordHash     string          `json:"record_hash"`
	SealIndex      uint64          `json:"seal_index"`
	InclusionProof []string        `json:"inclusion_proof"`
	Seal           json.RawMessage `json:"seal"`
}

// MaxReceiptSize bounds a receipt document read from outside: a seal (about 4.6 KiB in
// canonical form, more when re-indented) and a proof of at most MaxProofLen hashes.
const MaxReceiptSize = 64 << 10

// ParseReceipt decodes a receipt document strictly (jcs.Unmarshal): every member of
// the receipt is required and none may be null, no member may appear twice or be
// spelt in another case, and no other member is allowed. It does not verify it.
func ParseReceipt(data []byte) (*Receipt, error) {
	if len(data) > MaxReceiptSize {
		return nil, fmt.Errorf("receipt is %d bytes, more than the limit of %d (MaxReceiptSize)", len(data), MaxReceiptSize)
	}
	var w struct {
		V              *string          `json:"v"`
		Kind           *string          `json:"kind"`
		Index          *uint64          `json:"index"`
		RecordHash     *string          `json:"record_hash"`
		SealIndex      *uint64          `json:"seal_index"`
		InclusionProof *[]string        `json:"inclusion_proof"`
		Seal           *json.RawMessage `json:"seal"`
	}
	if err := jcs.DecodeStrict(data, &w); err != nil {
		return nil, fmt.Errorf("receipt: %v", err)
	}
	for _, m := range []struct {
		name    string
		missing bool
	}{
		{"v", w.V == nil}, {"kind", w.Kind == nil}, {"index", w.Index == nil}, {"record_hash", w.RecordHash == nil},
		{"seal_index", w.SealIndex == nil}, {"inclusion_proof", w.InclusionProof == nil || *w.InclusionProof == nil},
		{"seal", w.Seal == nil || string(*w.Seal) == "null"},
	} {
		if m.missing {
			return nil, fmt.Errorf("receipt: member %q is missing or null", m.name)
		}
	}
	return &Receipt{V: *w.V, Kind: *w.Kind, Index: *w.Index, RecordHash: *w.RecordHash, SealIndex: *w.SealIndex,
		InclusionProof: *w.InclusionProof, Seal: *w.Seal}, nil
}

// NewReceipt assembles a receipt from the seal entry bytes and the record's proof.
func NewReceipt(index uint64, recordHash []byte, sealIndex uint64, sealEntry []byte, path [][]byte) *Receipt {
	return &Receipt{V: Version, Kind: KindReceipt, Index: index, RecordHash: hex.EncodeToString(recordHash),
		SealIndex: sealIndex, InclusionProof: HexHashes(path), Seal: sealEntry}
}

// Verify checks the receipt against the node's public keys. When entry is not nil it
// must be the record the receipt is for. It returns the verified seal.
func (r *Receipt) Verify(pub identity.PublicKey, entry []byte) (*Seal, error) {
	if r.V != Version || r.Kind != KindReceipt {
		return nil, fmt.Errorf("not an %s receipt", Version)
	}
	if !isHash(r.RecordHash) {
		return nil, fmt.Errorf("record_hash must be %d bytes of lowercase hex", HashSize)
	}
	rh, _ := hex.DecodeString(r.RecordHash)
	if entry != nil && !bytes.Equal(RecordHash(entry), rh) {
		return nil, fmt.Errorf("record_hash does not match the record")
	}
	if len(r.InclusionProof) > MaxProofLen {
		return nil, fmt.Errorf("inclusion_proof has %d hashes, more than %d (MaxProofLen)", len(r.InclusionProof), MaxProofLen)
	}
	sealEntry, err := jcs.Canonicalize(r.Seal)
	if err != nil {
		return nil, fmt.Errorf("seal: %v", err)
	}
	e, err := Parse(sealEntry)
	if err != nil {
		return nil, err
	}
	if e.Kind != KindSeal {
		return nil, fmt.Errorf("seal member holds a %s", e.Kind)
	}
	s := e.Seal
	if s.Index() != r.SealIndex {
		return nil, fmt.Errorf("seal_index %d, but the seal is logged at %d", r.SealIndex, s.Index())
	}
	if r.Index < s.First || r.Index >= s.First+s.Count {
		return nil, fmt.Errorf("index %d is outside the seal's records %d..%d", r.Index, s.First, s.First+s.Count-1)
	}
	path := make([][]byte, len(r.InclusionProof))
	for i, h := range r.InclusionProof {
		if !isHash(h) {
			return nil, fmt.Errorf("inclusion_proof[%d] must be %d bytes of lowercase hex", i, HashSize)
		}
		path[i], _ = hex.DecodeString(h)
	}
	if id := pub.ID(identity.NodePrefix); s.Node != id {
		return nil, fmt.Errorf("the seal names node %s, but the key is node %s's", s.Node, id)
	}
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, r.Index-s.First, s.Count, rh, path, s.RootBytes()); err != nil {
		return nil, fmt.Errorf("inclusion proof: %v", err)
	}
	if err := s.VerifySignature(pub); err != nil {
		return nil, err
	}
	return s, nil
}
