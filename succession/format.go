package succession

import (
	"bytes"
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
)

// Keys finds the signing keys of the institution's nodes: the fleet's verified view
// (each node's identity record, chained to a pinned root). It must be safe for
// concurrent use.
type Keys interface {
	NodeKey(nodeID string) (identity.PublicKey, bool)
}

// KeyMap is Keys over a fixed map from node id to key, for tests and offline tools.
type KeyMap map[string]identity.PublicKey

// NodeKey returns the key of nodeID.
func (m KeyMap) NodeKey(nodeID string) (identity.PublicKey, bool) {
	k, ok := m[nodeID]
	return k, ok
}

// ErrUnknownNode marks a signature by a node that Keys does not know.
var ErrUnknownNode = errors.New("node is not a known node of the institution")

// format is what differs between the signed formats for the shared code below.
type format struct {
	name    string // "charter", "suspicion", … in error messages
	version string // the "v" member
	domain  string // identity.PrivateKey.Sign domain
	max     int
	maxName string
}

// wire is a pointer to one of the signed formats' structs.
type wire[T any] interface {
	*T
	format() format
	validate() error // checks every member but sig
	sigField() **identity.Signature
	signer() string // the node whose key signs
	setRaw([]byte)  // keeps the verified canonical bytes
}

// sign validates m, signs its canonical encoding without sig and returns the encoding
// with sig.
func sign[T any, P wire[T]](key *identity.PrivateKey, m P) ([]byte, error) {
	*m.sigField() = nil
	if err := m.validate(); err != nil {
		return nil, err
	}
	f := m.format()
	if key == nil {
		return nil, fmt.Errorf("%s: no signing key", f.name)
	}
	if id := key.Public().ID(identity.NodePrefix); id != m.signer() {
		return nil, fmt.Errorf("%s names node %q but the key given is %s's", f.name, short(m.signer()), id)
	}
	signed, err := encode(m, f)
	if err != nil {
		return nil, err
	}
	sig := key.Sign(f.domain, signed)
	*m.sigField() = &sig
	b, err := encode(m, f)
	if err != nil {
		return nil, err
	}
	m.setRaw(b)
	return b, nil
}

// parse decodes b strictly (jcs.Unmarshal): at most the format's cap, exactly its own
// canonical form (RFC 8785, which also refuses duplicate member names), and no member
// that is not part of the format (unknown, misspelt, differently cased or missing
// members change the re-encoding); then every member valid, and signed.
func parse[T any, P wire[T]](b []byte) (P, error) {
	m := P(new(T))
	f := m.format()
	if len(b) > f.max {
		return nil, fmt.Errorf("%s is %d bytes, more than the limit of %d (%s)", f.name, len(b), f.max, f.maxName)
	}
	err := jcs.Unmarshal(b, m)
	switch {
	case errors.Is(err, jcs.ErrNotCanonical):
		return nil, fmt.Errorf("%s is not in canonical form (RFC 8785): %v", f.name, err)
	case errors.Is(err, jcs.ErrNotExact):
		// A missing or invalid member explains the difference best.
		if verr := m.validate(); verr != nil {
			return nil, verr
		}
		return nil, fmt.Errorf("%s from %q holds members that are not part of %s (unknown, misspelt, missing, differently cased or spelt another way)", f.name, short(m.signer()), f.version)
	case err != nil:
		return nil, fmt.Errorf("%s: %v", f.name, err)
	}
	if err := m.validate(); err != nil {
		return nil, err
	}
	if *m.sigField() == nil {
		return nil, fmt.Errorf("%s from %q: sig is required", f.name, short(m.signer()))
	}
	m.setRaw(bytes.Clone(b))
	return m, nil
}

// verify checks that the signer is a node keys knows, that the key is that node's, and
// that it signed m.
func verify[T any, P wire[T]](m P, keys Keys) error {
	f := m.format()
	node := m.signer()
	sig := *m.sigField()
	if sig == nil {
		return fmt.Errorf("%s from %q: sig is required", f.name, short(node))
	}
	pub, ok := keys.NodeKey(node)
	if !ok {
		return fmt.Errorf("%s from %q: %w", f.name, short(node), ErrUnknownNode)
	}
	// A key that verifies but belongs to another node would let one node speak for another.
	if pub.MLDSA65 == nil {
		return fmt.Errorf("%s from %q: the key known for it is incomplete", f.name, short(node))
	}
	if id := pub.ID(identity.NodePrefix); id != node {
		return fmt.Errorf("%s from %q: the key known for it is %s's", f.name, short(node), id)
	}
	c := *m
	*P(&c).sigField() = nil
	signed, err := encode(P(&c), f)
	if err != nil {
		return err
	}
	if err := pub.Verify(f.domain, signed, *sig); err != nil {
		return fmt.Errorf("%s from %q: %w", f.name, short(node), err)
	}
	return nil
}

