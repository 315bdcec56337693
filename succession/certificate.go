package succession

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/sios-project/sios/jcs"
)

// Version and hash prefix of the handover certificate.
const (
	CertificateVersion    = "role-certificate/1"
	CertificateHashDomain = "role-certificate/1 hash" // prefix (followed by a newline) of a certificate hash
)

// Bases of a certificate. Only append to this list.
const (
	BasisSuspicion = "suspicion" // k observers suspected and the wait passed without presence
	BasisRemoval   = "removal"   // k admins removed the holder
)

// Certificate is the evidence that a role passed from its holder: exactly k suspicions
// by k distinct observers, or k removals by k distinct admins, in canonical order. It
// has no signature of its own: it is made only of signed events, assembled the same
// way by every node that holds the same events (State), so that every node holds the
// same bytes and anyone can check them offline (Verify).
type Certificate struct {
	V         string            `json:"v"`
	Basis     string            `json:"basis"` // BasisSuspicion or BasisRemoval
	Tenant    string            `json:"tenant"`
	Role      string            `json:"role"`
	Charter   string            `json:"charter"`   // charter hash
	From      string            `json:"from"`      // the charter's holder
	To        string            `json:"to"`        // the charter's first successor
	Effective string            `json:"effective"` // FormatTime: when the role passed
	Evidence  []json.RawMessage `json:"evidence"`  // the k events, each exactly as signed

	raw       []byte
	events    []Event
	effective int64
}

// Bytes is the certificate's canonical encoding.
func (c *Certificate) Bytes() []byte { return c.raw }

// Hash names the certificate: SHA-256(CertificateHashDomain || 0x0A || Bytes()) in
// lowercase hex. Audit records and released letter shares cite it.
func (c *Certificate) Hash() string { return hashOf(CertificateHashDomain, c.raw) }

// Events are the parsed evidence, in order.
func (c *Certificate) Events() []Event { return c.events }

// Encode is the canonical encoding of the certificate's members as they are now.
func (c *Certificate) Encode() ([]byte, error) { return encodeCertificate(c) }

func encodeCertificate(c *Certificate) ([]byte, error) {
	b, err := canonical(c)
	if err != nil {
		return nil, fmt.Errorf("certificate: %v", err)
	}
	if len(b) > MaxCertificateSize {
		return nil, fmt.Errorf("certificate is %d bytes, more than the limit of %d (MaxCertificateSize)", len(b), MaxCertificateSize)
	}
	return b, nil
}

