package jcs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Marshal and Unmarshal are the strict encoding and decoding of a signed format whose
// members are the fields of a Go struct: what every published sios format needs, in one
// place. A document is accepted only if it is exactly the bytes Marshal would make of
// what was decoded, so that the bytes a signature covers and the values a program acts
// on can never differ.

// Errors of Unmarshal that callers may branch on.
var (
	// ErrNotExact marks canonical input that the Go value does not hold exactly: a
	// member that is unknown, misspelt, differently cased, missing, or null where a
	// value is required, or a value with another spelling (a base64 string with line
	// breaks, a marking in lower case).
	ErrNotExact = errors.New("does not re-encode to the same bytes")
)

// Marshal encodes v with encoding/json and returns its canonical form.
func Marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return Canonicalize(b)
}

// Unmarshal decodes b into v (a pointer) strictly: b must be canonical (so it holds no
// duplicate member name), every member must be one v knows, and Marshal of the decoded
// value must give back b byte for byte. Refusals wrap ErrNotCanonical or ErrNotExact, or
// are the error a field's decoder returned. Checking what the decoded value means (its
// ranges and rules) is the caller's.
func Unmarshal(b []byte, v any) error {
	c, err := Canonicalize(b)
	if err != nil {
		var je *jcsError
		if errors.As(err, &je) {
			return fmt.Errorf("%w: byte %d: %s", ErrNotCanonical, je.Offset, je.Reason)
		}
		return fmt.Errorf("%w: %v", ErrNotCanonical, err)
	}
	if !bytes.Equal(c, b) {
		return fmt.Errorf("%w: byte %d differs from the canonical encoding", ErrNotCanonical, firstDiff(c, b))
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		if strings.HasPrefix(err.Error(), "json: unknown field ") {
			return fmt.Errorf("%w: %s", ErrNotExact, strings.TrimPrefix(err.Error(), "json: "))
		}
		return err
	}
	again, err := Marshal(v)
	if err != nil {
		return err
	}
	if !bytes.Equal(again, b) {
		return fmt.Errorf("%w: byte %d differs (a member is missing, null, differently cased or spelt)", ErrNotExact, firstDiff(again, b))
	}
	return nil
}

func firstDiff(a, b []byte) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
