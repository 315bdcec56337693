package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/sios-project/sios/ledger"
)

func runAuditVerify(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "audit verify", "audit verify [--bundle FILE | --trace FILE] [--json]")
	bundle := fs.String("bundle", "", "verify this evidence bundle offline instead of the node's log")
	traceFile := fs.String("trace", "", "verify this trace ('sios audit trace') offline instead of the node's log")
	asJSON := fs.Bool("json", false, "print JSON")
	args, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usageError("audit verify takes no arguments, got %q", args[0])
	}
	if *traceFile != "" {
		return verifyTrace(e, *traceFile, *asJSON)
	}
	if *bundle != "" {
		return verifyBundle(e, *bundle, *asJSON)
	}
	// A recovery failure is reported only if verification itself finds nothing: its
	// own report names the first bad entry, which is what the operator needs.
	live, recoverErr := recoverLedger(ctx, e)
	r, _, err := e.openReader()
	if errors.Is(err, ledger.ErrEmpty) {
		return withHint(err, "the log is created by 'sios init'")
	}
	if err != nil {
		return fmt.Errorf("audit log verification failed: %w", err)
	}
	res, err := r.Verify(ctx, live)
	if err != nil {
		return fmt.Errorf("audit log verification failed: %w", err)
	}
	if recoverErr != nil {
		return recoverErr
	}
	if !live {
		if n, err := e.loadNode(); err == nil {
			if err := r.NoteSeen(n); err != nil {
				return err
			}
		}
	}
	if *asJSON {
		return printJSON(e.stdout, map[string]any{
			"verified": true, "records": res.Records, "seals": res.Seals, "entries": res.Entries,
			"pending": res.Pending, "checkpoint_size": res.Size, "checkpoint_root": hex.EncodeToString(res.Root),
			"consistent_with_size": res.SeenSize,
		})
	}
	fmt.Fprintf(e.stdout, "verified %d records under %d seals (%d entries; checkpoint root %s)\n",
		res.Records, res.Seals, res.Entries, hex.EncodeToString(res.Root))
	if res.SeenSize > 0 {
		fmt.Fprintf(e.stdout, "consistent with the checkpoint this node saw at size %d\n", res.SeenSize)
	}
	if res.Pending > 0 {
		fmt.Fprintf(e.stdout, "%d newer records await their seal from the running node\n", res.Pending)
	}
	return nil
}

// recoverLedger completes a log left by a crash: when no other process holds the
// ledger, opening and closing it replays the journal into the log and publishes a
// checkpoint. It reports whether another process holds the ledger (a live writer).
func recoverLedger(ctx context.Context, e *env) (live bool, err error) {
	if _, err := os.Stat(e.ledgerDir()); err != nil {
		return false, nil
	}
	n, err := e.loadNode()
	var held *ledger.LockedError
	if errors.As(err, &held) {
		return true, nil // a running node holds the TPM the key is sealed to
	}
	if err != nil {
		return false, nil // verification needs only the public identity
	}
	l, err := ledger.Open(ctx, e.ledgerDir(), n, ledger.Options{CheckpointInterval: 100 * time.Millisecond})
	var le *ledger.LockedError
	if errors.As(err, &le) {
		return true, nil
	}
	if err != nil {
		return false, fmt.Errorf("audit log verification failed: %w", err)
	}
	return false, l.Close(ctx)
}

func verifyBundle(e *env, path string, asJSON bool) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := ledger.ReadBundle(f)
	if err != nil {
		return fmt.Errorf("bundle %s: %w", path, err)
	}
	res, err := b.Verify()
	if err != nil {
		return fmt.Errorf("bundle %s failed verification: %w", path, err)
	}
	if asJSON {
		out := map[string]any{"verified": true, "node_id": res.NodeID, "root_id": res.RootID,
			"start": res.Start, "end": res.End, "records": res.Records, "seals": res.Seals, "checkpoint_size": res.Size,
			"attestation": res.Attestation}
		if res.EKSHA256 != "" {
			out["ek_sha256"] = res.EKSHA256
		}
		return printJSON(e.stdout, out)
	}
	fmt.Fprintf(e.stdout, "verified %d records under %d seals (entries %d..%d of %d) from node %s\n",
		res.Records, res.Seals, res.Start, res.End-1, res.Size, res.NodeID)
	fmt.Fprintf(e.stdout, "enrolled by institution root %s: compare it with the root you trust\n", res.RootID)
	if res.Attestation == "tpm" {
		fmt.Fprintf(e.stdout, "hardware-attested: the node's keys are bound to the TPM with endorsement key %s: compare it with the EKs you trust\n", res.EKSHA256)
	} else {
		fmt.Fprintln(e.stdout, "not hardware-attested: the node's keys are held in software")
	}
	return nil
}
