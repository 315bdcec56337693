package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/sios-project/sios/admin"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/node"
)

const fleetUsage = `usage: sios [--data DIR] fleet peers|routes|records [--json]
  peers    the other nodes this node knows: institution, state (alive|suspect|dead), posture, attestation (tpm only once its TPM answered), brains
  routes   brain id → the nodes that could run it, in order of preference
  records  the fleet-wide log of federation records as this node holds it`

// runFleet handles 'sios fleet peers|routes|records'. Peers and routes come from the
// running node; records too, or from this node's own feed when no node runs.
func runFleet(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		return usageError("%s", fleetUsage)
	}
	sub := args[0]
	if !slices.Contains([]string{"peers", "routes", "records"}, sub) {
		return usageError("unknown fleet command %q\n%s", sub, fleetUsage)
	}
	fs := newFlags(e, "fleet "+sub, "fleet "+sub+" [--json]")
	asJSON := fs.Bool("json", false, "print JSON")
	rest, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError("fleet %s takes no arguments", sub)
	}
	admin := admin.Dial(e.dataDir)
	if admin == nil && sub != "records" {
		return withHint(fmt.Errorf("no node is running on %s", e.dataDir), "start one with 'sios up --fleet-listen ADDR [--join ADDR]'")
	}
	switch sub {
	case "peers":
		var peers []fleet.Peer
		if err := admin.Do(ctx, "GET", "/admin/fleet/peers", nil, &peers); err != nil {
			return err
		}
		return showPeers(e, peers, *asJSON)
	case "routes":
		var routes map[string][]invoke.RouteCandidate
		if err := admin.Do(ctx, "GET", "/admin/fleet/routes", nil, &routes); err != nil {
			return err
		}
		return showRoutes(e, routes, *asJSON)
	}
	var raws []json.RawMessage
	if admin != nil {
		if err := admin.Do(ctx, "GET", "/admin/fleet/records", nil, &raws); err != nil {
			return err
		}
	} else if raws, err = e.ownFeed(); err != nil {
		return err
	}
	return showRecords(e, raws, *asJSON)
}

func showPeers(e *env, peers []fleet.Peer, asJSON bool) error {
	if asJSON {
		if peers == nil {
			peers = []fleet.Peer{}
		}
		return printJSON(e.stdout, peers)
	}
	if len(peers) == 0 {
		fmt.Fprintln(e.stdout, "no peers known yet")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tNAME\tINSTITUTION\tSTATE\tPOSTURE\tATTESTATION\tADDRESS\tBRAINS")
	for _, p := range peers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", p.NodeID, p.Name, p.Institution, p.State, p.Posture, p.Attestation, p.Addr, len(p.Brains))
	}
	return tw.Flush()
}

func showRoutes(e *env, routes map[string][]invoke.RouteCandidate, asJSON bool) error {
	if asJSON {
		return printJSON(e.stdout, routes)
	}
	ids := make([]string, 0, len(routes))
	for id := range routes {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "BRAIN\tCANDIDATES (best first)")
	for _, id := range ids {
		var cs []string
		for _, c := range routes[id] {
			s := c.NodeID
			if c.Local {
				s = "local"
			} else if c.State != fleet.StateAlive {
				s += " (" + c.State + ")"
			}
			cs = append(cs, s)
		}
		fmt.Fprintf(tw, "%s\t%s\n", id, strings.Join(cs, ", "))
	}
	return tw.Flush()
}

// shownRecord is the JSON form of one federation record.
type shownRecord struct {
	Node       string          `json:"node"`
	Seq        uint64          `json:"seq"`
	Kind       string          `json:"kind"`
	Time       string          `json:"time"`
	RecordHash string          `json:"record_hash"`
	Body       json.RawMessage `json:"body"`
}

// ownFeed reads this node's feed from disk, each record verified against the roots it
// trusts.
func (e *env) ownFeed() ([]json.RawMessage, error) {
	cert, _, err := e.loadCert()
	if err != nil {
		return nil, err
	}
	trust, _, err := fleet.LoadTrust(e.dataDir, *cert)
	if err != nil {
		return nil, err
	}
	files, err := filepath.Glob(filepath.Join(node.FeedDir(e.dataDir), "*.json"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	log := fleet.NewLog()
	var out []json.RawMessage
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		if _, err := log.Add(raw, trust); err != nil {
			return nil, fmt.Errorf("%s: %v", f, err)
		}
		out = append(out, raw)
	}
	return out, nil
}

func showRecords(e *env, raws []json.RawMessage, asJSON bool) error {
	shown := []shownRecord{}
	for _, raw := range raws {
		r, err := fleet.Parse(raw)
		if err != nil {
			return fmt.Errorf("record from the node: %v", err)
		}
		shown = append(shown, shownRecord{Node: r.Node, Seq: r.Seq, Kind: r.Kind, Time: r.Time,
			RecordHash: hex.EncodeToString(fleet.Hash(raw)), Body: r.Body})
	}
	if asJSON {
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
