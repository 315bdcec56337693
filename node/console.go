package node

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sios-project/sios/admin"
	"github.com/sios-project/sios/console"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/policy"
)

// newConsole builds the console from the node's subsystems. It sees the admin API's
// view of the node (fleet, replicas) through ready, which Serve fills once the fleet
// has started.
func (n *Node) newConsole(ready *atomic.Pointer[admin.Deps]) (*console.Console, error) {
	var clients []console.OIDCClient
	secure := false
	for _, is := range n.cfg.OIDC {
		if is.Console == nil {
			continue
		}
		secret, err := is.Console.Secret(is.Name)
		if err != nil {
			return nil, err
		}
		clients = append(clients, console.OIDCClient{Name: is.Name, Issuer: is.Issuer, Client: *is.Console, Secret: secret})
		secure = secure || strings.HasPrefix(is.Console.RedirectURL, "https:")
	}
	backendLvl, _ := policy.ParseLevel(orDefault(n.cfg.BackendAccreditation, "SECRET")) // checked by Open
	cfg := console.Config{
		Pipeline: n.pipeline, Policy: n.policy, Principals: n.principals, Brains: n.brains,
		Append: n.ledger.Append, OpenLog: n.openLog, Verify: n.verifyLog, Export: n.exportLog,
		Node:  n.consoleInfo(backendLvl),
		Admin: ready.Load,
		Institutions: func() ([]fleet.TrustedRoot, error) {
			_, roots, err := fleet.LoadTrust(n.dataDir, n.id.Cert)
			return roots, err
		},
		Readiness: n.readiness,
		OIDC:      clients, HTTPClient: &http.Client{Transport: n.guard.HTTPTransport()}, SecureCookies: secure,
		Log: n.log,
	}
	if n.sso != nil {
		cfg.SSO = n.sso.Status
	}
	return console.New(cfg)
}

// consoleInfo is what the console's node page states about the node.
func (n *Node) consoleInfo(backendLvl policy.Level) console.NodeInfo {
	cert := n.id.Cert
	origin := ledger.Origin(n.ID())
	vkey, _ := n.id.Public().Ed25519VerifierKey(origin)
	ml := sha256.Sum256(n.id.Public().MLDSA65.Bytes())
	info := console.NodeInfo{ID: n.ID(), Name: cert.Name, Institution: cert.RootID, Origin: origin, NoteKey: vkey,
		MLDSA65: hex.EncodeToString(ml[:]), Attestation: fleet.AttestSoftware,
		Posture: n.cfg.posture(backendLvl).String(), Accreditation: n.cfg.Accreditation, BackendAccreditation: backendLvl.String(),
		Backend: n.cfg.Backend, Listen: n.cfg.Listen, FleetListen: n.cfg.FleetListen, Started: time.Now()}
	if n.cfg.Backend == "builtin" {
		info.BackendAccreditation = policy.TopSecret.String() + " (the builtin backend never leaves the process)"
	}
	if n.tpm != nil {
		info.Attestation, info.EKSHA256 = fleet.AttestTPM, n.tpm.EKSHA256
		if n.tpm.Evidence != nil {
			info.AKName = n.tpm.Evidence.Binding.AKName
		}
	}
	return info
}

// verifyLog verifies the node's own log at its latest checkpoint, as 'sios audit
// verify' does (records awaiting their seal are reported, not failed: the node is
// writing). Progress is told at the start and the end of the run.
func (n *Node) verifyLog(ctx context.Context, progress func(done, total uint64)) (*ledger.VerifyResult, error) {
	r, err := n.openLog()
	if err != nil {
		return nil, err
	}
	progress(0, r.Size())
	res, err := r.Verify(ctx, true)
	if err == nil {
		progress(r.Size(), r.Size())
	}
	return res, err
}

// exportLog builds an evidence bundle of entries from..to-1 of the node's own log,
// with the node's TPM evidence when its key is sealed to one.
func (n *Node) exportLog(ctx context.Context, from, to uint64) (*ledger.Bundle, error) {
	r, err := n.openLog()
	if err != nil {
		return nil, err
	}
	b, err := r.Export(ctx, n.id.Cert, from, to)
	if err != nil {
		return nil, err
	}
	if n.tpm != nil && n.tpm.Evidence != nil {
		if b.Attestation, err = n.tpm.Evidence.Marshal(); err != nil {
			return nil, err
		}
	}
	return b, nil
}
