package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/identity/tpm"
	"github.com/sios-project/sios/oar"
)

// Trust store changes: pinning an institution's root, pinning EKs for its nodes, and
// un-pinning it. Each is recorded before the store changes, through the running node
// (POST /admin/trust, which then evicts the peers of an un-pinned institution at once)
// or on the data directory when no node runs.

// Trust operations.
const (
	TrustAddRoot  = "add-root"
	TrustAddEK    = "add-ek"
	TrustRemoveEK = "remove-ek"
	TrustRemove   = "remove"
)

// TrustChange is one change of the trust store.
type TrustChange struct {
	Op string `json:"op"` // TrustAddRoot, TrustAddEK, TrustRemoveEK or TrustRemove
	// Root is, for add-root, the root file ('sios root export').
	Root json.RawMessage `json:"root,omitempty"`
	// Institution is the root id, for add-ek, remove-ek and remove.
	Institution string `json:"institution,omitempty"`
	// EKSHA256 or CA (PEM, or one DER certificate) is what add-ek pins or remove-ek
	// un-pins.
	EKSHA256 string `json:"ek_sha256,omitempty"`
	CA       []byte `json:"ca,omitempty"`
}

// TrustResult is what a change did.
type TrustResult struct {
	Op     string `json:"op"`
	RootID string `json:"root_id"`
	// Evicted are the peers of an un-pinned institution dropped from the running
	// node's fleet (none when no node runs: they are not loaded at its next start).
	Evicted []string `json:"evicted"`
	// EKCAs is, after add-ek or remove-ek, how many EK CA certificates the institution
	// has pinned.
	EKCAs int `json:"ek_cas,omitempty"`
	// AttestAgain are, after remove-ek through the running node, the institution's
	// peers whose TPMs are checked again under the EKs still pinned.
	AttestAgain []string     `json:"attest_again,omitempty"`
	Receipt     *oar.Receipt `json:"receipt,omitempty"`
}

