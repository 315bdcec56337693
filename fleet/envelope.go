package fleet

import (
	"bytes"
	"container/heap"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
)

// Remote calls: an origin node asks a target node to run a brain by sending an Envelope,
// and the target answers with a Reply. Both are canonical JSON (RFC 8785) with exactly
// their own members, signed by the sending node; the payload itself travels beside them
// and is named by its SHA-256, so that neither the envelope nor the audit trail holds it.

// Versions and domains of the remote-call formats. A signature or hash made for one
// can never be mistaken for another.
const (
	EnvelopeVersion = "fed-call/1"
	ReplyVersion    = "fed-reply/1"
	EnvelopeDomain  = "fed-call/1 envelope" // identity.PrivateKey.Sign domain of an envelope
	ReplyDomain     = "fed-reply/1 reply"   // identity.PrivateKey.Sign domain of a reply
	CallHashDomain  = "fed-call/1 hash"     // prefix (followed by a newline) of a call hash

	// fed-call/2 is fed-call/1 with one more member, consent: the consent grant
	// (docs/consent.md) under which the call's data crosses to another institution. An
	// origin sends it only with a grant, so that nodes that do not know grants keep
	// working with each other, and a target that does not know it refuses it.
	EnvelopeVersion2 = "fed-call/2"
	EnvelopeDomain2  = "fed-call/2 envelope"
	CallHashDomain2  = "fed-call/2 hash"
)

// Reply statuses. Only append to this list: a published status never changes meaning.
const (
	ReplyOK     = "ok"     // the brain ran; output_digest names its output
	ReplyDenied = "denied" // the target refused the call (policy, clearance, rate)
	ReplyError  = "error"  // the target accepted the call but could not complete it
)

// Envelope is a signed request from an origin node to a target node to run a brain.
type Envelope struct {
	V              string `json:"v"`
	Nonce          string `json:"nonce"`          // 32 lowercase hex digits (16 random bytes)
	Origin         string `json:"origin"`         // node id of the sender, who signs
	Target         string `json:"target"`         // node id of the node asked
	Issued         string `json:"issued"`         // oar.FormatTime
	Expires        string `json:"expires"`        // oar.FormatTime, after Issued, within MaxEnvelopeLifetime
	Principal      string `json:"principal"`      // principal id at the origin
	Tenant         string `json:"tenant"`         // the principal's tenant
	Clearance      string `json:"clearance"`      // the principal's clearance (oar.Classifications)
	Classification string `json:"classification"` // classification of the data (oar.Classifications)
	Brain          string `json:"brain"`          // brain id at the target
	PayloadDigest  string `json:"payload_digest"` // SHA-256 of the payload bytes, lowercase hex
	// Consent is the consent grant the call is made under, embedded byte for byte as a
	// canonical JSON object of at most MaxConsentSize bytes (fed-call/2 only). This
	// package treats it as opaque: the target parses and verifies it (package consent).
	Consent json.RawMessage     `json:"consent,omitempty"`
	Sig     *identity.Signature `json:"sig,omitempty"`
}

// Reply is the target's signed answer to an envelope.
type Reply struct {
	V            string              `json:"v"`
	Call         string              `json:"call"`      // CallHash of the envelope answered
	Responder    string              `json:"responder"` // node id of the target, who signs
	Time         string              `json:"time"`      // oar.FormatTime
	Status       string              `json:"status"`    // ReplyOK, ReplyDenied or ReplyError
	Decision     *oar.Decision       `json:"decision,omitempty"`
	Error        string              `json:"error,omitempty"`         // machine code such as "policy_denied"; required unless ok
	Message      string              `json:"message,omitempty"`       // human text, at most MaxReplyMessage bytes
	OutputDigest string              `json:"output_digest,omitempty"` // SHA-256 of the output payload; required when ok, only then
	Record       string              `json:"record,omitempty"`        // record hash of the responder's audit record of the call
	Sig          *identity.Signature `json:"sig,omitempty"`
}

