package decision

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
)

// What the three formats share: each is canonical JSON (RFC 8785) with exactly its own
// members, signed by one node with both of its keys (identity.PrivateKey.Sign) over
// its canonical encoding without "sig", under its own domain. Parsing checks the form
// and that a signature is present; Verify checks the signature.

// message is *Request, *Ballot or *Outcome.
type message interface {
	format() format
	validate() error
	signature() *identity.Signature
	signer() string               // node id whose key signs the message
	signedBytes() ([]byte, error) // canonical encoding without sig
}

// format is what differs between the formats for the shared code below.
type format struct {
	name, version, domain string
	max                   int
	maxName               string
}

// seal validates m (whose Sig must be nil), signs it and returns its canonical bytes,
// calling set to store the signature in m.
func seal(key *identity.PrivateKey, m message, set func(*identity.Signature)) ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	body, err := m.signedBytes()
	if err != nil {
		return nil, err
	}
	sig := key.Sign(m.format().domain, body)
	set(&sig)
	return encode(m)
}

// encode is the canonical encoding of m within its format's size cap.
func encode(m message) ([]byte, error) {
	f := m.format()
	b, err := jcs.Marshal(m)
	if err != nil {
		return nil, err
	}
	if len(b) > f.max {
		return nil, fmt.Errorf("%s is %d bytes, more than the limit of %d (%s)", f.name, len(b), f.max, f.maxName)
	}
	return b, nil
}

// parse decodes b into m strictly (jcs.Unmarshal), validates every member and
// requires a signature.
func parse(b []byte, m message) error {
	f := m.format()
	if len(b) > f.max {
		return fmt.Errorf("%s is %d bytes, more than the limit of %d (%s)", f.name, len(b), f.max, f.maxName)
	}
	err := jcs.Unmarshal(b, m)
	switch {
	case errors.Is(err, jcs.ErrNotCanonical):
		return fmt.Errorf("%s is not in canonical form (RFC 8785): %v", f.name, err)
	case errors.Is(err, jcs.ErrNotExact):
		// A missing or invalid member explains the difference best.
		if verr := m.validate(); verr != nil {
			return verr
		}
		return fmt.Errorf("%s from %q holds members that are not part of %s (unknown, misspelt, missing, differently cased or spelt another way)", f.name, short(m.signer()), f.version)
	case err != nil:
		return fmt.Errorf("%s: %v", f.name, err)
	}
	if err := m.validate(); err != nil {
		return err
	}
	if m.signature() == nil {
		return fmt.Errorf("%s from %q: sig is required", f.name, short(m.signer()))
	}
	return nil
}

// verify checks that pub is the signer's key and that it signed m.
func verify(m message, pub identity.PublicKey) error {
	f := m.format()
	if m.signature() == nil {
		return fmt.Errorf("%s from %q: sig is required", f.name, short(m.signer()))
	}
	// A key that verifies but belongs to another node would let one node speak for another.
	if pub.MLDSA65 == nil {
		return fmt.Errorf("%s from %q: no key to verify it with", f.name, short(m.signer()))
	}
	if id := pub.ID(identity.NodePrefix); id != m.signer() {
		return fmt.Errorf("%s from %q: the key given is %s's", f.name, short(m.signer()), id)
	}
	body, err := m.signedBytes()
	if err != nil {
		return err
	}
	if err := pub.Verify(f.domain, body, *m.signature()); err != nil {
		return fmt.Errorf("%s from %q: %w", f.name, short(m.signer()), err)
	}
	return nil
}

// sha256Hex is the SHA-256 of b in lowercase hex.
func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// domainHash is SHA-256(domain || 0x0A || b) in lowercase hex.
func domainHash(domain string, b []byte) string {
	h := sha256.New()
	h.Write([]byte(domain + "\n"))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// isHash reports whether s is a SHA-256 in lowercase hex, the only spelling allowed.
func isHash(s string) bool {
	return len(s) == 2*sha256.Size && isLowerHex(s)
}

func isLowerHex(s string) bool {
	return strings.Trim(s, "0123456789abcdef") == ""
}

// validNodeID accepts exactly what identity.PublicKey.ID makes with identity.NodePrefix:
// the prefix, '_' and 26 characters of lowercase base32.
func validNodeID(s string) bool {
	rest, ok := strings.CutPrefix(s, identity.NodePrefix+"_")
	return ok && len(rest) == 26 && strings.Trim(rest, "abcdefghijklmnopqrstuvwxyz234567") == ""
}

// validBrainID accepts a brain id (brain.Brain.ID): 1 to MaxIDLen bytes of a-z, 0-9
// and '-', neither starting nor ending with '-'. Panel ids follow the same rule.
func validBrainID(s string) bool {
	return s != "" && len(s) <= MaxIDLen && s[0] != '-' && s[len(s)-1] != '-' &&
		strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == ""
}

// parseTime accepts only the spelling oar.FormatTime makes.
func parseTime(name, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || oar.FormatTime(t) != s {
		return time.Time{}, fmt.Errorf("%s %q is not RFC 3339 UTC as the format requires (e.g. %s)", name, short(s), oar.FormatTime(time.Unix(0, 1)))
	}
	return t, nil
}

// checkLabel requires 1 to max bytes of UTF-8 without control characters or
// surrounding white space: labels end up in audit records, prompts and log lines.
func checkLabel(name, s string, max int, maxName string) error {
	if s == "" || len(s) > max {
		return fmt.Errorf("%s must be 1 to %d bytes (%s)", name, max, maxName)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", name)
	}
	if strings.TrimSpace(s) != s {
		return fmt.Errorf("%s %q begins or ends with white space", name, short(s))
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return fmt.Errorf("%s %q holds a control character", name, short(s))
	}
	return nil
}

// short keeps attacker-controlled text in error messages to a readable length.
func short(s string) string {
	if len(s) > 64 {
		for i := 64; i > 0; i-- {
			if utf8.RuneStart(s[i]) {
				return s[:i] + "…"
			}
		}
	}
	return s
}