// ChangeTrust checks c, records it with appendFn as actor, then changes dataDir's trust
// store. members are the nodes of the institution a removal un-pins, as far as the
// caller knows them (named in the record). Nothing changes if the record cannot be
// written.
func ChangeTrust(ctx context.Context, dataDir string, own identity.Certificate,
	appendFn func(context.Context, *oar.Record) (*oar.Receipt, []byte, error), actor string, c TrustChange, members []string) (*TrustResult, error) {
	res := &TrustResult{Op: c.Op, Evicted: []string{}}
	detail := map[string]any{}
	var apply func() error
	switch c.Op {
	case TrustAddRoot:
		rf, _, err := fleet.ParseRoot(c.Root)
		if err != nil {
			return nil, fmt.Errorf("%w: root file: %v", errBadRequest, err)
		}
		res.RootID = rf.RootID
		apply = func() error { _, err := fleet.AddRoot(dataDir, c.Root); return err }
	case TrustAddEK, TrustRemoveEK:
		res.RootID = c.Institution
		_, list, err := fleet.LoadTrust(dataDir, own)
		if err != nil {
			return nil, err
		}
		trusted := false
		for _, r := range list {
			trusted = trusted || r.RootID == c.Institution
		}
		if !trusted {
			return nil, fmt.Errorf("%w: institution %s is not trusted here: its nodes are refused whatever their TPM (pin its root first with 'sios trust add-root FILE')", errBadRequest, c.Institution)
		}
		if (c.EKSHA256 == "") == (c.CA == nil) {
			return nil, fmt.Errorf("%w: pin either an EK hash or EK CA certificates", errBadRequest)
		}
		if c.EKSHA256 != "" {
			if !tpm.ValidEKSHA256(c.EKSHA256) {
				return nil, fmt.Errorf("%w: EK hash %q is not 64 lowercase hex digits", errBadRequest, oar.Bounded(c.EKSHA256, 80))
			}
			detail["ek_sha256"] = c.EKSHA256
		} else {
			_, certs, err := tpm.ParseEKCAs(c.CA)
			if err != nil {
				return nil, fmt.Errorf("%w: EK CA certificates: %v", errBadRequest, err)
			}
			var cas []map[string]string
			for _, cert := range certs {
				sum := sha256.Sum256(cert.Raw)
				cas = append(cas, map[string]string{"subject": oar.Bounded(cert.Subject.String(), oar.MaxOutsideValue), "sha256": hex.EncodeToString(sum[:])})
			}
			detail["ek_cas"] = cas
		}
		if c.Op == TrustRemoveEK {
			// What is not pinned is refused before anything is recorded.
			if _, err := fleet.CheckRemoveEK(dataDir, c.Institution, c.EKSHA256, c.CA); err != nil {
				return nil, fmt.Errorf("%w: %v", errBadRequest, err)
			}
		}
		change := fleet.AddEK
		if c.Op == TrustRemoveEK {
			change = fleet.RemoveEK
		}
		apply = func() error {
			et, err := change(dataDir, c.Institution, c.EKSHA256, c.CA)
			if err == nil {
				res.EKCAs = len(et.CAs)
			}
			return err
		}
	case TrustRemove:
		res.RootID = c.Institution
		if c.Institution == own.RootID {
			return nil, fmt.Errorf("%w: %s is this node's own institution: it cannot be un-pinned", errBadRequest, c.Institution)
		}
		_, list, err := fleet.LoadTrust(dataDir, own)
		if err != nil {
			return nil, err
		}
		pinned := false
		for _, r := range list {
			pinned = pinned || r.RootID == c.Institution
		}
		if !pinned {
			return nil, fmt.Errorf("%w: institution %s is not pinned here ('sios trust list' shows the roots trusted)", errBadRequest, oar.Bounded(c.Institution, 80))
		}
		if members == nil {
			members = []string{}
		}
		detail["evict"] = members
		apply = func() error { _, err := fleet.RemoveRoot(dataDir, own, c.Institution); return err }
	default:
		return nil, fmt.Errorf("%w: op %q: want add-root, add-ek, remove-ek or remove", errBadRequest, oar.Bounded(c.Op, 40))
	}
	action := map[string]string{TrustAddRoot: oar.ActionTrustAddRoot, TrustAddEK: oar.ActionTrustAddEK,
		TrustRemoveEK: oar.ActionTrustRemoveEK, TrustRemove: oar.ActionTrustRemove}[c.Op]
	b, _ := json.Marshal(detail)
	rc, _, err := appendFn(ctx, &oar.Record{Actor: oar.Actor{ID: actor}, Action: action, Resource: "root/" + res.RootID,
		Decision: &oar.Decision{Effect: "allow", Policies: []string{"operator"}}, Detail: b})
	if err != nil {
		return nil, fmt.Errorf("audit the trust change (nothing changed): %w", err)
	}
	res.Receipt = rc
	if err := apply(); err != nil {
		// Recorded but not done: say so in the log as well, so that the record of the
		// change is never read alone.
		fb, _ := json.Marshal(map[string]string{"error": oar.Bounded(err.Error(), oar.MaxOutsideValue), "op": c.Op})
		appendFn(context.WithoutCancel(ctx), &oar.Record{Actor: oar.Actor{ID: actor}, Action: oar.ActionTrustFailed,
			Resource: "root/" + res.RootID, Detail: fb})
		return nil, err
	}
	return res, nil
}

// changeTrust is POST /admin/trust: the change through the running node, which then
// re-reads its trust store and evicts the peers of an un-pinned institution.
func (d Deps) changeTrust(r *http.Request) (any, error) {
	var c TrustChange
	if err := decode(r, &c); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadRequest, err)
	}
	var members []string
	if c.Op == TrustRemove && d.FleetLog != nil {
		for _, v := range d.FleetLog.View() {
			if v.Institution == c.Institution {
				members = append(members, v.Node)
			}
		}
	}
	res, err := ChangeTrust(r.Context(), d.DataDir, d.Cert, d.Ledger.Append, "operator", c, members)
	if err != nil {
		return nil, err
	}
	if d.TrustChanged != nil {
		if gone := d.TrustChanged(); len(gone) > 0 {
			res.Evicted = gone
		}
	}
	if c.Op == TrustRemoveEK && d.AttestAgain != nil {
		res.AttestAgain = d.AttestAgain(c.Institution)
	}
	return res, nil
}
