package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"text/tabwriter"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/node"
)

// shownRecord is the JSON form of one federation record.
type shownRecord struct {
	Node       string          `json:"node"`
	Seq        uint64          `json:"seq"`
	Kind       string          `json:"kind"`
	Time       string          `json:"time"`
	RecordHash string          `json:"record_hash"`
	Body       json.RawMessage `json:"body"`
}

// runFleet handles 'sios fleet records': the federation records this node holds, each
// verified against the roots it trusts. (Peers' feeds arrive once membership exists.)
func runFleet(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 || args[0] != "records" {
		return usageError("usage: sios [--data DIR] fleet records [--json]")
	}
	fs := newFlags(e, "fleet records", "fleet records [--json]")
	asJSON := fs.Bool("json", false, "print JSON")
	rest, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError("fleet records takes no arguments")
	}
	cert, _, err := e.loadCert()
	if err != nil {
		return err
	}
	trust, _, err := fleet.LoadTrust(e.dataDir, *cert)
	if err != nil {
		return err
	}
	files, err := filepath.Glob(filepath.Join(node.FeedDir(e.dataDir), "*.json"))
	if err != nil {
		return err
	}
	sort.Strings(files)
	log := fleet.NewLog()
	var shown []shownRecord
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		if _, err := log.Add(raw, trust); err != nil {
			return fmt.Errorf("%s: %v", f, err)
		}
		r, err := fleet.Parse(raw)
		if err != nil {
			return fmt.Errorf("%s: %v", f, err)
		}
		shown = append(shown, shownRecord{Node: r.Node, Seq: r.Seq, Kind: r.Kind, Time: r.Time,
			RecordHash: hex.EncodeToString(fleet.Hash(raw)), Body: r.Body})
	}
	if *asJSON {
		if shown == nil {
			shown = []shownRecord{}
		}
		return printJSON(e.stdout, shown)
	}
	if len(shown) == 0 {
		fmt.Fprintln(e.stdout, "no federation records yet: 'sios up' publishes this node's feed")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSEQ\tKIND\tTIME\tRECORD HASH")
	for _, r := range shown {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%.16s…\n", r.Node, r.Seq, r.Kind, r.Time, r.RecordHash)
	}
	return tw.Flush()
}
