package console

import (
	"encoding/hex"
	"errors"
	"time"

	"github.com/sios-project/sios/api"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/sso"
)

// The node page: its identity, how its key is held (attestation), its posture and
// accreditation, and its health. Identity, attestation and posture are what the node
// publishes to its fleet anyway: everyone signed in sees them. Health — addresses,
// the backend, the log's state, identity providers' keys, peers — is shown to those
// who may read the node's own audit records, where the same facts are recorded.

func nodePage() Page {
	return Page{Path: "/console/node", Title: "Node", Nav: true, Template: "node.html", Data: nodeData}
}

type nodeView struct {
	Info     NodeInfo
	Operator bool // sees the health and the addresses
	Health   *nodeHealth
}

type nodeHealth struct {
	Checks         []api.Check // what /readyz checks
	Ready          bool
	Starting       bool // the node has not finished starting (its fleet)
	LogSize        uint64
	Checkpoint     uint64
	CheckpointRoot string
	LogError       string
	Policies       int
	Brains         int
	Principals     int
	Sessions       int
	Alone          bool
	Peers          map[string]int // by state
	Issuers        []sso.IssuerStatus
	Uptime         time.Duration
}

func nodeData(v *View) (any, error) {
	c := v.c
	out := &nodeView{Info: c.cfg.Node, Operator: v.mayReadNodeRecords()}
	if !out.Operator {
		out.Info.Backend, out.Info.Listen, out.Info.FleetListen = "", "", ""
		return out, nil
	}
	h := &nodeHealth{Policies: c.cfg.Policy.Len(), Brains: len(c.cfg.Brains.All()), Principals: len(c.cfg.Principals.List()),
		Sessions: c.sessions.count(), Uptime: c.cfg.Now().Sub(c.cfg.Node.Started).Round(time.Second)}
	if r, err := c.cfg.OpenLog(); err == nil {
		cp := r.Checkpoint()
		h.Checkpoint, h.CheckpointRoot = cp.Size, hex.EncodeToString(cp.Root)
	} else if !errors.Is(err, ledger.ErrEmpty) {
		h.LogError = "the log's checkpoint could not be read or verified; the node's log says why"
		c.cfg.Log.Error("console: open the log", "err", err)
	}
	if a := c.cfg.Admin(); a == nil {
		h.Starting = true
	} else {
		h.LogSize = a.Status().LogSize
		if peers, err := a.Peers(); err != nil {
			h.Alone = true
		} else {
			h.Peers = map[string]int{fleet.StateAlive: 0, fleet.StateSuspect: 0, fleet.StateDead: 0}
			for _, p := range peers {
				h.Peers[p.State]++
			}
		}
	}
	if c.cfg.SSO != nil {
		h.Issuers = c.cfg.SSO()
	}
	if c.cfg.Readiness != nil {
		h.Checks, h.Ready = c.cfg.Readiness(), true
		for _, ch := range h.Checks {
			h.Ready = h.Ready && ch.OK
		}
	}
	out.Health = h
	return out, nil
}
