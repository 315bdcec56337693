package main

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/sios-project/sios/admin"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/replication"
)

const compareUsage = `audit compare --bundle A --bundle B [--json]
       sios [--data DIR] audit compare --peer NODEID [--json]
         (through the running node: NODEID's log against this node's copy of it, or this
         node's log against NODEID's copy, by a consistency proof between signed checkpoints)
       sios [--data DIR] audit compare --peer NODEID --with DIR2 [--json]
         (on disk: DIR's copy of NODEID's log against DIR2's; either may be NODEID's own data directory)`

// runAuditCompare proves that two copies of one node's log hold the same history up to
// their common size, or names the first index where they diverge. It only reads: it
// runs beside a node serving either data directory.
func runAuditCompare(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "audit compare", compareUsage)
	var bundles rolesFlag // any repeatable string flag
	fs.Var(&bundles, "bundle", "an evidence bundle to compare (give two)")
	peer := fs.String("peer", "", "compare the copies of NODEID's log kept in --data DIR and in --with DIR2")
	with := fs.String("with", "", "the data directory holding the other copy of NODEID's log (a replica's, or NODEID's own)")
	asJSON := fs.Bool("json", false, "print JSON")
	args, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(args) > 0 {
		return usageError("audit compare takes no arguments, got %q", args[0])
	}
	var c *ledger.Comparison
	switch {
	case len(bundles) > 0 && (*peer != "" || *with != ""):
		return usageError("audit compare takes either --bundle A --bundle B or --peer NODEID --with DIR2, not both")
	case len(bundles) > 0:
		if len(bundles) != 2 {
			return usageError("audit compare needs exactly two --bundle files, got %d", len(bundles))
		}
		if c, err = compareBundles(bundles[0], bundles[1]); err != nil {
			return err
		}
	case *peer != "" && *with == "":
		// Across the fleet, through the running node.
		ac := admin.Dial(e.dataDir)
		if ac == nil {
			return withHint(fmt.Errorf("no node is running on %s to ask %s", e.dataDir, *peer),
				"start it, or compare two copies on disk with --with DIR2")
		}
		var res replication.CompareResult
		if err := ac.Do(ctx, "POST", "/admin/audit/compare", admin.ReplicaRequest{Node: *peer}, &res); err != nil {
			return err
		}
		c = res.Comparison()
	case *peer != "":
		if c, err = compareCopies(ctx, *peer, e.dataDir, *with); err != nil {
			return err
		}
	default:
		return usageError("audit compare needs --bundle A --bundle B, or --peer NODEID [--with DIR2]")
	}
	if *asJSON {
		out := map[string]any{"identical": c.Identical, "common_size": c.CommonSize, "root": nil,
			"first_divergence": c.FirstDivergence, "reason": c.Reason}
		if c.Identical {
			out["root"] = hex.EncodeToString(c.Root)
		}
		if err := printJSON(e.stdout, out); err != nil {
			return err
		}
		if !c.Identical {
			return &cliError{err: errors.New(c.Reason), code: exitFailure, quiet: true}
		}
		return nil
	}
	if !c.Identical {
		return errors.New(c.Reason)
	}
	fmt.Fprintf(e.stdout, "identical up to size %d (root %s)\n%s\n", c.CommonSize, hex.EncodeToString(c.Root), c.Reason)
	return nil
}

func compareBundles(pathA, pathB string) (*ledger.Comparison, error) {
	var bs [2]*ledger.Bundle
	for k, p := range []string{pathA, pathB} {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		bs[k], err = ledger.ReadBundle(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("bundle %s: %w", p, err)
		}
	}
	return ledger.CompareBundles(bs[0], bs[1], "bundle "+pathA, "bundle "+pathB)
}

func compareCopies(ctx context.Context, nodeID, dirA, dirB string) (*ledger.Comparison, error) {
	a, nameA, err := openLogOf(dirA, nodeID)
	if err != nil {
		return nil, err
	}
	b, nameB, err := openLogOf(dirB, nodeID)
	if err != nil {
		return nil, err
	}
	if nameA == nameB {
		return nil, usageError("--data and --with name the same copy (%s)", nameA)
	}
	return ledger.CompareLogs(ctx, a, b, nameA, nameB)
}

// openLogOf opens, for reading only, the copy of nodeID's log that dataDir holds: the
// node's own log when dataDir is nodeID's data directory, else the copy it keeps under
// replicas/. Only the checkpoint is verified (ledger.CompareLogs proves the rest), and
// nothing is written, so a node may be serving dataDir meanwhile. It returns the log
// directory, by which the copy is named in messages.
func openLogOf(dataDir, nodeID string) (*ledger.Reader, string, error) {
	own, err := identity.LoadCertificate(filepath.Join(dataDir, identity.NodeCertFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, "", err
	}
	if err == nil && own.NodeID == nodeID {
		e := &env{dataDir: dataDir}
		r, _, err := e.openReader()
		if errors.Is(err, ledger.ErrEmpty) {
			return nil, "", fmt.Errorf("%s: %w", e.ledgerDir(), err)
		}
		return r, e.ledgerDir(), err
	}
	dir := filepath.Join(replication.ReplicasDir(dataDir), nodeID)
	if _, err := os.Stat(dir); err != nil {
		return nil, "", withHint(fmt.Errorf("%s is not %s's data directory and keeps no copy of its log (%s)", dataDir, nodeID, dir),
			fmt.Sprintf("'sios --data %s audit replicas' lists the copies it keeps", dataDir))
	}
	certPath := dir + ".cert"
	cert, err := identity.LoadCertificate(certPath)
	if err != nil {
		return nil, "", err
	}
	pub, _, err := cert.Verify()
	if err != nil {
		return nil, "", fmt.Errorf("%s: %v", certPath, err)
	}
	if cert.NodeID != nodeID {
		return nil, "", fmt.Errorf("%s is node %s's certificate, not %s's", certPath, cert.NodeID, nodeID)
	}
	r, err := ledger.OpenReplicaReader(dir, nodeID, pub)
	if errors.Is(err, ledger.ErrEmpty) {
		return nil, "", fmt.Errorf("the copy of %s's log in %s has no checkpoint yet", nodeID, dir)
	}
	return r, dir, err
}
