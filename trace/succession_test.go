package trace

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/succession"
)

// handoverRecord is a role.handover record as a node writes it, for a certificate of
// two suspicions by two observers, and the observers' keys.
func handoverRecord(t *testing.T) (*oar.Record, map[string]identity.PublicKey) {
	t.Helper()
	charter := strings.Repeat("ab", 32)
	t0 := time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC)
	keys := map[string]identity.PublicKey{}
	var events [][]byte
	for i, seed := range []byte{0x90, 0x91} {
		m, e := seeds(seed)
		k := identity.KeyFromSeeds(identity.KindNode, m, e)
		id := k.Public().ID(identity.NodePrefix)
		keys[id] = k.Public()
		doc, err := succession.SignSuspicion(k, succession.Suspicion{Tenant: "trust", Role: "guardian", Charter: charter, Holder: "dr.okafor",
			Node: id, Since: succession.FormatTime(t0), Time: succession.FormatTime(t0.Add(time.Duration(60+i) * time.Second))})
		if err != nil {
			t.Fatal(err)
		}
		events = append(events, doc)
	}
	cert := succession.Certificate{V: succession.CertificateVersion, Basis: succession.BasisSuspicion, Tenant: "trust", Role: "guardian",
		Charter: charter, From: "dr.okafor", To: "dr.li", Effective: succession.FormatTime(t0.Add(91 * time.Second))}
	var hashes []string
	rec := &oar.Record{Tenant: "trust", Actor: oar.Actor{ID: "node"}, Action: oar.ActionRoleHandover, Resource: "role/trust/guardian"}
	for _, e := range events {
		cert.Evidence = append(cert.Evidence, json.RawMessage(e))
		hashes = append(hashes, succession.EventHash(e))
		rec.Parties = append(rec.Parties, e)
	}
	b, err := cert.Encode()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := succession.ParseCertificate(b)
	if err != nil {
		t.Fatal(err)
	}
	rec.Detail, _ = json.Marshal(map[string]any{"certificate": pc.Hash(), "basis": cert.Basis, "charter": charter, "from": cert.From,
		"to": cert.To, "effective": cert.Effective, "evidence": hashes})
	rec.Outputs = []oar.Digest{oar.DigestOf("certificate", b)}
	return rec, keys
}

func checkHandoverOf(rec *oar.Record, keys map[string]identity.PublicKey) error {
	v := &verifier{chain: &Chain{}, keys: keys}
	var ps []*party
	for _, raw := range rec.Parties {
		p := parseParty(raw)
		if p.err != nil {
			return p.err
		}
		if p.role != nil {
			if err := v.checkRoleEvent(p.role); err != nil {
				return err
			}
		}
		ps = append(ps, p)
	}
	return v.checkHandover(rec, ps)
}

func TestHandoverRecordsAreChecked(t *testing.T) {
	rec, keys := handoverRecord(t)
	if err := checkHandoverOf(rec, keys); err != nil {
		t.Fatalf("a handover record as the node writes it: %v", err)
	}
	for name, c := range map[string]struct {
		change func(r *oar.Record)
		err    string
	}{
		"evidence swapped": {func(r *oar.Record) { r.Parties[0], r.Parties[1] = r.Parties[1], r.Parties[0] }, "not the evidence"},
		"one observer twice": {func(r *oar.Record) {
			r.Parties[1] = r.Parties[0]
			var d map[string]any
			json.Unmarshal(r.Detail, &d)
			ev := d["evidence"].([]any)
			ev[1] = ev[0]
			r.Detail, _ = json.Marshal(d)
		}, "twice"},
		"effective moved": {func(r *oar.Record) {
			r.Detail = []byte(strings.Replace(string(r.Detail), `"effective":"2026-05-01T09:01:31Z"`, `"effective":"2026-05-01T09:01:32Z"`, 1))
		}, "rebuilt from its evidence"},
		"digest of another certificate": {func(r *oar.Record) { r.Outputs[0].SHA256 = strings.Repeat("0", 64) }, "digest"},
		"a party that is not an event":  {func(r *oar.Record) { r.Parties[1] = []byte(`{"v":"something/1"}`) }, "not a role event"},
		"a forged suspicion": {func(r *oar.Record) {
			r.Parties[0] = []byte(strings.Replace(string(r.Parties[0]), `"since":"2026-05-01T09:00:00Z"`, `"since":"2026-05-01T08:59:00Z"`, 1))
		}, "verif"},
	} {
		r, _ := handoverRecord(t)
		c.change(r)
		if err := checkHandoverOf(r, keys); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%s: %v, want %q", name, err, c.err)
		}
	}
	// A handover whose evidence did not fit in the record is reported as not checked.
	rec.Parties = nil
	v := &verifier{chain: &Chain{}}
	if err := v.checkHandover(rec, nil); err != nil || len(v.chain.Unchecked) != 1 {
		t.Fatalf("no parties: %v, unchecked %v", err, v.chain.Unchecked)
	}
}
