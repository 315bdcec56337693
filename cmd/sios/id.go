package main

import (
	"context"
	"fmt"

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
	out := map[string]string{
		"node_id":            cert.NodeID,
		"name":               cert.Name,
		"mldsa65_public_key": cert.Node.MLDSA65,
		"ed25519_public_key": cert.Node.Ed25519,
		"root":               cert.RootID,
		"root_id":            cert.RootID,
		"checkpoint_origin":  origin,
		"ed25519_note_vkey":  vkey,
	}
	if *asJSON {
		return printJSON(e.stdout, out)
	}
	fmt.Fprintf(e.stdout, "node_id:  %s\nname:     %s\nroot:     %s\norigin:   %s\nvkey:     %s\n",
		cert.NodeID, cert.Name, cert.RootID, origin, vkey)
	return nil
}
