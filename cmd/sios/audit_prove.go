package main

import (
	"context"
	"encoding/hex"
	"fmt"

	"github.com/sios-project/sios/oar"
	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"
)

func runAuditProve(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "audit prove", "audit prove INDEX [--json]")
	asJSON := fs.Bool("json", false, "print JSON")
	args, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(args) != 1 {
		return usageError("audit prove needs exactly one INDEX")
	}
	i, err := parseIndex(args[0])
	if err != nil {
		return err
	}
	r, _, err := e.openReader()
	if err != nil {
		return err
	}
	entry, err := r.Entry(ctx, i)
	if err != nil {
		return err
	}
	leaf := oar.RecordHash(entry)
	path, err := r.InclusionProof(ctx, i)
	if err != nil {
		return err
	}
	cp := r.Checkpoint()
	// Check what is about to be handed out, so that a damaged log is never vouched for.
	if err := proof.VerifyInclusion(rfc6962.DefaultHasher, i, cp.Size, leaf, path, cp.Root); err != nil {
		return fmt.Errorf("entry %d does not verify against the checkpoint: %v", i, err)
	}
	out := map[string]any{
		"index": i, "leaf_hash": hex.EncodeToString(leaf), "tree_size": cp.Size,
		"root": hex.EncodeToString(cp.Root), "inclusion_proof": oar.HexHashes(path), "checkpoint": string(cp.Raw),
	}
	if p, err := oar.Parse(entry); err == nil && p.Kind == oar.KindRecord {
		rc, err := r.Receipt(ctx, i)
		if err != nil {
			return err
		}
		_, pub, err := e.loadCert()
		if err != nil {
			return err
		}
		if _, err := rc.Verify(pub, entry); err != nil {
			return fmt.Errorf("receipt of entry %d does not verify: %v", i, err)
		}
		out["receipt"] = rc
	}
	if *asJSON {
		return printJSON(e.stdout, out)
	}
	fmt.Fprintf(e.stdout, "entry %d is in the log of %d entries (root %s)\n", i, cp.Size, hex.EncodeToString(cp.Root))
	fmt.Fprintf(e.stdout, "leaf_hash: %s\ninclusion_proof:\n", hex.EncodeToString(leaf))
	for _, h := range path {
		fmt.Fprintf(e.stdout, "  %x\n", h)
	}
	if rc, ok := out["receipt"].(*oar.Receipt); ok {
		fmt.Fprintf(e.stdout, "sealed by the seal at index %d (%d-hash proof); both signatures verify\n", rc.SealIndex, len(rc.InclusionProof))
	}
	fmt.Fprintf(e.stdout, "checkpoint:\n%s", cp.Raw)
	return nil
}