// encode is the canonical (RFC 8785) encoding of v within the format's cap.
func encode(v any, f format) ([]byte, error) {
	b, err := canonical(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", f.name, err)
	}
	if len(b) > f.max {
		return nil, fmt.Errorf("%s is %d bytes, more than the limit of %d (%s)", f.name, len(b), f.max, f.maxName)
	}
	return b, nil
}

func canonical(v any) ([]byte, error) { return jcs.Marshal(v) }

// hashOf is SHA-256(domain || 0x0A || b) in lowercase hex.
func hashOf(domain string, b []byte) string {
	h := sha256.New()
	h.Write([]byte(domain + "\n"))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// FormatTime is the one spelling of a time in every succession format: RFC 3339 UTC
// in whole seconds (2026-01-02T03:04:05Z). Fractions of a second are dropped.
func FormatTime(t time.Time) string {
	return t.UTC().Truncate(time.Second).Format(time.RFC3339)
}

func unixTime(s int64) time.Time { return time.Unix(s, 0).UTC() }

// parseTime accepts only FormatTime's spelling and returns Unix seconds.
func parseTime(name, s string) (int64, error) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil || FormatTime(t) != s {
		return 0, fmt.Errorf("%s %q is not RFC 3339 UTC in whole seconds as the format requires (e.g. 2026-01-02T03:04:05Z)", name, short(s))
	}
	return t.Unix(), nil
}

// checkID applies the policy package's rule for tenants, roles and principal ids:
// 1 to 128 bytes of letters, digits, '.', '_', '@' and '-', starting with a letter or
// digit.
func checkID(name, s string) error {
	ok := s != "" && len(s) <= MaxIDLen && isAlnum(s[0])
	for i := 1; ok && i < len(s); i++ {
		c := s[i]
		ok = isAlnum(c) || c == '.' || c == '_' || c == '@' || c == '-'
	}
	if !ok {
		return fmt.Errorf("%s %q must be 1 to %d bytes of letters, digits, '.', '_', '@' or '-', starting with a letter or digit (MaxIDLen)", name, short(s), MaxIDLen)
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// checkNode accepts what identity.PublicKey.ID makes with prefix "node".
func checkNode(name, s string) error {
	const p = identity.NodePrefix + "_"
	ok := len(s) > len(p) && len(s) <= MaxIDLen && strings.HasPrefix(s, p)
	for i := len(p); ok && i < len(s); i++ {
		c := s[i]
		ok = c >= 'a' && c <= 'z' || c >= '2' && c <= '7'
	}
	if !ok {
		return fmt.Errorf("%s %q is not a node id (node_ + lowercase base32, at most %d bytes: MaxIDLen)", name, short(s), MaxIDLen)
	}
	return nil
}

// checkHash requires a SHA-256 in lowercase hex, the only spelling allowed.
func checkHash(name, s string) error {
	if len(s) != 2*sha256.Size || !isLowerHex(s) {
		return fmt.Errorf("%s %q is not a SHA-256 in 64 lowercase hex digits", name, short(s))
	}
	return nil
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// checkText requires at most max bytes (and at least one when required) of UTF-8
// without control characters: reasons end up in audit records and on terminals.
func checkText(name, s string, required bool, max int, maxName string) error {
	if required && s == "" {
		return fmt.Errorf("%s is required", name)
	}
	if len(s) > max {
		return fmt.Errorf("%s is %d bytes, more than the limit of %d (%s)", name, len(s), max, maxName)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", name)
	}
	for _, c := range s {
		if unicode.IsControl(c) {
			return fmt.Errorf("%s %q holds a control character", name, short(s))
		}
	}
	return nil
}

// short keeps attacker-controlled text in error messages to a readable length.
func short(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
