package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sios-project/sios/admin"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/identity/tpm"
	"github.com/sios-project/sios/internal/files"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/replication"
	"github.com/sios-project/sios/trace"
)

// runAuditTrace gathers the trace of one record of the node's log into a file that
// verifies offline ('sios audit verify --trace FILE'): through the running node, which
// asks the other nodes involved over the fleet; with the node stopped, from this data
// directory alone (the node's log, and the replicas it keeps of other nodes' logs).
func runAuditTrace(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "audit trace", "audit trace --record INDEX|HASH --out FILE")
	record := fs.String("record", "", "the record to trace: its index in this node's log, or its record hash")
	out := fs.String("out", "", "the trace file to write")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(rest) > 0:
		return usageError("audit trace takes no arguments, got %q", rest[0])
	case *record == "" || *out == "":
		return usageError("audit trace needs --record INDEX|HASH and --out FILE")
	}
	if _, err := trace.ParseSubject(*record); err != nil {
		return usageError("--record: %v", err)
	}
	var b []byte
	if ac := admin.Dial(e.dataDir); ac != nil {
		var res admin.TraceResponse
		if err := ac.Do(ctx, "POST", "/admin/audit/trace", admin.TraceRequest{Record: *record}, &res); err != nil {
			return fmt.Errorf("audit trace: %w", err)
		}
		b = res.Trace
	} else if b, err = traceOffline(ctx, e, *record); err != nil {
		return fmt.Errorf("audit trace: %w", err)
	}
	if err := files.Replace(*out, b, 0o600); err != nil {
		return err
	}
	chain, err := trace.Verify(b, trace.Options{Evidence: traceEvidence})
	if err != nil {
		return fmt.Errorf("audit trace: the trace written to %s does not verify: %w", *out, err)
	}
	fmt.Fprintf(e.stdout, "wrote the trace of record %d of %s (%s) to %s: %d records of %d nodes\n",
		chain.Subject.Index, chain.Subject.Node, chain.Subject.Action, *out, len(chain.Records), len(chain.Nodes))
	return nil
}

// traceOffline builds a trace from the data directory of a stopped node.
func traceOffline(ctx context.Context, e *env, record string) ([]byte, error) {
	if _, err := recoverLedger(ctx, e); err != nil {
		return nil, err
	}
	r, cert, err := e.openReader()
	if errors.Is(err, ledger.ErrEmpty) {
		return nil, withHint(err, "the log is created by 'sios init'")
	}
	if err != nil {
		return nil, err
	}
	trust, _, err := fleet.LoadTrust(e.dataDir, *cert)
	if err != nil {
		return nil, fmt.Errorf("trust store: %v", err)
	}
	arch, err := fleet.OpenArchive(filepath.Join(e.dataDir, "fleet", "log"))
	if err != nil {
		return nil, fmt.Errorf("fleet log: %v", err)
	}
	fl := fleet.NewLog()
	if _, err := arch.Load(fl, trust); err != nil {
		return nil, fmt.Errorf("fleet log: %v", err)
	}
	ev, err := trace.ReadEvidence(e.dataDir)
	if err != nil {
		return nil, err
	}
	sub, _ := trace.ParseSubject(record)
	certOf := func(node string) (identity.Certificate, bool) { return trace.CertificateOf(fl, node) }
	b := &trace.Builder{Certificate: *cert, Evidence: ev, Log: r, Certificates: certOf,
		Source: trace.ReplicaSource{Dir: replication.ReplicasDir(e.dataDir), Certificate: certOf}}
	return b.Build(ctx, sub)
}

// verifyTrace is 'sios audit verify --trace FILE': the trace alone, offline.
func verifyTrace(e *env, path string, asJSON bool) error {
	b, err := readTraceFile(path)
	if err != nil {
		return err
	}
	start := time.Now()
	chain, err := trace.Verify(b, trace.Options{Evidence: traceEvidence})
	if err != nil {
		return fmt.Errorf("trace %s failed verification: %w", path, err)
	}
	if asJSON {
		return printJSON(e.stdout, map[string]any{"verified": true, "chain": chain, "verify_ms": float64(time.Since(start).Microseconds()) / 1000})
	}
	fmt.Fprint(e.stdout, chain.String())
	return nil
}

func readTraceFile(path string) ([]byte, error) {
	b, err := files.ReadFileCapped(path, trace.MaxTraceSize, "trace.MaxTraceSize")
	if err != nil {
		return nil, fmt.Errorf("trace %s: %v", path, err)
	}
	return b, nil
}

// traceEvidence checks a traced node's TPM evidence offline: it must bind the node's
// enrolled keys to the EK it names. Whether that EK is one to trust is the verifier's
// call, as the institution root is.
func traceEvidence(node string, cert identity.Certificate, evidence []byte) (string, error) {
	keys, _, err := cert.Verify()
	if err != nil {
		return "", err
	}
	v, err := tpm.VerifyBinding(evidence, node, keys)
	if err != nil {
		return "", err
	}
	return "tpm: its keys are bound to the TPM whose EK has SHA-256 " + v.EKSHA256, nil
}

// recoverLedger completes a log left by a crash, so that a trace can prove its records
// under a checkpoint: when no other process holds the ledger, opening and closing it
// replays the journal into the log and publishes a checkpoint (what the node does at
// its next start). It reports whether another process holds the ledger (a live writer).
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
		return false, fmt.Errorf("the audit log cannot be opened: %w", err)
	}
	return false, l.Close(ctx)
}
