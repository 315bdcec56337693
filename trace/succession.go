package trace

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/succession"
)

// The succession protocol's events (docs/succession.md) as parties: a role.handover
// record holds the k signed suspicions or removals of its certificate. Each is verified
// under its signer's enrolled keys, and the certificate the record names (its digest in
// outputs) is rebuilt from the record and those events.

// roleEvents are the event formats a trace follows.
var roleEvents = []string{succession.PresenceVersion, succession.SuspicionVersion, succession.RefutationVersion,
	succession.AcceptanceVersion, succession.RemovalVersion}

// parseRoleEvent reads a party of a role event format; ok is false for other formats.
func parseRoleEvent(v string, raw []byte) (e succession.Event, ok bool, err error) {
	if !slices.Contains(roleEvents, v) {
		return nil, false, nil
	}
	e, err = succession.ParseEvent(raw)
	return e, true, err
}

// checkRoleEvent checks an event's signature under its signer's certified keys.
func (v *verifier) checkRoleEvent(e succession.Event) error {
	k, err := v.key(e.Signer())
	if err != nil {
		return err
	}
	return e.Verify(succession.KeyMap{e.Signer(): k})
}

// checkHandover checks a role.handover record: its evidence parties are the events its
// detail names, of the kind its basis says, from distinct parties, and the certificate
// rebuilt from them and the record's members is the one whose digest it holds.
func (v *verifier) checkHandover(rec *oar.Record, ps []*party) error {
	var d struct {
		Certificate string   `json:"certificate"`
		Basis       string   `json:"basis"`
		Charter     string   `json:"charter"`
		From        string   `json:"from"`
		To          string   `json:"to"`
		Effective   string   `json:"effective"`
		Evidence    []string `json:"evidence"`
	}
	if err := json.Unmarshal(rec.Detail, &d); err != nil {
		return fmt.Errorf("a role.handover record's detail: %v", err)
	}
	if len(ps) == 0 {
		v.chain.Unchecked = append(v.chain.Unchecked, fmt.Sprintf("handover certificate %s: its evidence was too large to be held in the record", short(d.Certificate)))
		return nil
	}
	tenant, role, _ := strings.Cut(strings.TrimPrefix(rec.Resource, "role/"), "/")
	cert := succession.Certificate{V: succession.CertificateVersion, Basis: d.Basis, Tenant: tenant, Role: role,
		Charter: d.Charter, From: d.From, To: d.To, Effective: d.Effective}
	for i, p := range ps {
		if p.role == nil {
			return fmt.Errorf("parties[%d] of a role.handover record is not a role event", i)
		}
		if i >= len(d.Evidence) || p.role.Hash() != d.Evidence[i] {
			return fmt.Errorf("parties[%d] is not the evidence its detail names", i)
		}
		cert.Evidence = append(cert.Evidence, json.RawMessage(p.raw))
	}
	if len(d.Evidence) != len(ps) {
		return fmt.Errorf("its detail names %d events of evidence, its parties hold %d", len(d.Evidence), len(ps))
	}
	b, err := cert.Encode()
	if err != nil {
		return err
	}
	parsed, err := succession.ParseCertificate(b) // each event of the basis's kind, within the caps
	if err != nil {
		return fmt.Errorf("its evidence does not make a certificate: %v", err)
	}
	seen := map[string]bool{}
	for _, e := range parsed.Events() {
		who := e.Signer()
		if r, ok := e.(*succession.Removal); ok {
			who = r.Admin
		}
		if seen[who] {
			return fmt.Errorf("its evidence counts %s twice", who)
		}
		seen[who] = true
	}
	if parsed.Hash() != d.Certificate {
		return fmt.Errorf("the certificate rebuilt from its evidence is %s, not the %s it names", parsed.Hash(), short(d.Certificate))
	}
	digest := oar.DigestOf("certificate", b)
	if !slices.ContainsFunc(rec.Outputs, func(o oar.Digest) bool { return o.Name == "certificate" && o.SHA256 == digest.SHA256 }) {
		return fmt.Errorf("its outputs do not hold the certificate's digest %s", digest.SHA256)
	}
	return nil
}
