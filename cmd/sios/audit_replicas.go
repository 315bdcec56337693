package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/sios-project/sios/admin"
	"github.com/sios-project/sios/node"
	"github.com/sios-project/sios/replication"
)

const replicasUsage = `usage: sios [--data DIR] audit replicas [--json]
       sios [--data DIR] audit replicas add NODEID [--cadence DURATION]
       sios [--data DIR] audit replicas remove NODEID
       sios [--data DIR] audit replicas resume NODEID   (after a fork: replicate from NODEID again)`

// runAuditReplicas lists the replicas of this node's log and the copies it keeps, or
// designates and withdraws replicas (in the running node and its config file).
func runAuditReplicas(ctx context.Context, e *env, args []string) error {
	if len(args) > 0 && (args[0] == "add" || args[0] == "remove") {
		return editReplicas(ctx, e, args[0], args[1:])
	}
	if len(args) > 0 && args[0] == "resume" {
		if len(args) != 2 {
			return usageError("%s", replicasUsage)
		}
		if ac := admin.Dial(e.dataDir); ac != nil {
			var list []replication.ReplicaStatus
			if err := ac.Do(ctx, "POST", "/admin/audit/replicas/resume", admin.ReplicaRequest{Node: args[1]}, &list); err != nil {
				return err
			}
		} else {
			rep, _, err := replication.OpenCopy(e.dataDir, args[1])
			if err != nil {
				return err
			}
			if err := rep.Resume(); err != nil {
				return err
			}
		}
		fmt.Fprintf(e.stdout, "replication from %s resumes; the fork evidence stays in %s\n", args[1], replication.ReplicasDir(e.dataDir))
		return nil
	}
	fs := newFlags(e, "audit replicas", "audit replicas [--json]")
	asJSON := fs.Bool("json", false, "print JSON")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return usageError("%s", replicasUsage)
	}
	var list []replication.ReplicaStatus
	if ac := admin.Dial(e.dataDir); ac != nil {
		if err := ac.Do(ctx, "GET", "/admin/audit/replicas", nil, &list); err != nil {
			return err
		}
	} else {
		cfg, err := node.LoadConfig(e.dataDir)
		if err != nil {
			return err
		}
		for _, r := range cfg.Replicas {
			list = append(list, replication.ReplicaStatus{NodeID: r.Node, Role: "replica", State: "node not running", Cadence: r.Cadence})
		}
	}
	if list == nil {
		list = []replication.ReplicaStatus{}
	}
	if *asJSON {
		return printJSON(e.stdout, list)
	}
	if len(list) == 0 {
		fmt.Fprintln(e.stdout, "no replicas designated and no copies kept: 'sios audit replicas add NODEID' designates one")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tROLE\tSIZE\tLAG\tCOSIGNED\tLAST VERIFIED\tSTATE")
	for _, r := range list {
		state := r.State
		if r.Progress != "" {
			state += " (" + r.Progress + ")"
		}
		if r.Error != "" {
			state += ": " + r.Error
		}
		cosigned := "-"
		if r.CosignedSize > 0 {
			cosigned = fmt.Sprint(r.CosignedSize)
			if r.Cosigned {
				cosigned += " (current)"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", r.NodeID, r.Role, r.Size, r.LagRecords, cosigned, r.LastVerified, state)
	}
	return tw.Flush()
}

func editReplicas(ctx context.Context, e *env, verb string, args []string) error {
	fs := newFlags(e, "audit replicas "+verb, "audit replicas "+verb+" NODEID [--cadence DURATION]")
	cadence := fs.Duration("cadence", 0, "how often this node tells the replica its checkpoint (default 5s)")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usageError("%s", replicasUsage)
	}
	c := replication.ReplicaConfig{Node: rest[0]}
	if *cadence < 0 || (*cadence > 0 && verb == "remove") {
		return usageError("--cadence must be positive, and only with add")
	}
	if *cadence > 0 {
		c.Cadence = cadence.String()
	}
	if ac := admin.Dial(e.dataDir); ac != nil {
		var list []replication.ReplicaStatus
		if err := ac.Do(ctx, "POST", "/admin/audit/replicas", admin.ReplicaRequest{Node: c.Node, Cadence: c.Cadence, Remove: verb == "remove"}, &list); err != nil {
			return err
		}
	} else if _, err := node.EditReplicas(e.dataDir, c, verb == "remove"); err != nil {
		return err
	}
	if verb == "remove" {
		fmt.Fprintf(e.stdout, "%s no longer receives this node's audit log (copies it holds stay with it)\n", c.Node)
	} else {
		d := replication.DefaultCadence
		if *cadence > 0 {
			d = *cadence
		}
		fmt.Fprintf(e.stdout, "%s keeps a copy of this node's audit log, told every %s\n", c.Node, d.Round(time.Millisecond))
	}
	return nil
}
