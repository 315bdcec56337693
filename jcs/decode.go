package jcs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Marshal returns the canonical encoding of v: encoding/json's encoding of v put in
// RFC 8785 form. Everything a sios format signs or hashes is made this way.
func Marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return Canonicalize(b)
}

// Errors of Unmarshal, for callers that explain them in their format's terms.
var (
	// ErrNotCanonical marks bytes that are not canonical JSON: not I-JSON (a duplicate
	// member name, invalid UTF-8, …) or not in RFC 8785 form.
	ErrNotCanonical = errors.New("not in canonical form (RFC 8785)")
	// ErrNotExact marks canonical JSON whose decoded value does not encode back to the
	// same bytes: a member that is unknown, misspelt, missing, differently cased, or a
	// value with more than one spelling (base64 with a line break, an explicit zero
	// where the format leaves the member out, …).
	ErrNotExact = errors.New("holds members or values that are not part of the format")
)

// Unmarshal is the strict reading of a signed or hashed document: b must be
// canonical (which refuses duplicate member names), it is decoded into v with
// encoding/json, and Marshal(v) must give back b exactly. encoding/json alone matches
// member names without regard to case, keeps the last of duplicate members and skips
// unknown ones; after Unmarshal, every byte of b is covered by the value in v, so every
// implementation reads the document the same way.
//
// Errors wrap ErrNotCanonical or ErrNotExact, or are encoding/json's type errors.
// On ErrNotExact, v holds what was decoded, so that a caller can validate it and name
// the member at fault.
func Unmarshal(b []byte, v any) error {
	c, err := Canonicalize(b)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotCanonical, err)
	}
	if !bytes.Equal(c, b) {
		return ErrNotCanonical
	}
	if err := json.Unmarshal(b, v); err != nil {
		return err
	}
	again, err := Marshal(v)
	if err != nil {
		return err
	}
	if !bytes.Equal(again, b) {
		return ErrNotExact
	}
	return nil
}
