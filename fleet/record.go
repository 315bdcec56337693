// Package fleet holds the federation records that sios nodes publish about themselves,
// and the fleet-wide log every node keeps of them.
//
// Each node appends records to its own feed: record seq 0 is its identity (an enrolment
// certificate chaining to an institution root), and every later record carries the next
// sequence number and the hash of the one before, signed with the node's ML-DSA-65 and
// Ed25519 keys. The fleet-wide log is the union of the feeds this node trusts.
//
// Guarantees of a Log:
//   - every record it holds is in canonical form (RFC 8785), has exactly the members of
//     fed/1, and is signed by the node named in it, whose certificate chains to a root
//     the caller trusted when the feed's identity record was added;
//   - each node's feed is a hash chain with no gaps: records that arrive early are held
//     (within MaxHeld) until their predecessor arrives, and never shown before;
//   - adding a record it already holds changes nothing, so records may be resent freely;
//   - two different validly signed records with one node and sequence number are a fork:
//     both are kept as evidence, the node is flagged, and its later records are refused;
//   - nothing from a node whose identity has not verified appears in View, Since or Digest.
//
// The format is published in docs/federation.md; anything here that changes bytes on the
// wire changes that document.
package fleet

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
)

// Version is the value of every record's "v" member.
const Version = "fed/1"

// Domain strings: signatures and hashes of records can never be mistaken for others.
const (
	SignDomain = "fed/1 record"      // identity.PrivateKey.Sign domain of a record's signature
	HashDomain = "fed/1 record-hash" // prefix (followed by a newline) of a record hash
)

// Record kinds. Only append to this list: a published kind never changes meaning.
const (
	KindIdentity  = "identity"
	KindPosture   = "posture"
	KindBrains    = "brains"
	KindLimits    = "limits"
	KindAudit     = "audit"
	KindEndpoints = "endpoints"
	KindWithdraw  = "withdraw"
)

// Kinds lists the record kinds in the order they were defined (KindRole and KindKEM:
// fleet/succession.go).
var Kinds = []string{KindIdentity, KindPosture, KindBrains, KindLimits, KindAudit, KindEndpoints, KindWithdraw, KindRole, KindKEM}

// Record is one federation record. Body holds the kind-specific object in canonical
// form; Parse also decodes it, see Content.
type Record struct {
	V    string              `json:"v"`
	Kind string              `json:"kind"`
	Node string              `json:"node"`
	Seq  uint64              `json:"seq"`
	Prev string              `json:"prev"` // hex record hash of seq-1; "" for seq 0
	Time string              `json:"time"` // oar.FormatTime
	Body json.RawMessage     `json:"body"`
	Sig  *identity.Signature `json:"sig,omitempty"`

	content any // *IdentityBody, *PostureBody, …: set by Parse and NewRecord
}

// Content is the decoded body: *IdentityBody, *PostureBody, *BrainsBody, *LimitsBody,
// *AuditBody, *EndpointsBody, *WithdrawBody or *SuccessionBody according to Kind.
func (r *Record) Content() any { return r.content }

// SignedBytes is the canonical encoding of the record without sig: what is signed.
func (r *Record) SignedBytes() ([]byte, error) {
	c := *r
	c.Sig = nil
	return encode(&c)
}

// Hash is the record hash of the canonical record bytes b (sig included):
// SHA-256(HashDomain || 0x0A || b).
func Hash(b []byte) []byte {
	h := sha256.New()
	h.Write([]byte(HashDomain + "\n"))
	h.Write(b)
	return h.Sum(nil)
}

// encode is the canonical (RFC 8785) encoding of r: the generic path, encoding/json
// followed by jcs.Canonicalize. Records are small and rare, so speed does not matter here.
func encode(r *Record) ([]byte, error) {
	b, err := canonical(r)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxRecordSize {
		return nil, fmt.Errorf("record is %d bytes, more than the limit of %d (MaxRecordSize)", len(b), MaxRecordSize)
	}
	return b, nil
}

func canonical(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jcs.Canonicalize(b)
}

// ErrNotCanonical marks records whose bytes are not their own canonical encoding.
var ErrNotCanonical = errors.New("record is not in canonical form (RFC 8785)")

