package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"

	"github.com/sios-project/sios/ledger"
)

func runAuditVerify(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "audit verify", "audit verify [--json] [--progress]\n"+
		"       sios [--data DIR] audit verify --trace FILE [--json]\n"+
		"       sios [--data DIR] audit verify --bundle FILE [--json] [--progress]\n"+
		"       sios [--data DIR] audit verify --receipt FILE [--cert FILE] [--record FILE] [--json]")
	bundle := fs.String("bundle", "", "verify this evidence bundle offline instead of the node's log")
	traceFile := fs.String("trace", "", "verify this trace ('sios audit trace') offline instead of the node's log")
	receipt := fs.String("receipt", "", "verify the receipts in FILE offline: receipt JSON (audit append --json, one or more), audit prove --json output, or X-Sios-Receipt header values, one per line")
	certPath := fs.String("cert", "", "with --receipt: the node's enrolment certificate (default: DIR/node.cert)")
	record := fs.String("record", "", "with --receipt: the record (JSON, e.g. the entry of 'audit show --json'), to check that the receipt is for it")
	asJSON := fs.Bool("json", false, "print JSON")
	showProgress := addProgressFlag(fs)
	args, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usageError("audit verify takes no arguments, got %q", args[0])
	}
	defer tuneForVerifying()()
	switch {
	case *traceFile != "" && (*bundle != "" || *receipt != ""):
		return usageError("audit verify takes one of --bundle, --receipt and --trace")
	case *traceFile != "":
		return verifyTrace(e, *traceFile, *asJSON)
	case *bundle != "" && *receipt != "":
		return usageError("audit verify takes --bundle or --receipt, not both")
	case *receipt == "" && (*certPath != "" || *record != ""):
		return usageError("--cert and --record go with --receipt")
	case *bundle != "":
		return verifyBundle(e, *bundle, *asJSON, showProgress)
	case *receipt != "":
		return verifyReceipts(e, *receipt, *certPath, *record, *asJSON)
	}
	// Verification only reads: it never opens the ledger, replays the journal or
	// records a checkpoint, so that a copy verifies without a byte changing.
	r, _, err := e.openReader()
	if errors.Is(err, ledger.ErrEmpty) {
		return withHint(err, "the log is created by 'sios init'")
	}
	if err != nil {
		return fmt.Errorf("audit log verification failed: %w", err)
	}
	line := newProgressLine(e, showProgress, "verifying")
	res, err := r.VerifyWith(ctx, ledger.VerifyOptions{Progress: line.report()})
	line.done()
	if err != nil {
		return fmt.Errorf("audit log verification failed: %w", err)
	}
	if *asJSON {
		return printJSON(e.stdout, map[string]any{
			"verified": true, "records": res.Records, "seals": res.Seals, "entries": res.Entries,
			"pending": res.Pending, "unsealed": res.Unsealed, "checkpoint_size": res.Size, "checkpoint_root": hex.EncodeToString(res.Root),
			"consistent_with_size": res.SeenSize, "files": res.Files, "writer_running": res.Live,
			"integrated": res.Integrated, "journal_end": res.JournalEnd, "beyond_checkpoint_records": res.BeyondRecords,
			"torn_journal": res.TornJournal, "ignored_journal": res.IgnoredJournal,
		})
	}
	fmt.Fprintf(e.stdout, "verified %d records under %d seals (%d entries; checkpoint root %s)\n",
		res.Records, res.Seals, res.Entries, hex.EncodeToString(res.Root))
	fmt.Fprintf(e.stdout, "checked %d entry bundles and hash tiles at every level, kept partial ones included\n", res.Files)
	if res.SeenSize > 0 {
		fmt.Fprintf(e.stdout, "consistent with the checkpoint this node saw at size %d\n", res.SeenSize)
	}
	if res.Live {
		fmt.Fprintf(e.stdout, "a running node holds the ledger: entries beyond the checkpoint are changing and were not read\n")
		if res.Pending > 0 {
			fmt.Fprintf(e.stdout, "%d newer records await their seal from the running node\n", res.Pending)
		}
	}
	if end := max(res.Integrated, res.JournalEnd); end > res.Entries {
		fmt.Fprintf(e.stdout, "beyond the checkpoint: %d records (entries %d..%d) that no checkpoint commits to yet:\n",
			res.BeyondRecords, res.Entries, end-1)
		if sealed := res.BeyondRecords - res.Unsealed; sealed > 0 {
			fmt.Fprintf(e.stdout, "  %d of them under a verified seal\n", sealed)
		}
		if res.Unsealed > 0 {
			fmt.Fprintf(e.stdout, "  the last %d durable but not yet sealed: the node stopped before sealing them, and seals them first when it next starts\n", res.Unsealed)
		}
		if res.Integrated > res.Entries {
			fmt.Fprintf(e.stdout, "  entries %d..%d are in the log's tiles, awaiting a checkpoint\n", res.Entries, res.Integrated-1)
		}
		if res.JournalEnd > res.Integrated {
			fmt.Fprintf(e.stdout, "  the journal holds %d entries (%d..%d) not yet in the log\n", res.JournalEnd-res.Integrated, res.Integrated, res.JournalEnd-1)
		}
		fmt.Fprintf(e.stdout, "  the node integrates and checkpoints them when it next runs\n")
	}
	if res.TornJournal != "" {
		fmt.Fprintf(e.stdout, "note: %s; the node drops it\n", res.TornJournal)
	}
	if res.IgnoredJournal != "" {
		fmt.Fprintf(e.stdout, "note: %s\n", res.IgnoredJournal)
	}
	return nil
}

func verifyBundle(e *env, path string, asJSON bool, showProgress *progressFlag) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	b, err := ledger.ReadBundle(f)
	if err != nil {
		return fmt.Errorf("bundle %s: %w", path, err)
	}
	line := newProgressLine(e, showProgress, "verifying the bundle")
	res, err := b.VerifyWith(ledger.BundleVerifyOptions{Progress: line.report()})
	line.done()
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
