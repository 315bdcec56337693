package main

import (
	"context"
	"fmt"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/internal/files"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/replication"
)

func runAuditExport(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "audit export", "audit export [--source NODEID] --out FILE [--from I] [--to J]")
	source := fs.String("source", "", "export the copy this node keeps of another node's log")
	out := fs.String("out", "", "write the evidence bundle to FILE (required)")
	from := fs.Uint64("from", 0, "first index to include")
	to := fs.Uint64("to", 0, "index after the last one to include (default: the whole log)")
	args, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if *out == "" {
		return usageError("audit export needs --out FILE")
	}
	if len(args) > 0 {
		return usageError("audit export takes no arguments, got %q", args[0])
	}
	var r *ledger.Reader
	var cert *identity.Certificate
	if *source != "" {
		rep, c, err := replication.OpenCopy(e.dataDir, *source)
		if err != nil {
			return err
		}
		if r, err = rep.Reader(); err != nil {
			return err
		}
		cert = c
	} else if r, cert, err = e.openReader(); err != nil {
		return err
	}
	b, err := r.Export(ctx, *cert, *from, *to)
	if err != nil {
		return err
	}
	if *source == "" {
		// A node whose key is sealed to a TPM hands over its evidence with its log.
		if b.Attestation, err = e.evidence(); err != nil {
			return err
		}
	}
	// Check the bundle before handing it over: an export must verify offline.
	res, err := b.Verify()
	if err != nil {
		return fmt.Errorf("the exported bundle does not verify: %w", err)
	}
	data, err := b.Marshal()
	if err != nil {
		return withHint(err, "export a narrower range with --from and --to")
	}
	if err := files.Replace(*out, append(data, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "exported entries %d..%d (%d records, %d seals) to %s\n", res.Start, res.End-1, res.Records, res.Seals, *out)
	return nil
}
