package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/identity/tpm"
	"github.com/sios-project/sios/ledger"
)

func runID(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "id", "id [--json]")
	asJSON := fs.Bool("json", false, "print JSON")
	args, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	cert, pub, err := e.loadCert()
	if err != nil {
		return err
	}
	origin := ledger.Origin(cert.NodeID)
	vkey, err := pub.Ed25519VerifierKey(origin)
	if err != nil {
		return err
	}
	attestation, ek, err := e.attestation(cert, pub)
	if err != nil {
		return err
	}
	out := map[string]string{
		"node_id":            cert.NodeID,
		"name":               cert.Name,
		"mldsa65_public_key": cert.Node.MLDSA65,
		"ed25519_public_key": cert.Node.Ed25519,
		"root":               cert.RootID,
		"root_id":            cert.RootID,
		"checkpoint_origin":  origin,
		"ed25519_note_vkey":  vkey,
		"attestation":        attestation,
	}
	if ek != "" {
		out["ek_sha256"] = ek
	}
	if *asJSON {
		return printJSON(e.stdout, out)
	}
	fmt.Fprintf(e.stdout, "node_id:  %s\nname:     %s\nroot:     %s\norigin:   %s\nvkey:     %s\nattest:   %s\n",
		cert.NodeID, cert.Name, cert.RootID, origin, vkey, attestation)
	if ek != "" {
		fmt.Fprintf(e.stdout, "ek:       %s\n", ek)
	}
	return nil
}

// attestation says how the node's key is held — fleet.AttestSoftware, or
// fleet.AttestTPM with its TPM's EK hash — from its evidence file, without opening the
// TPM (a running node holds it).
func (e *env) attestation(cert *identity.Certificate, pub identity.PublicKey) (kind, ekSHA256 string, err error) {
	ev, err := tpm.ReadEvidence(e.dataDir)
	if errors.Is(err, os.ErrNotExist) {
		if sealed, _ := keySealed(e.dataDir); sealed {
			return "", "", withHint(fmt.Errorf("the node key is sealed to a TPM, but %s is missing", filepath.Join(e.dataDir, tpm.EvidenceFile)),
				"'sios up' makes it again with the TPM")
		}
		return fleet.AttestSoftware, "", nil
	}
	if err != nil {
		return "", "", err
	}
	v, err := tpm.Verify(ev, cert.NodeID, pub, tpm.Policy{EKSHA256: []string{ev.Binding.EKSHA256}})
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", filepath.Join(e.dataDir, tpm.EvidenceFile), err)
	}
	return fleet.AttestTPM, v.EKSHA256, nil
}
