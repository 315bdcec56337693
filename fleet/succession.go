package fleet

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/sios-project/sios/succession"
)

// Records of the succession protocol (docs/succession.md): a "role" record carries one
// role charter, event, sealed letter or released letter share; a "kem" record carries a
// node's HPKE key statement (node-kem/1), which letters are sealed to. The body is the
// document itself, exactly as signed.
//
// The log checks a document's form only (succession.ParseDocument): its own signature,
// and whether its signer is a node of the institution, are checked by every node that
// counts it (package roles), which refuses and records those that do not verify. A
// record may carry a document another node signed: what counts is the document's own
// signature, not the carrier's.
const (
	KindRole = "role"
	KindKEM  = "kem"
)

// SuccessionBody is the body of a role or kem record: one succession document.
type SuccessionBody struct {
	doc []byte
	kem bool // the record is of kind kem
}

// NewSuccessionBody wraps a document (the canonical bytes a succession.Sign… function
// returned) for Publish with KindRole, or KindKEM for a node-kem/1 statement.
func NewSuccessionBody(doc []byte) *SuccessionBody { return &SuccessionBody{doc: bytes.Clone(doc)} }

// Document is the carried document's bytes.
func (b *SuccessionBody) Document() []byte { return b.doc }

// MarshalJSON writes the document as it is.
func (b *SuccessionBody) MarshalJSON() ([]byte, error) {
	if len(b.doc) == 0 {
		return nil, fmt.Errorf("succession body holds no document")
	}
	return b.doc, nil
}

// UnmarshalJSON keeps the document's bytes: validate parses them.
func (b *SuccessionBody) UnmarshalJSON(raw []byte) error {
	b.doc = bytes.Clone(raw)
	return nil
}

// validate accepts only a document of the record's kind that succession's parser
// accepts: canonical, exactly the members of its format, every member valid.
func (b *SuccessionBody) validate() error {
	doc, err := succession.ParseDocument(b.doc)
	if err != nil {
		return err
	}
	_, isKEM := doc.(*succession.KEMStatement)
	switch {
	case b.kem && !isKEM:
		return fmt.Errorf("a %s record carries only a %s statement", KindKEM, succession.KEMVersion)
	case !b.kem && isKEM:
		return fmt.Errorf("a %s statement goes in a %s record, not a %s record", succession.KEMVersion, KindKEM, KindRole)
	}
	return nil
}

// decodeSuccession reads the body of a role or kem record.
func decodeSuccession(kind string, raw json.RawMessage) (*SuccessionBody, error) {
	b := &SuccessionBody{doc: bytes.Clone(raw), kem: kind == KindKEM}
	if err := b.validate(); err != nil {
		return nil, fmt.Errorf("%s body: %v", kind, err)
	}
	return b, nil
}