// SealEnvelope fills V (fed-call/2 when the envelope carries a consent grant, else
// fed-call/1) and, when empty, Nonce, checks every member, signs the envelope with key
// (the origin's) and returns its canonical bytes.
func SealEnvelope(key *identity.PrivateKey, e Envelope) ([]byte, error) {
	e.V = EnvelopeVersion
	if e.Consent != nil {
		e.V = EnvelopeVersion2
	}
	if e.Nonce == "" {
		var n [16]byte
		rand.Read(n[:]) // never fails (crypto/rand, Go 1.24 and later)
		e.Nonce = hex.EncodeToString(n[:])
	}
	e.Sig = nil
	if err := e.validate(); err != nil {
		return nil, err
	}
	signed, err := e.signedBytes()
	if err != nil {
		return nil, err
	}
	sig := key.Sign(e.format().domain, signed)
	e.Sig = &sig
	return encodeCall(&e)
}

// SealReply fills V, checks every member, signs the reply with key (the responder's) and
// returns its canonical bytes.
func SealReply(key *identity.PrivateKey, r Reply) ([]byte, error) {
	r.V = ReplyVersion
	r.Sig = nil
	if err := r.validate(); err != nil {
		return nil, err
	}
	signed, err := r.signedBytes()
	if err != nil {
		return nil, err
	}
	sig := key.Sign(ReplyDomain, signed)
	r.Sig = &sig
	return encodeCall(&r)
}

// ParseEnvelope decodes an envelope, requiring that its bytes are canonical, that it
// holds exactly the members of its version, fed-call/1 or fed-call/2 (checked by
// re-encoding what was decoded), that every member is valid and that it is signed. It checks the form only: the signature is
// checked by Verify, freshness and replay by ReplayGuard.Check.
func ParseEnvelope(b []byte) (*Envelope, error) {
	var e Envelope
	if err := parseCall(b, &e); err != nil {
		return nil, err
	}
	return &e, nil
}

