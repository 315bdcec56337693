package succession

import (
	"encoding/json"
	"fmt"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/jcs"
)

// Versions and domains of the events. A signature made for one can never be mistaken for
// another's.
const (
	PresenceVersion   = "role-presence/1"
	SuspicionVersion  = "role-suspicion/1"
	RefutationVersion = "role-refutation/1"
	AcceptanceVersion = "role-acceptance/1"
	RemovalVersion    = "role-removal/1"

	PresenceDomain   = "role-presence/1 presence"     // identity.PrivateKey.Sign domain of a presence
	SuspicionDomain  = "role-suspicion/1 suspicion"   // … of a suspicion
	RefutationDomain = "role-refutation/1 refutation" // … of a refutation
	AcceptanceDomain = "role-acceptance/1 acceptance" // … of an acceptance
	RemovalDomain    = "role-removal/1 removal"       // … of a removal

	// EventHashDomain prefixes (followed by a newline) the hash of an event's bytes.
	EventHashDomain = "role-event/1 hash"
)

// Event kinds. Only append to this list: a published kind never changes meaning.
const (
	KindPresence   = "presence"
	KindSuspicion  = "suspicion"
	KindRefutation = "refutation"
	KindAcceptance = "acceptance"
	KindRemoval    = "removal"
)

// Event is one signed event of the protocol: *Presence, *Suspicion, *Refutation,
// *Acceptance or *Removal, as ParseEvent returns it.
type Event interface {
	Kind() string           // one of the Kind constants
	Bytes() []byte          // canonical encoding, sig included
	Hash() string           // EventHash of Bytes
	Signer() string         // node id whose keys signed it
	Verify(keys Keys) error // checks the signer's signature
	Encode() ([]byte, error)
	scope() (tenant, role string)
	at() int64 // signed time, Unix seconds
}

// EventHash names an event by its bytes: SHA-256(EventHashDomain || 0x0A || b) in
// lowercase hex. Certificates, audit records and RoleState cite events by it.
func EventHash(b []byte) string { return hashOf(EventHashDomain, b) }

// ParseEvent decodes any event by its "v" member, strictly (see the package
// documentation). It does not check the signature: Event.Verify does.
func ParseEvent(b []byte) (Event, error) {
	if len(b) > MaxEventSize {
		return nil, fmt.Errorf("event is %d bytes, more than the limit of %d (MaxEventSize)", len(b), MaxEventSize)
	}
	if !jcs.IsCanonical(b) {
		return nil, fmt.Errorf("event is not in canonical form (RFC 8785)")
	}
	var peek struct {
		V string `json:"v"`
	}
	if err := json.Unmarshal(b, &peek); err != nil {
		return nil, fmt.Errorf("event: %v", err)
	}
	switch peek.V {
	case PresenceVersion:
		return asEvent[Presence](b)
	case SuspicionVersion:
		return asEvent[Suspicion](b)
	case RefutationVersion:
		return asEvent[Refutation](b)
	case AcceptanceVersion:
		return asEvent[Acceptance](b)
	case RemovalVersion:
		return asEvent[Removal](b)
	case CharterVersion:
		return nil, fmt.Errorf("a charter is not an event: pass it as the charter")
	}
	return nil, fmt.Errorf("event v %q is not one of %s, %s, %s, %s, %s", short(peek.V), PresenceVersion, SuspicionVersion, RefutationVersion, AcceptanceVersion, RemovalVersion)
}

