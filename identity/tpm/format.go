package tpm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/jcs"
)

// The published formats (docs/attestation.md) are canonical JSON: parsing requires
// the exact canonical bytes of exactly the members of the version, so anything
// accepted re-encodes to its input and nothing unsigned can ride along.

// canonical is the RFC 8785 encoding of v.
func canonical(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jcs.Canonicalize(b)
}

// parseCanonical decodes b into v (a pointer to a format struct) and checks that b is
// canonical, within limit (named by limitName), free of unknown members, and that the
// decoded value re-encodes to exactly b (which refuses missing and null members).
// validate checks the members and runs before the re-encoding.
func parseCanonical(what string, b []byte, limit int, limitName string, v any, validate func() error) error {
	if len(b) > limit {
		return fmt.Errorf("%s is %d bytes, more than %d (%s)", what, len(b), limit, limitName)
	}
	if !jcs.IsCanonical(b) {
		return fmt.Errorf("%s is not canonical JSON (RFC 8785): re-encoded, reordered, or has repeated members", what)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %v", what, err)
	}
	if err := validate(); err != nil {
		return err
	}
	again, err := canonical(v)
	if err != nil {
		return fmt.Errorf("%s: %v", what, err)
	}
	if !bytes.Equal(again, b) {
		return fmt.Errorf("%s has members missing, null or spelt otherwise than in its version", what)
	}
	return nil
}

// marshalCanonical is the writing side of parseCanonical: same checks, same limit.
func marshalCanonical(what string, v any, limit int, limitName string, validate func() error) ([]byte, error) {
	if err := validate(); err != nil {
		return nil, err
	}
	b, err := canonical(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", what, err)
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%s is %d bytes, more than %d (%s)", what, len(b), limit, limitName)
	}
	return b, nil
}

// validNodeID accepts what identity.PublicKey.ID makes with prefix "node".
func validNodeID(s string) bool {
	const p = identity.NodePrefix + "_"
	if len(s) <= len(p) || len(s) > 128 || !strings.HasPrefix(s, p) {
		return false
	}
	for _, c := range s[len(p):] {
		if (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// isHex reports whether s is n bytes in lowercase hex, the only spelling allowed.
func isHex(s string, n int) bool {
	if len(s) != 2*n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// isHexName reports whether s is a TPM Name with SHA-256 as its name algorithm
// (0x000b followed by the digest) in lowercase hex.
func isHexName(s string) bool { return isHex(s, 34) && strings.HasPrefix(s, "000b") }

// ValidEKSHA256 reports whether s names an EK as EKSHA256 does (64 lowercase hex digits).
func ValidEKSHA256(s string) bool { return isHex(s, 32) }

// short keeps outside text in error messages to a readable length.
func short(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}
