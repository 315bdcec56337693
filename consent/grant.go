package consent

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// Version and domains of the grant format. A signature or hash made for a grant can
// never be mistaken for one of another format.
const (
	Version    = "consent-grant/1"
	SignDomain = "consent-grant/1 grant" // identity.PrivateKey.Sign domain of a grant
	HashDomain = "consent-grant/1 hash"  // prefix (followed by a newline) of a grant hash
)

// Actions a grant may cover: the policy package's names for them. Only append to this
// list: a published action never changes meaning.
const (
	ActionInvoke     = "invoke"      // send the grantor's data to a named brain
	ActionMemoryRead = "memory.read" // release the grantor's memories about named subjects
)

// Grant is a consent grant. Its JSON form is the published format: Sign makes it,
// Parse reads it.
type Grant struct {
	V        string   `json:"v"`
	ID       string   `json:"id"` // 16 random bytes as 32 lowercase hex digits
	Grantor  Grantor  `json:"grantor"`
	Origin   Origin   `json:"origin"`
	Audience Audience `json:"audience"`
	Scope    Scope    `json:"scope"`
	Purpose  string   `json:"purpose"` // why: 1 to MaxPurposeLen bytes of text
	Issued   string   `json:"issued"`  // oar.FormatTime
	Expires  string   `json:"expires"` // oar.FormatTime; after Issued, within MaxGrantLifetime
	// Uses is how many times the grant may be used, 1 to MaxUses; 0 (absent) means
	// until it expires or is revoked.
	Uses int `json:"uses,omitempty"`
	// Retain says whether the receiver may keep what was released (under its own
	// tenant, with the origin recorded); otherwise it uses it for one request only.
	Retain bool                `json:"retain"`
	Sig    *identity.Signature `json:"sig,omitempty"`

	issued, expires time.Time // set by validate
}

// Grantor is the principal who made the grant, at the origin.
type Grantor struct {
	Principal string       `json:"principal"` // principal id
	Tenant    string       `json:"tenant"`    // the tenant whose data the grant releases
	Clearance policy.Level `json:"clearance"` // the grantor's clearance when it granted
}

// Origin is the node that holds the data and signed the grant.
type Origin struct {
	Node        string `json:"node"`        // node id
	Institution string `json:"institution"` // root id of the institution that enrolled it
}

// Audience is who may use the grant: an institution, and within it optionally one node
// and one principal. A use must match every member present.
type Audience struct {
	Institution string `json:"institution"`         // root id
	Node        string `json:"node,omitempty"`      // node id
	Principal   string `json:"principal,omitempty"` // ID@ROOTID; ROOTID is Institution
}

// Scope is what the grant covers.
type Scope struct {
	Action   string       `json:"action"`             // ActionInvoke or ActionMemoryRead
	Brain    string       `json:"brain,omitempty"`    // ActionInvoke: the brain's id; absent otherwise
	Subjects []string     `json:"subjects,omitempty"` // ActionMemoryRead: sorted, unique; absent otherwise
	Max      policy.Level `json:"max_classification"` // the highest classification covered
}

// IssuedAt is when the grant was made.
func (g *Grant) IssuedAt() time.Time { return g.issued }

// ExpiresAt is when the grant stops being valid.
func (g *Grant) ExpiresAt() time.Time { return g.expires }

// NewID returns a fresh grant id: 16 random bytes in lowercase hex.
func NewID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24 and later)
	return hex.EncodeToString(b[:])
}

// Sign fills V and, when empty, ID, checks every member, signs the grant with key (the
// origin node's, which must be the node Origin names) and returns its canonical bytes.
func Sign(key *identity.PrivateKey, g Grant) ([]byte, error) {
	g.V = Version
	if g.ID == "" {
		g.ID = NewID()
	}
	g.Sig = nil
	if err := g.validate(); err != nil {
		return nil, err
	}
	if id := key.Public().ID(identity.NodePrefix); id != g.Origin.Node {
		return nil, fmt.Errorf("grant origin.node is %s, but the signing key is %s's", g.Origin.Node, id)
	}
	signed, err := g.SignedBytes()
	if err != nil {
		return nil, err
	}
	sig := key.Sign(SignDomain, signed)
	g.Sig = &sig
	return g.Encode()
}

// SignedBytes is the canonical encoding of the grant without sig: what is signed.
func (g *Grant) SignedBytes() ([]byte, error) {
	c := *g
	c.Sig = nil
	return jcs.Marshal(&c)
}

// Encode is the canonical encoding of the grant, sig included, within MaxGrantSize.
func (g *Grant) Encode() ([]byte, error) {
	b, err := jcs.Marshal(g)
	if err != nil {
		return nil, err
	}
	if len(b) > MaxGrantSize {
		return nil, fmt.Errorf("grant is %d bytes, more than the limit of %d (MaxGrantSize)", len(b), MaxGrantSize)
	}
	return b, nil
}