// ParseCertificate decodes a certificate strictly, and each of its events with
// ParseEvent. It checks the form only: Verify checks it against the charter.
func ParseCertificate(b []byte) (*Certificate, error) {
	if len(b) > MaxCertificateSize {
		return nil, fmt.Errorf("certificate is %d bytes, more than the limit of %d (MaxCertificateSize)", len(b), MaxCertificateSize)
	}
	var c Certificate
	err := jcs.Unmarshal(b, &c)
	switch {
	case errors.Is(err, jcs.ErrNotCanonical):
		return nil, fmt.Errorf("certificate is not in canonical form (RFC 8785): %v", err)
	case errors.Is(err, jcs.ErrNotExact):
		if verr := c.validate(); verr != nil {
			return nil, verr
		}
		return nil, fmt.Errorf("certificate holds members that are not part of %s (unknown, misspelt, missing or differently cased)", CertificateVersion)
	case err != nil:
		return nil, fmt.Errorf("certificate: %v", err)
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	c.raw = bytes.Clone(b)
	return &c, nil
}

func (c *Certificate) validate() error {
	if c.V != CertificateVersion {
		return fmt.Errorf("certificate v is %q, want %q", short(c.V), CertificateVersion)
	}
	want := KindSuspicion
	switch c.Basis {
	case BasisSuspicion:
	case BasisRemoval:
		want = KindRemoval
	default:
		return fmt.Errorf("certificate basis %q is not %q or %q", short(c.Basis), BasisSuspicion, BasisRemoval)
	}
	for _, f := range []struct{ name, v string }{{"tenant", c.Tenant}, {"role", c.Role}, {"from", c.From}, {"to", c.To}} {
		if err := checkID("certificate "+f.name, f.v); err != nil {
			return err
		}
	}
	if err := checkHash("certificate charter", c.Charter); err != nil {
		return err
	}
	var err error
	if c.effective, err = parseTime("certificate effective", c.Effective); err != nil {
		return err
	}
	if max := max(MaxObservers, MaxAdmins); len(c.Evidence) < 2 || len(c.Evidence) > max {
		return fmt.Errorf("certificate holds %d events; k is 2 to %d (MaxObservers, MaxAdmins)", len(c.Evidence), max)
	}
	c.events = make([]Event, len(c.Evidence))
	for i, raw := range c.Evidence {
		e, err := ParseEvent(raw)
		if err != nil {
			return fmt.Errorf("certificate evidence[%d]: %v", i, err)
		}
		if e.Kind() != want {
			return fmt.Errorf("certificate evidence[%d] is a %s; a %s certificate holds only %ss", i, e.Kind(), c.Basis, want)
		}
		c.events[i] = e
	}
	return nil
}

// Verify checks the certificate against the charter it names: the charter's tenant,
// role, holder and first successor; exactly k events, each valid for the charter and
// signed by its node (keys), from k distinct observers (suspicions) or k distinct
// admins (removals), in canonical order (time, then observer node or admin); and the
// effective time, which is the latest event's time plus the charter's wait
// (suspicions) or the latest event's time (removals).
//
// It cannot check what only the full set of events shows: that no presence cancelled
// the suspicions before the effective time, and that these are the k earliest. State
// checks both against the events a node holds.
func (c *Certificate) Verify(ch *Charter, keys Keys) error {
	if c.Charter != ch.Hash() {
		return fmt.Errorf("certificate is for charter %s, not %s", c.Charter, ch.Hash())
	}
	if c.Tenant != ch.Tenant || c.Role != ch.Name {
		return fmt.Errorf("certificate is for role %s/%s, the charter is %s/%s", c.Tenant, c.Role, ch.Tenant, ch.Name)
	}
	if c.From != ch.Holder || c.To != ch.Successors[0] {
		return fmt.Errorf("certificate moves the role from %q to %q; the charter names holder %q and first successor %q", c.From, c.To, ch.Holder, ch.Successors[0])
	}
	if len(c.events) != ch.K {
		return fmt.Errorf("certificate holds %d events; the charter's k is %d", len(c.events), ch.K)
	}
	var last int64
	for i, e := range c.events {
		if err := ch.check(e); err != nil {
			return fmt.Errorf("certificate evidence[%d]: %v", i, err)
		}
		if err := e.Verify(keys); err != nil {
			return fmt.Errorf("certificate evidence[%d]: %v", i, err)
		}
		if i > 0 && compareEvidence(c.events[i-1], e) >= 0 {
			return fmt.Errorf("certificate evidence[%d] is out of order (by time, then observer node or admin)", i)
		}
		last = max(last, e.at())
	}
	// Distinct parties: ordering by (time, party) does not by itself exclude one party
	// at two times.
	parties := map[string]bool{}
	for i, e := range c.events {
		if parties[evidenceParty(e)] {
			return fmt.Errorf("certificate evidence[%d] is from %s again: k must be distinct", i, evidenceParty(e))
		}
		parties[evidenceParty(e)] = true
	}
	want := last
	if c.Basis == BasisSuspicion {
		want += int64(ch.Wait)
	}
	if c.effective != want {
		return fmt.Errorf("certificate effective %s is not %s", c.Effective, FormatTime(unixTime(want)))
	}
	return nil
}

// evidenceParty is whose agreement an event counts as: the observer node of a
// suspicion, the admin of a removal.
func evidenceParty(e Event) string {
	if r, ok := e.(*Removal); ok {
		return r.Admin
	}
	return e.Signer()
}

// compareEvidence is the canonical order of evidence: by time, then by party.
func compareEvidence(a, b Event) int {
	if a.at() != b.at() {
		if a.at() < b.at() {
			return -1
		}
		return 1
	}
	return strings.Compare(evidenceParty(a), evidenceParty(b))
}

// assemble builds the certificate of basis from the chosen events (k, distinct
// parties) taking effect at effective.
func assemble(ch *Charter, basis string, chosen []Event, effective int64) (*Certificate, error) {
	chosen = slices.Clone(chosen)
	slices.SortFunc(chosen, compareEvidence)
	c := &Certificate{
		V: CertificateVersion, Basis: basis, Tenant: ch.Tenant, Role: ch.Name, Charter: ch.Hash(),
		From: ch.Holder, To: ch.Successors[0], Effective: FormatTime(unixTime(effective)),
		events: chosen, effective: effective,
	}
	for _, e := range chosen {
		c.Evidence = append(c.Evidence, json.RawMessage(e.Bytes()))
	}
	b, err := encodeCertificate(c)
	if err != nil {
		return nil, err
	}
	c.raw = b
	return c, nil
}