// ParseReply decodes a reply with ParseEnvelope's rules for fed-reply/1.
func ParseReply(b []byte) (*Reply, error) {
	var r Reply
	if err := parseCall(b, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// Verify checks that pub is the origin's key and that it signed the envelope.
func (e *Envelope) Verify(pub identity.PublicKey) error { return verifyCall(e, pub) }

// Verify checks that pub is the responder's key and that it signed the reply. The caller
// also checks that Call is the CallHash of the envelope it sent.
func (r *Reply) Verify(pub identity.PublicKey) error { return verifyCall(r, pub) }

// CallHash names an envelope by its canonical bytes (sig included), in lowercase hex:
// SHA-256(CallHashDomain || 0x0A || envelope) for fed-call/1, under CallHashDomain2 for
// fed-call/2. Replies and audit records cite it. The version is read from the bytes: in
// a canonical envelope "v" is the last member (members are sorted, and no member name
// sorts after it), so a fed-call/2 envelope ends with its version.
func CallHash(envelope []byte) string {
	domain := CallHashDomain
	if bytes.HasSuffix(envelope, []byte(`"v":"`+EnvelopeVersion2+`"}`)) {
		domain = CallHashDomain2
	}
	h := sha256.New()
	h.Write([]byte(domain + "\n"))
	h.Write(envelope)
	return hex.EncodeToString(h.Sum(nil))
}

// callFormat is what differs between the two formats for the shared code below.
type callFormat struct {
	name, version string
	domain        string
	max           int
	maxName       string
}

// callMessage is *Envelope or *Reply.
type callMessage interface {
	format() callFormat
	validate() error
	signature() *identity.Signature
	signer() string               // node id whose key signs the message
	signedBytes() ([]byte, error) // canonical encoding without sig
}

// format is the envelope's version's. Before an envelope is decoded (V empty) it is
// fed-call/2's, the larger: the decoded envelope is then held to its own version's cap
// when it is re-encoded.
func (e *Envelope) format() callFormat {
	if e.V == EnvelopeVersion {
		return callFormat{"envelope", EnvelopeVersion, EnvelopeDomain, MaxEnvelopeSize, "MaxEnvelopeSize"}
	}
	return callFormat{"envelope", EnvelopeVersion2, EnvelopeDomain2, MaxEnvelopeSize2, "MaxEnvelopeSize2"}
}

func (*Reply) format() callFormat {
	return callFormat{"reply", ReplyVersion, ReplyDomain, MaxReplySize, "MaxReplySize"}
}

func (e *Envelope) signature() *identity.Signature { return e.Sig }
func (r *Reply) signature() *identity.Signature    { return r.Sig }
func (e *Envelope) signer() string                 { return e.Origin }
func (r *Reply) signer() string                    { return r.Responder }

func (e *Envelope) signedBytes() ([]byte, error) {
	c := *e
	c.Sig = nil
	return canonical(&c)
}

func (r *Reply) signedBytes() ([]byte, error) {
	c := *r
	c.Sig = nil
	return canonical(&c)
}

// encodeCall is the canonical encoding of m within its format's size cap.
func encodeCall(m callMessage) ([]byte, error) {
	f := m.format()
	b, err := canonical(m)
	if err != nil {
		return nil, err
	}
	if len(b) > f.max {
		return nil, fmt.Errorf("%s is %d bytes, more than the limit of %d (%s)", f.name, len(b), f.max, f.maxName)
	}
	return b, nil
}

// parseCall is Parse's rule for records applied to m's format.
func parseCall(b []byte, m callMessage) error {
	f := m.format()
	if len(b) > f.max {
		return fmt.Errorf("%s is %d bytes, more than the limit of %d (%s)", f.name, len(b), f.max, f.maxName)
	}
	if !jcs.IsCanonical(b) {
		return fmt.Errorf("%s is not in canonical form (RFC 8785)", f.name)
	}
	// Decoded strictly (jcs.DecodeStrict) so that an unknown or differently cased
	// member is named; the re-encoding below then refuses a missing or null one.
	if err := jcs.DecodeStrict(b, m); err != nil {
		return fmt.Errorf("%s: %v", f.name, strings.TrimPrefix(err.Error(), "jcs: "))
	}
	f = m.format() // the version decoded
	if err := m.validate(); err != nil {
		return err
	}
	if m.signature() == nil {
		return fmt.Errorf("%s from %q: sig is required", f.name, m.signer())
	}
	again, err := encodeCall(m)
	if err != nil {
		return err
	}
	if !bytes.Equal(again, b) {
		return fmt.Errorf("%s from %q holds members that are not part of %s (unknown, misspelt, missing or differently cased)", f.name, m.signer(), f.version)
	}
	return nil
}

func verifyCall(m callMessage, pub identity.PublicKey) error {
	f := m.format()
	if m.signature() == nil {
		return fmt.Errorf("%s from %q: sig is required", f.name, short(m.signer()))
	}
	// A key that verifies but belongs to another node would let one node speak for another.
	if pub.MLDSA65 != nil {
		if id := pub.ID(identity.NodePrefix); id != m.signer() {
			return fmt.Errorf("%s from %q: the key given is %s's", f.name, short(m.signer()), id)
		}
	}
	signed, err := m.signedBytes()
	if err != nil {
		return err
	}
	if err := pub.Verify(f.domain, signed, *m.signature()); err != nil {
		return fmt.Errorf("%s from %q: %w", f.name, short(m.signer()), err)
	}
	return nil
}

func (e *Envelope) validate() error {
	switch e.V {
	case EnvelopeVersion:
		if e.Consent != nil {
			return fmt.Errorf("envelope v is %q, which has no consent member: an envelope carrying a grant is %q", EnvelopeVersion, EnvelopeVersion2)
		}
	case EnvelopeVersion2:
		if err := checkConsent(e.Consent); err != nil {
			return err
		}
	default:
		return fmt.Errorf("envelope v is %q, want %q or %q", short(e.V), EnvelopeVersion, EnvelopeVersion2)
	}
	if !isNonce(e.Nonce) {
		return fmt.Errorf("envelope nonce %q is not 32 lowercase hex digits", short(e.Nonce))
	}
	for _, f := range []struct{ name, val string }{{"origin", e.Origin}, {"target", e.Target}} {
		if !validNodeID(f.val) {
			return fmt.Errorf("envelope %s %q is not a node id (node_ + base32, at most %d bytes: MaxIDLen)", f.name, short(f.val), MaxIDLen)
		}
	}
	issued, err := parseCallTime("envelope issued", e.Issued)
	if err != nil {
		return err
	}
	expires, err := parseCallTime("envelope expires", e.Expires)
	if err != nil {
		return err
	}
	if !expires.After(issued) {
		return fmt.Errorf("envelope expires %s is not after issued %s", e.Expires, e.Issued)
	}
	// Checked here as well as by ReplayGuard so that a sender learns it before sending.
	if d := expires.Sub(issued); d > MaxEnvelopeLifetime {
		return fmt.Errorf("envelope is valid for %v, longer than the limit of %v (MaxEnvelopeLifetime)", d, MaxEnvelopeLifetime)
	}
	if err := checkText("envelope principal", e.Principal, MaxIDLen, "MaxIDLen"); err != nil {
		return err
	}
	if err := checkText("envelope tenant", e.Tenant, MaxIDLen, "MaxIDLen"); err != nil {
		return err
	}
	if err := checkClass("envelope clearance", e.Clearance); err != nil {
		return err
	}
	if err := checkClass("envelope classification", e.Classification); err != nil {
		return err
	}
	if !validBrainID(e.Brain) {
		return fmt.Errorf("envelope brain %q is not 1 to %d bytes of a-z, 0-9 and '-' (MaxIDLen)", short(e.Brain), MaxIDLen)
	}
	if !isHash(e.PayloadDigest) {
		return fmt.Errorf("envelope payload_digest %q is not a SHA-256 in 64 lowercase hex digits", short(e.PayloadDigest))
	}
	return nil
}

// checkConsent requires a fed-call/2 envelope's consent: a canonical JSON object of at
// most MaxConsentSize bytes. What it says is for the target to check (package consent).
func checkConsent(c json.RawMessage) error {
	switch {
	case len(c) == 0:
		return fmt.Errorf("envelope consent is required when v is %q", EnvelopeVersion2)
	case len(c) > MaxConsentSize:
		return fmt.Errorf("envelope consent is %d bytes, more than the limit of %d (MaxConsentSize)", len(c), MaxConsentSize)
	case c[0] != '{' || !jcs.IsCanonical(c):
		return fmt.Errorf("envelope consent is not a JSON object in canonical form (RFC 8785)")
	}
	return nil
}

// validate checks every member but sig. Status and the optional members must agree:
// ok carries an output_digest and no error, and no deny decision; denied and error carry
// an error code and no output_digest. A denied reply may carry an allow decision: policy
// allowed the call but a later check (clearance, egress) refused it.
func (r *Reply) validate() error {
	if r.V != ReplyVersion {
		return fmt.Errorf("reply v is %q, want %q", short(r.V), ReplyVersion)
	}
	if !isHash(r.Call) {
		return fmt.Errorf("reply call %q is not a call hash (64 lowercase hex digits)", short(r.Call))
	}
	if !validNodeID(r.Responder) {
		return fmt.Errorf("reply responder %q is not a node id (node_ + base32, at most %d bytes: MaxIDLen)", short(r.Responder), MaxIDLen)
	}
	if _, err := parseCallTime("reply time", r.Time); err != nil {
		return err
	}
	switch r.Status {
	case ReplyOK:
		if r.Error != "" {
			return fmt.Errorf("reply error must be \"\" when status is %q", ReplyOK)
		}
		if !isHash(r.OutputDigest) {
			return fmt.Errorf("reply output_digest %q is not a SHA-256 in 64 lowercase hex digits (required when status is %q)", short(r.OutputDigest), ReplyOK)
		}
	case ReplyDenied, ReplyError:
		if !validCode(r.Error) {
			return fmt.Errorf("reply error %q is not 1 to %d bytes of a-z, 0-9, '_', '-' and '.' (MaxIDLen; required when status is %q)", short(r.Error), MaxIDLen, r.Status)
		}
		if r.OutputDigest != "" {
			return fmt.Errorf("reply output_digest must be \"\" when status is %q", r.Status)
		}
	default:
		return fmt.Errorf("reply status %q is not %q, %q or %q", short(r.Status), ReplyOK, ReplyDenied, ReplyError)
	}
	if d := r.Decision; d != nil {
		if d.Effect != "allow" && d.Effect != "deny" {
			return fmt.Errorf("reply decision.effect %q must be allow or deny", short(d.Effect))
		}
		if d.Effect == "deny" && r.Status == ReplyOK {
			return fmt.Errorf("reply decision.effect %q contradicts status %q", d.Effect, r.Status)
		}
		for i, p := range d.Policies {
			if err := checkText(fmt.Sprintf("reply decision.policies[%d]", i), p, oar.MaxFieldLen, "oar.MaxFieldLen"); err != nil {
				return err
			}
		}
	}
	if len(r.Message) > MaxReplyMessage {
		return fmt.Errorf("reply message is %d bytes, more than the limit of %d (MaxReplyMessage)", len(r.Message), MaxReplyMessage)
	}
	if !utf8.ValidString(r.Message) {
		return fmt.Errorf("reply message is not valid UTF-8")
	}
	if r.Record != "" && !isHash(r.Record) {
		return fmt.Errorf("reply record %q is not a record hash (64 lowercase hex digits)", short(r.Record))
	}
	return nil
}

// parseCallTime accepts only the spelling oar.FormatTime makes, as Record.validate does.
func parseCallTime(name, s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || oar.FormatTime(t) != s {
		return time.Time{}, fmt.Errorf("%s %q is not RFC 3339 UTC as the format requires (e.g. %s)", name, short(s), oar.FormatTime(time.Unix(0, 1)))
	}
	return t, nil
}

// checkText requires 1 to max bytes of UTF-8 without control characters: these names end
// up in audit records and log lines on another node.
func checkText(name, s string, max int, maxName string) error {
	if s == "" || len(s) > max {
		return fmt.Errorf("%s must be 1 to %d bytes (%s)", name, max, maxName)
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

// isNonce reports whether s is 16 bytes in lowercase hex, the only spelling allowed.
func isNonce(s string) bool {
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

// validCode accepts a machine-readable error code: 1 to MaxIDLen bytes of a-z, 0-9, '_',
// '-' and '.', so that callers can branch on it and nothing else rides along.
func validCode(s string) bool {
	if s == "" || len(s) > MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// Errors of ReplayGuard.Check that callers branch on.
var (
	ErrExpired    = errors.New("envelope has expired")
	ErrReplayed   = errors.New("envelope nonce was already used")
	ErrNotForUs   = errors.New("envelope is addressed to another node")
	ErrReplayFull = errors.New("too many live envelopes (MaxNonces)")
	// ErrBeforeStart marks an envelope issued before the guard began: an earlier run of
	// the node may have accepted it, and that run's nonces are not kept.
	ErrBeforeStart = errors.New("envelope was issued before this node started")
)

// ReplayGuard accepts each envelope once. It remembers every nonce it accepted until that
// envelope expires, after which the envelope is refused as expired anyway; so memory is
// bounded by the calls of the last MaxEnvelopeLifetime + MaxClockSkew, and by MaxNonces.
// It is safe for concurrent use. Make one with NewReplayGuard.
type ReplayGuard struct {
	start time.Time // envelopes issued before it are refused (ErrBeforeStart)
	mu    sync.Mutex
	seen  map[nonceKey]time.Time // guarded by mu; expiry of each live nonce
	queue expiryQueue            // guarded by mu; the same nonces, soonest expiry first
	max   int                    // MaxNonces; tests lower it
}

// nonceKey scopes a nonce to its origin: origins pick nonces independently.
type nonceKey struct{ origin, nonce string }

// NewReplayGuard returns an empty guard that refuses envelopes issued before start.
// Nonces are held in memory only: a node that restarts refuses every envelope issued
// before it started (so none accepted by its previous run can be replayed to it), and
// an origin retries with a fresh one.
func NewReplayGuard(start time.Time) *ReplayGuard {
	return &ReplayGuard{start: start, seen: make(map[nonceKey]time.Time), max: MaxNonces}
}

// Check accepts e if it is addressed to self, has not expired at now, was issued no more
// than MaxClockSkew after now, is valid for no longer than MaxEnvelopeLifetime, and its
// nonce has not been accepted from the same origin before (while still live). Refusals
// wrap ErrNotForUs, ErrExpired, ErrReplayed or ErrReplayFull where one applies. now
// should not go backwards between calls. Check does not verify the signature: do that
// first, so that a forged envelope cannot use up a nonce.
func (g *ReplayGuard) Check(e *Envelope, self string, now time.Time) error {
	if e.Target != self {
		return fmt.Errorf("%w: target is %q, this node is %q", ErrNotForUs, short(e.Target), self)
	}
	issued, err := parseCallTime("envelope issued", e.Issued)
	if err != nil {
		return err
	}
	expires, err := parseCallTime("envelope expires", e.Expires)
	if err != nil {
		return err
	}
	if !expires.After(now) {
		return fmt.Errorf("%w: at %s (now %s)", ErrExpired, e.Expires, oar.FormatTime(now))
	}
	if issued.Sub(now) > MaxClockSkew {
		return fmt.Errorf("envelope was issued at %s, more than %v (MaxClockSkew) after this node's time %s", e.Issued, MaxClockSkew, oar.FormatTime(now))
	}
	if d := expires.Sub(issued); d > MaxEnvelopeLifetime {
		return fmt.Errorf("envelope is valid for %v, longer than the limit of %v (MaxEnvelopeLifetime)", d, MaxEnvelopeLifetime)
	}
	if issued.Before(g.start) {
		return fmt.Errorf("%w: issued %s, node started %s", ErrBeforeStart, e.Issued, oar.FormatTime(g.start))
	}
	k := nonceKey{e.Origin, e.Nonce}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.dropExpiredLocked(now)
	if until, ok := g.seen[k]; ok {
		return fmt.Errorf("%w: nonce %s from %s is held until %s", ErrReplayed, short(e.Nonce), short(e.Origin), oar.FormatTime(until))
	}
	// Refuse rather than forget a live nonce: forgetting would reopen it to replay.
	if len(g.seen) >= g.max {
		return fmt.Errorf("%w: %d held", ErrReplayFull, len(g.seen))
	}
	g.seen[k] = expires
	heap.Push(&g.queue, expiring{k, expires})
	return nil
}

// dropExpiredLocked forgets the nonces of envelopes that have expired at now.
func (g *ReplayGuard) dropExpiredLocked(now time.Time) {
	for len(g.queue) > 0 && !g.queue[0].expires.After(now) {
		x := heap.Pop(&g.queue).(expiring)
		delete(g.seen, x.key)
	}
}

type expiring struct {
	key     nonceKey
	expires time.Time
}

// expiryQueue is a min-heap by expiry, so dropping expired nonces costs O(log n) each
// instead of a scan of every live one.
type expiryQueue []expiring

func (q expiryQueue) Len() int           { return len(q) }
func (q expiryQueue) Less(i, j int) bool { return q[i].expires.Before(q[j].expires) }
func (q expiryQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *expiryQueue) Push(x any)        { *q = append(*q, x.(expiring)) }
func (q *expiryQueue) Pop() any {
	old := *q
	x := old[len(old)-1]
	old[len(old)-1] = expiring{}
	*q = old[:len(old)-1]
	return x
}