// Parse decodes a grant, requiring that it is at most MaxGrantSize bytes, canonical,
// holds exactly the members of consent-grant/1 (no member unknown, missing, duplicated
// or differently spelt), that every member is valid and that it is signed. It checks
// the form only; Verify checks the signature and the use. Refusals are *Error with
// CodeMalformed.
func Parse(b []byte) (*Grant, error) {
	if len(b) > MaxGrantSize {
		return nil, errorf(CodeMalformed, "grant is %d bytes, more than the limit of %d (MaxGrantSize)", len(b), MaxGrantSize)
	}
	var g Grant
	if err := jcs.Unmarshal(b, &g); err != nil {
		return nil, errorf(CodeMalformed, "grant is not a %s grant: %v", Version, err)
	}
	if err := g.validate(); err != nil {
		return nil, errorf(CodeMalformed, "%v", err)
	}
	if g.Sig == nil {
		return nil, errorf(CodeMalformed, "grant %s: sig is required", g.ID)
	}
	return &g, nil
}

// Hash names a grant by its canonical bytes (sig included), in lowercase hex:
// SHA-256(HashDomain || 0x0A || grant). Audit records cite grants by it.
func Hash(grant []byte) string {
	h := sha256.New()
	h.Write([]byte(HashDomain + "\n"))
	h.Write(grant)
	return hex.EncodeToString(h.Sum(nil))
}

// validate checks every member but sig and sets the parsed times.
func (g *Grant) validate() error {
	if g.V != Version {
		return fmt.Errorf("grant v is %q, want %q", short(g.V), Version)
	}
	if !isHexID(g.ID) {
		return fmt.Errorf("grant id %q is not 32 lowercase hex digits", short(g.ID))
	}
	where := "grant " + g.ID
	if !validPrincipalID(g.Grantor.Principal) {
		return fmt.Errorf("%s: grantor.principal %q is not a principal id (1 to %d letters, digits, '.', '_', '@' or '-', starting with a letter or digit: MaxIDLen)", where, short(g.Grantor.Principal), MaxIDLen)
	}
	if !validPrincipalID(g.Grantor.Tenant) {
		return fmt.Errorf("%s: grantor.tenant %q is not a tenant (1 to %d letters, digits, '.', '_', '@' or '-', starting with a letter or digit: MaxIDLen)", where, short(g.Grantor.Tenant), MaxIDLen)
	}
	if !g.Grantor.Clearance.Valid() {
		return fmt.Errorf("%s: grantor.clearance is not a classification", where)
	}
	if !validKeyID(identity.NodePrefix, g.Origin.Node) {
		return fmt.Errorf("%s: origin.node %q is not a node id (node_ and 26 base32 digits)", where, short(g.Origin.Node))
	}
	if !validKeyID(identity.RootPrefix, g.Origin.Institution) {
		return fmt.Errorf("%s: origin.institution %q is not a root id (root_ and 26 base32 digits)", where, short(g.Origin.Institution))
	}
	if err := g.Audience.validate(where); err != nil {
		return err
	}
	if err := g.Scope.validate(where); err != nil {
		return err
	}
	if err := checkText(where+": purpose", g.Purpose, MaxPurposeLen, "MaxPurposeLen"); err != nil {
		return err
	}
	issued, err := parseTime(where+": issued", g.Issued)
	if err != nil {
		return err
	}
	expires, err := parseTime(where+": expires", g.Expires)
	if err != nil {
		return err
	}
	if !expires.After(issued) {
		return fmt.Errorf("%s: expires %s is not after issued %s", where, g.Expires, g.Issued)
	}
	if d := expires.Sub(issued); d > MaxGrantLifetime {
		return fmt.Errorf("%s: valid for %v, longer than the limit of %v (MaxGrantLifetime)", where, d, MaxGrantLifetime)
	}
	if g.Uses < 0 || g.Uses > MaxUses {
		return fmt.Errorf("%s: uses %d is not 1 to %d (MaxUses), or absent for no count", where, g.Uses, MaxUses)
	}
	g.issued, g.expires = issued, expires
	return nil
}

func (a *Audience) validate(where string) error {
	if !validKeyID(identity.RootPrefix, a.Institution) {
		return fmt.Errorf("%s: audience.institution %q is not a root id (root_ and 26 base32 digits)", where, short(a.Institution))
	}
	if a.Node != "" && !validKeyID(identity.NodePrefix, a.Node) {
		return fmt.Errorf("%s: audience.node %q is not a node id (node_ and 26 base32 digits)", where, short(a.Node))
	}
	if a.Principal != "" {
		id, root, ok := SplitPrincipal(a.Principal)
		if !ok {
			return fmt.Errorf("%s: audience.principal %q is not ID@ROOTID (a principal id, '@', a root id)", where, short(a.Principal))
		}
		if root != a.Institution {
			return fmt.Errorf("%s: audience.principal %s@%s is not of the audience institution %s", where, short(id), root, a.Institution)
		}
	}
	return nil
}