// asEvent is parse returning an Event, and a nil one on error.
func asEvent[T any, P interface {
	wire[T]
	Event
}](b []byte) (Event, error) {
	m, err := parse[T, P](b)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Presence is a node's observation that the holder of a role was present: any
// authenticated activity of the holder on the node, or an explicit check-in. Nodes
// publish it coarsely (see PresenceDue): it refutes suspicions made before it.
type Presence struct {
	V      string              `json:"v"`
	Tenant string              `json:"tenant"`
	Role   string              `json:"role"`
	Holder string              `json:"holder"` // principal id seen
	Node   string              `json:"node"`   // node that saw the holder and signs
	Seen   string              `json:"seen"`   // FormatTime: the latest presence the node saw
	Time   string              `json:"time"`   // FormatTime: when the node signed, not before seen
	Sig    *identity.Signature `json:"sig,omitempty"`

	raw        []byte
	hash       string
	seen, time int64
}

// Suspicion is an observer's signed statement that it has seen no presence of the
// holder since Since, made at least the charter's suspect_after later.
type Suspicion struct {
	V       string              `json:"v"`
	Tenant  string              `json:"tenant"`
	Role    string              `json:"role"`
	Charter string              `json:"charter"` // charter hash
	Holder  string              `json:"holder"`  // the charter's holder
	Node    string              `json:"node"`    // the observer, who signs
	Since   string              `json:"since"`   // FormatTime: no presence seen since then
	Time    string              `json:"time"`    // FormatTime: when the observer signed
	Sig     *identity.Signature `json:"sig,omitempty"`

	raw         []byte
	hash        string
	since, time int64
}

// Refutation is the holder's explicit answer to a suspicion (sios role refute):
// present, and refusing the handover. It is recorded and signed by the node the holder
// acted through, and cancels every suspicion made before it.
type Refutation struct {
	V       string              `json:"v"`
	Tenant  string              `json:"tenant"`
	Role    string              `json:"role"`
	Charter string              `json:"charter"`
	Holder  string              `json:"holder"`
	Node    string              `json:"node"`
	Reason  string              `json:"reason"` // may be ""
	Time    string              `json:"time"`
	Sig     *identity.Signature `json:"sig,omitempty"`

	raw  []byte
	hash string
	time int64
}

// Acceptance is a successor's acceptance of the role once it was offered to them, made
// through their node (whose HPKE key then receives the sealed letter's shares).
type Acceptance struct {
	V         string              `json:"v"`
	Tenant    string              `json:"tenant"`
	Role      string              `json:"role"`
	Charter   string              `json:"charter"`
	Successor string              `json:"successor"`
	Node      string              `json:"node"`
	Time      string              `json:"time"`
	Sig       *identity.Signature `json:"sig,omitempty"`

	raw  []byte
	hash string
	time int64
}

// Removal is one admin's signature on the immediate removal of the holder
// (resignation, regulatory removal), made through the admin's node. k removals by
// distinct admins of the charter hand the role over at once.
type Removal struct {
	V       string              `json:"v"`
	Tenant  string              `json:"tenant"`
	Role    string              `json:"role"`
	Charter string              `json:"charter"`
	Holder  string              `json:"holder"`
	Admin   string              `json:"admin"`
	Node    string              `json:"node"`
	Reason  string              `json:"reason"`
	Time    string              `json:"time"`
	Sig     *identity.Signature `json:"sig,omitempty"`

	raw  []byte
	hash string
	time int64
}

func (*Presence) format() format {
	return format{"presence", PresenceVersion, PresenceDomain, MaxEventSize, "MaxEventSize"}
}
func (*Suspicion) format() format {
	return format{"suspicion", SuspicionVersion, SuspicionDomain, MaxEventSize, "MaxEventSize"}
}
func (*Refutation) format() format {
	return format{"refutation", RefutationVersion, RefutationDomain, MaxEventSize, "MaxEventSize"}
}
func (*Acceptance) format() format {
	return format{"acceptance", AcceptanceVersion, AcceptanceDomain, MaxEventSize, "MaxEventSize"}
}
func (*Removal) format() format {
	return format{"removal", RemovalVersion, RemovalDomain, MaxEventSize, "MaxEventSize"}
}

func (e *Presence) sigField() **identity.Signature   { return &e.Sig }
func (e *Suspicion) sigField() **identity.Signature  { return &e.Sig }
func (e *Refutation) sigField() **identity.Signature { return &e.Sig }
func (e *Acceptance) sigField() **identity.Signature { return &e.Sig }
func (e *Removal) sigField() **identity.Signature    { return &e.Sig }

func (e *Presence) signer() string   { return e.Node }
func (e *Suspicion) signer() string  { return e.Node }
func (e *Refutation) signer() string { return e.Node }
func (e *Acceptance) signer() string { return e.Node }
func (e *Removal) signer() string    { return e.Node }

func (e *Presence) setRaw(b []byte)   { e.raw, e.hash = b, EventHash(b) }
func (e *Suspicion) setRaw(b []byte)  { e.raw, e.hash = b, EventHash(b) }
func (e *Refutation) setRaw(b []byte) { e.raw, e.hash = b, EventHash(b) }
func (e *Acceptance) setRaw(b []byte) { e.raw, e.hash = b, EventHash(b) }
func (e *Removal) setRaw(b []byte)    { e.raw, e.hash = b, EventHash(b) }

func (*Presence) Kind() string   { return KindPresence }
func (*Suspicion) Kind() string  { return KindSuspicion }
func (*Refutation) Kind() string { return KindRefutation }
func (*Acceptance) Kind() string { return KindAcceptance }
func (*Removal) Kind() string    { return KindRemoval }

func (e *Presence) Bytes() []byte   { return e.raw }
func (e *Suspicion) Bytes() []byte  { return e.raw }
func (e *Refutation) Bytes() []byte { return e.raw }
func (e *Acceptance) Bytes() []byte { return e.raw }
func (e *Removal) Bytes() []byte    { return e.raw }

func (e *Presence) Hash() string   { return e.hash }
func (e *Suspicion) Hash() string  { return e.hash }
func (e *Refutation) Hash() string { return e.hash }
func (e *Acceptance) Hash() string { return e.hash }
func (e *Removal) Hash() string    { return e.hash }

func (e *Presence) Signer() string   { return e.Node }
func (e *Suspicion) Signer() string  { return e.Node }
func (e *Refutation) Signer() string { return e.Node }
func (e *Acceptance) Signer() string { return e.Node }
func (e *Removal) Signer() string    { return e.Node }

func (e *Presence) Verify(keys Keys) error   { return verify(e, keys) }
func (e *Suspicion) Verify(keys Keys) error  { return verify(e, keys) }
func (e *Refutation) Verify(keys Keys) error { return verify(e, keys) }
func (e *Acceptance) Verify(keys Keys) error { return verify(e, keys) }
func (e *Removal) Verify(keys Keys) error    { return verify(e, keys) }

func (e *Presence) Encode() ([]byte, error)   { return encode(e, e.format()) }
func (e *Suspicion) Encode() ([]byte, error)  { return encode(e, e.format()) }
func (e *Refutation) Encode() ([]byte, error) { return encode(e, e.format()) }
func (e *Acceptance) Encode() ([]byte, error) { return encode(e, e.format()) }
func (e *Removal) Encode() ([]byte, error)    { return encode(e, e.format()) }

func (e *Presence) scope() (string, string)   { return e.Tenant, e.Role }
func (e *Suspicion) scope() (string, string)  { return e.Tenant, e.Role }
func (e *Refutation) scope() (string, string) { return e.Tenant, e.Role }
func (e *Acceptance) scope() (string, string) { return e.Tenant, e.Role }
func (e *Removal) scope() (string, string)    { return e.Tenant, e.Role }

func (e *Presence) at() int64   { return e.time }
func (e *Suspicion) at() int64  { return e.time }
func (e *Refutation) at() int64 { return e.time }
func (e *Acceptance) at() int64 { return e.time }
func (e *Removal) at() int64    { return e.time }

// SignPresence fills V, checks every member, signs with key (that of p.Node) and returns
// the canonical bytes. SignSuspicion, SignRefutation, SignAcceptance and SignRemoval do
// the same for their events.
func SignPresence(key *identity.PrivateKey, p Presence) ([]byte, error) {
	p.V = PresenceVersion
	return sign(key, &p)
}

// SignSuspicion: see SignPresence.
func SignSuspicion(key *identity.PrivateKey, s Suspicion) ([]byte, error) {
	s.V = SuspicionVersion
	return sign(key, &s)
}

// SignRefutation: see SignPresence.
func SignRefutation(key *identity.PrivateKey, r Refutation) ([]byte, error) {
	r.V = RefutationVersion
	return sign(key, &r)
}

// SignAcceptance: see SignPresence.
func SignAcceptance(key *identity.PrivateKey, a Acceptance) ([]byte, error) {
	a.V = AcceptanceVersion
	return sign(key, &a)
}

// SignRemoval: see SignPresence.
func SignRemoval(key *identity.PrivateKey, r Removal) ([]byte, error) {
	r.V = RemovalVersion
	return sign(key, &r)
}

// scopeCheck validates the members every event has: tenant, role and signing node.
func scopeCheck(f format, v, tenant, role, node string) (string, error) {
	if v != f.version {
		return "", fmt.Errorf("%s v is %q, want %q", f.name, short(v), f.version)
	}
	if err := checkID(f.name+" tenant", tenant); err != nil {
		return "", err
	}
	if err := checkID(f.name+" role", role); err != nil {
		return "", err
	}
	if err := checkNode(f.name+" node", node); err != nil {
		return "", err
	}
	return fmt.Sprintf("%s for %s/%s from %s", f.name, tenant, role, node), nil
}

func (e *Presence) validate() error {
	where, err := scopeCheck(e.format(), e.V, e.Tenant, e.Role, e.Node)
	if err != nil {
		return err
	}
	if err := checkID(where+": holder", e.Holder); err != nil {
		return err
	}
	if e.seen, err = parseTime(where+": seen", e.Seen); err != nil {
		return err
	}
	if e.time, err = parseTime(where+": time", e.Time); err != nil {
		return err
	}
	if e.seen > e.time {
		return fmt.Errorf("%s: seen %s is after time %s", where, e.Seen, e.Time)
	}
	return nil
}

func (e *Suspicion) validate() error {
	where, err := scopeCheck(e.format(), e.V, e.Tenant, e.Role, e.Node)
	if err != nil {
		return err
	}
	if err := checkHash(where+": charter", e.Charter); err != nil {
		return err
	}
	if err := checkID(where+": holder", e.Holder); err != nil {
		return err
	}
	if e.since, err = parseTime(where+": since", e.Since); err != nil {
		return err
	}
	if e.time, err = parseTime(where+": time", e.Time); err != nil {
		return err
	}
	if e.since > e.time {
		return fmt.Errorf("%s: since %s is after time %s", where, e.Since, e.Time)
	}
	return nil
}

func (e *Refutation) validate() error {
	where, err := scopeCheck(e.format(), e.V, e.Tenant, e.Role, e.Node)
	if err != nil {
		return err
	}
	if err := checkHash(where+": charter", e.Charter); err != nil {
		return err
	}
	if err := checkID(where+": holder", e.Holder); err != nil {
		return err
	}
	if err := checkText(where+": reason", e.Reason, false, MaxReasonLen, "MaxReasonLen"); err != nil {
		return err
	}
	e.time, err = parseTime(where+": time", e.Time)
	return err
}

func (e *Acceptance) validate() error {
	where, err := scopeCheck(e.format(), e.V, e.Tenant, e.Role, e.Node)
	if err != nil {
		return err
	}
	if err := checkHash(where+": charter", e.Charter); err != nil {
		return err
	}
	if err := checkID(where+": successor", e.Successor); err != nil {
		return err
	}
	e.time, err = parseTime(where+": time", e.Time)
	return err
}

func (e *Removal) validate() error {
	where, err := scopeCheck(e.format(), e.V, e.Tenant, e.Role, e.Node)
	if err != nil {
		return err
	}
	if err := checkHash(where+": charter", e.Charter); err != nil {
		return err
	}
	if err := checkID(where+": holder", e.Holder); err != nil {
		return err
	}
	if err := checkID(where+": admin", e.Admin); err != nil {
		return err
	}
	if err := checkText(where+": reason", e.Reason, true, MaxReasonLen, "MaxReasonLen"); err != nil {
		return err
	}
	e.time, err = parseTime(where+": time", e.Time)
	return err
}

// ParseDocument decodes any document of this package by its "v" member: a *Charter, an
// Event, a *Letter, a *ReleasedShare or a *KEMStatement (a certificate is assembled,
// not carried). It is what a carrier of the documents (a fed/1 record kind) validates a
// body with; each is checked as its own Parse function checks it.
func ParseDocument(b []byte) (any, error) {
	var peek struct {
		V string `json:"v"`
	}
	if err := json.Unmarshal(b, &peek); err != nil {
		return nil, fmt.Errorf("succession document: %v", err)
	}
	switch peek.V {
	case CharterVersion:
		return ParseCharter(b)
	case LetterVersion:
		return ParseLetter(b)
	case ShareVersion:
		return ParseShare(b)
	case KEMVersion:
		return ParseKEM(b)
	}
	return ParseEvent(b)
}