// Parse decodes a record, requiring that its bytes are canonical, that it holds exactly
// the members of fed/1 (checked by re-encoding what was decoded), and that every member is
// valid. It checks the form only: signatures and the feed are checked by Log.Add.
func Parse(b []byte) (*Record, error) {
	if len(b) > MaxRecordSize {
		return nil, fmt.Errorf("record is %d bytes, more than the limit of %d (MaxRecordSize)", len(b), MaxRecordSize)
	}
	if !jcs.IsCanonical(b) {
		return nil, ErrNotCanonical
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("record: %v", err)
	}
	if err := r.validate(); err != nil {
		return nil, err
	}
	if r.Sig == nil {
		return nil, fmt.Errorf("record %s: sig is required", r.where())
	}
	again, err := encode(&r)
	if err != nil {
		return nil, fmt.Errorf("record %s: %v", r.where(), err)
	}
	if !bytes.Equal(again, b) {
		return nil, fmt.Errorf("record %s holds members that are not part of %s (unknown, misspelt, missing or differently cased)", r.where(), Version)
	}
	return &r, nil
}

func (r *Record) where() string {
	n := r.Node
	if len(n) > MaxIDLen {
		n = n[:MaxIDLen] + "…"
	}
	return fmt.Sprintf("%q seq %d", n, r.Seq)
}

// validate checks every member but sig, decodes the body into r.content and replaces
// r.Body by the canonical encoding of what was decoded, so that unknown body members
// make the re-encoding differ.
func (r *Record) validate() error {
	if r.V != Version {
		return fmt.Errorf("record v is %q, want %q", r.V, Version)
	}
	if !validNodeID(r.Node) {
		return fmt.Errorf("record node %q is not a node id (node_ + base32, at most %d bytes: MaxIDLen)", short(r.Node), MaxIDLen)
	}
	if r.Seq > MaxSeq {
		return fmt.Errorf("record %s: seq is more than 2^53 (MaxSeq)", r.where())
	}
	if r.Seq == 0 && r.Prev != "" || r.Seq > 0 && !isHash(r.Prev) {
		return fmt.Errorf("record %s: prev must be \"\" for seq 0 and otherwise 64 lowercase hex digits", r.where())
	}
	if t, err := time.Parse(time.RFC3339Nano, r.Time); err != nil || oar.FormatTime(t) != r.Time {
		return fmt.Errorf("record %s: time %q is not RFC 3339 UTC as the format requires (e.g. %s)", r.where(), short(r.Time), oar.FormatTime(time.Unix(0, 1)))
	}
	if (r.Seq == 0) != (r.Kind == KindIdentity) {
		return fmt.Errorf("record %s: kind %q: a feed's record seq 0, and only it, is its identity record", r.where(), short(r.Kind))
	}
	content, err := decodeBody(r.Kind, r.Body)
	if err != nil {
		return fmt.Errorf("record %s: %v", r.where(), err)
	}
	if id, ok := content.(*IdentityBody); ok && id.Certificate.NodeID != r.Node {
		return fmt.Errorf("record %s: certificate is for node %q", r.where(), short(id.Certificate.NodeID))
	}
	if r.Body, err = canonical(content); err != nil {
		return fmt.Errorf("record %s: body: %v", r.where(), err)
	}
	r.content = content
	return nil
}

// NewRecord builds, checks and signs a record; prev is the record hash of seq-1 (nil for
// seq 0). body is one of the *Body types (or anything that encodes to the same JSON).
func NewRecord(key *identity.PrivateKey, nodeID string, seq uint64, prev []byte, kind string, body any, now time.Time) ([]byte, error) {
	raw, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("%s body: %v", kind, err)
	}
	r := &Record{V: Version, Kind: kind, Node: nodeID, Seq: seq, Prev: hex.EncodeToString(prev), Time: oar.FormatTime(now), Body: raw}
	if err := r.validate(); err != nil {
		return nil, err
	}
	signed, err := r.SignedBytes()
	if err != nil {
		return nil, err
	}
	sig := key.Sign(SignDomain, signed)
	r.Sig = &sig
	return encode(r)
}

// verifySig checks the record's signature with pub.
func (r *Record) verifySig(pub identity.PublicKey) error {
	signed, err := r.SignedBytes()
	if err != nil {
		return err
	}
	if err := pub.Verify(SignDomain, signed, *r.Sig); err != nil {
		return fmt.Errorf("record %s: %w", r.where(), err)
	}
	return nil
}

// isHash reports whether s is a SHA-256 in lowercase hex, the only spelling allowed.
func isHash(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// validNodeID accepts what identity.PublicKey.ID makes with prefix "node".
func validNodeID(s string) bool { return validKeyID(identity.NodePrefix, s) }

// validRootID accepts what identity.PublicKey.ID makes with prefix "root".
func validRootID(s string) bool { return validKeyID(identity.RootPrefix, s) }

// validKeyID accepts prefix_ followed by lowercase base32, at most MaxIDLen bytes.
func validKeyID(prefix, s string) bool {
	p := prefix + "_"
	if len(s) <= len(p) || len(s) > MaxIDLen || s[:len(p)] != p {
		return false
	}
	for i := len(p); i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// short keeps attacker-controlled text in error messages to a readable length.
func short(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
