package oar

import (
	"encoding/hex"
	"fmt"
	"time"

	"github.com/sios-project/sios/identity"
)

// SealDomain separates seal signatures from every other signature a node makes.
const SealDomain = "oar/1 seal"

// MaxSealCount bounds the records one seal may cover.
const MaxSealCount = 1 << 16

// Seal commits to a contiguous run of records: the Merkle root (RFC 6962) of their
// record hashes, signed by the node with ML-DSA-65 and Ed25519. It is logged as the
// entry immediately after the records it covers, at index First+Count.
type Seal struct {
	V     string              `json:"v"`
	Kind  string              `json:"kind"`
	Node  string              `json:"node"`
	Seq   uint64              `json:"seq"`   // seals are numbered 0, 1, 2, … in log order
	First uint64              `json:"first"` // log index of the first record covered
	Count uint64              `json:"count"` // number of records covered, ≥ 1
	Root  string              `json:"root"`  // hex RFC 6962 root over the covered record hashes
	Prev  string              `json:"prev"`  // hex record hash of the previous seal entry; "" for seq 0
	Time  string              `json:"time"`
	Sig   *identity.Signature `json:"sig,omitempty"`
}

// Body is the canonical encoding of the seal without its signature: what is signed.
func (s Seal) Body() ([]byte, error) {
	if err := s.checkIntegers(); err != nil {
		return nil, err
	}
	s.Sig = nil
	return encode(s)
}

// checkIntegers keeps the seal's integers within 2^53, where a JSON number's canonical
// form is its value: beyond, the writer would log a seal that no reader finds canonical.
func (s *Seal) checkIntegers() error {
	if s.Seq > maxExactInt || s.First > maxExactInt || s.Count > maxExactInt || s.First+s.Count > maxExactInt {
		return fmt.Errorf("seal %d: seq, first and first+count must not exceed 2^53", s.Seq)
	}
	return nil
}

// NewSeal builds and signs the seal over the given record hashes.
func NewSeal(key *identity.PrivateKey, node string, seq, first uint64, recordHashes [][]byte, prev []byte, now time.Time) (*Seal, []byte, error) {
	if len(recordHashes) == 0 || len(recordHashes) > MaxSealCount {
		return nil, nil, fmt.Errorf("a seal covers 1 to %d records, not %d", MaxSealCount, len(recordHashes))
	}
	s := &Seal{
		V: Version, Kind: KindSeal, Node: node, Seq: seq, First: first, Count: uint64(len(recordHashes)),
		Root: hex.EncodeToString(MerkleRoot(recordHashes)), Prev: hex.EncodeToString(prev), Time: FormatTime(now),
	}
	body, err := s.Body()
	if err != nil {
		return nil, nil, err
	}
	sig := key.Sign(SealDomain, body)
	s.Sig = &sig
	entry, err := encode(s)
	if err != nil {
		return nil, nil, err
	}
	return s, entry, nil
}

// Index is the log index of the seal entry itself.
func (s *Seal) Index() uint64 { return s.First + s.Count }

// RootBytes is the decoded Merkle root.
func (s *Seal) RootBytes() []byte {
	b, _ := hex.DecodeString(s.Root) // validated by parseSeal
	return b
}

// VerifySignature checks both signatures with the node's public keys.
func (s *Seal) VerifySignature(pub identity.PublicKey) error {
	if s.Sig == nil {
		return fmt.Errorf("seal %d is not signed", s.Seq)
	}
	body, err := s.Body()
	if err != nil {
		return err
	}
	if err := pub.Verify(SealDomain, body, *s.Sig); err != nil {
		return fmt.Errorf("seal %d: %w", s.Seq, err)
	}
	return nil
}

func (s *Seal) validate() error {
	if s.Count == 0 || s.Count > MaxSealCount {
		return fmt.Errorf("seal %d: count %d is outside 1..%d", s.Seq, s.Count, MaxSealCount)
	}
	if err := s.checkIntegers(); err != nil {
		return err
	}
	if !isHash(s.Root) {
		return fmt.Errorf("seal %d: root must be %d bytes of lowercase hex", s.Seq, HashSize)
	}
	if s.Prev != "" && !isHash(s.Prev) {
		return fmt.Errorf("seal %d: prev must be empty or %d bytes of lowercase hex", s.Seq, HashSize)
	}
	if (s.Seq == 0) != (s.Prev == "") {
		return fmt.Errorf("seal %d: prev must be empty exactly for the first seal", s.Seq)
	}
	if s.Node == "" {
		return fmt.Errorf("seal %d: node is required", s.Seq)
	}
	if err := checkTime(s.Time); err != nil {
		return fmt.Errorf("seal %d: %v", s.Seq, err)
	}
	if s.Sig == nil {
		return fmt.Errorf("seal %d: sig is required", s.Seq)
	}
	return nil
}