func (s *Scope) validate(where string) error {
	switch s.Action {
	case ActionInvoke:
		if !validBrainID(s.Brain) {
			return fmt.Errorf("%s: scope.brain %q is not a brain id (1 to %d bytes of a-z, 0-9 and '-', not starting or ending with '-': MaxIDLen)", where, short(s.Brain), MaxIDLen)
		}
		if s.Subjects != nil {
			return fmt.Errorf("%s: scope.subjects must be absent when scope.action is %q", where, ActionInvoke)
		}
	case ActionMemoryRead:
		if s.Brain != "" {
			return fmt.Errorf("%s: scope.brain must be absent when scope.action is %q", where, ActionMemoryRead)
		}
		if len(s.Subjects) == 0 || len(s.Subjects) > MaxSubjects {
			return fmt.Errorf("%s: scope.subjects holds %d subjects; a %s grant names 1 to %d (MaxSubjects)", where, len(s.Subjects), ActionMemoryRead, MaxSubjects)
		}
		for i, sub := range s.Subjects {
			if err := checkText(fmt.Sprintf("%s: scope.subjects[%d]", where, i), sub, MaxSubjectLen, "MaxSubjectLen"); err != nil {
				return err
			}
			if i > 0 && s.Subjects[i-1] >= sub {
				return fmt.Errorf("%s: scope.subjects must be sorted (by bytes) without repeats; %q follows %q", where, short(sub), short(s.Subjects[i-1]))
			}
		}
	default:
		return fmt.Errorf("%s: scope.action %q is not %q or %q", where, short(s.Action), ActionInvoke, ActionMemoryRead)
	}
	if !s.Max.Valid() {
		return fmt.Errorf("%s: scope.max_classification is not a classification", where)
	}
	return nil
}

// SplitPrincipal splits "ID@ROOTID" at its last '@' into a principal id and a root id,
// reporting whether both are valid. (Principal ids may themselves hold '@'; root ids
// never do.)
func SplitPrincipal(s string) (id, root string, ok bool) {
	i := strings.LastIndexByte(s, '@')
	if i < 0 {
		return "", "", false
	}
	id, root = s[:i], s[i+1:]
	return id, root, validPrincipalID(id) && validKeyID(identity.RootPrefix, root)
}

// parseTime accepts only the spelling oar.FormatTime makes.
func parseTime(name, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || oar.FormatTime(t) != s {
		return time.Time{}, fmt.Errorf("%s %q is not RFC 3339 UTC as the format requires (e.g. %s)", name, short(s), oar.FormatTime(time.Unix(1767323045, 0)))
	}
	return t, nil
}

// checkText requires 1 to max bytes of UTF-8 without control characters or Unicode
// noncharacters: these strings end up in audit records, log lines and policy
// decisions on another node, and canonical JSON refuses noncharacters.
func checkText(name, s string, max int, maxName string) error {
	if s == "" || len(s) > max {
		return fmt.Errorf("%s must be 1 to %d bytes (%s)", name, max, maxName)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", name)
	}
	for _, c := range s {
		if unicode.IsControl(c) || c >= 0xFDD0 && c <= 0xFDEF || c&0xFFFE == 0xFFFE {
			return fmt.Errorf("%s %q holds a control character or a Unicode noncharacter", name, short(s))
		}
	}
	return nil
}

// isHexID reports whether s is 16 bytes in lowercase hex, the only spelling allowed.
func isHexID(s string) bool {
	if len(s) != 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// validKeyID accepts what identity.PublicKey.ID makes with prefix: prefix, '_', and 26
// lowercase base32 digits (128 bits).
func validKeyID(prefix, s string) bool {
	p := prefix + "_"
	if len(s) != len(p)+26 || s[:len(p)] != p {
		return false
	}
	for i := len(p); i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && (c < '2' || c > '7') {
			return false
		}
	}
	return true
}

// validPrincipalID is the principal store's rule for principal ids and tenants
// (policy.Principals.Add): 1 to MaxIDLen bytes of letters, digits, '.', '_', '@' and
// '-', starting with a letter or digit.
func validPrincipalID(s string) bool {
	if s == "" || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '@' && c != '-') {
			return false
		}
	}
	return true
}

// validBrainID is the brain package's rule: 1 to MaxIDLen bytes of a-z, 0-9 and '-',
// neither starting nor ending with '-'.
func validBrainID(id string) bool {
	if id == "" || len(id) > MaxIDLen || id[0] == '-' || id[len(id)-1] == '-' {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// short keeps attacker-controlled text in error messages to a readable length.
func short(s string) string {
	if len(s) > 64 {
		return strings.ToValidUTF8(s[:64], "") + "…"
	}
	return s
}
