package console

import (
	"maps"
	"slices"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/invoke"
)

// The fleet page: the peers this node knows (state, institution, posture, how their
// identity is attested), the route table, and the institutions whose roots this node
// trusts. Brains are named only if the viewer may use them (the /v1/models list):
// peers' other brains are counted, not named, and routes to them are not listed.
// Peer addresses are shown to those who may read the node's own records.

func fleetPage() Page {
	return Page{Path: "/console/fleet", Title: "Fleet", Nav: true, Template: "fleet.html", Data: fleetData}
}

type peerRow struct {
	fleet.Peer
	Shown  []fleet.Brain // brains the viewer may use
	Hidden int           // brains they may not
}

type routeRow struct {
	Brain      string
	Candidates []invoke.RouteCandidate
}

type fleetView struct {
	Starting     bool
	Alone        bool
	Operator     bool
	Peers        []peerRow
	Routes       []routeRow
	Institutions []fleet.TrustedRoot
	TrustError   string
}

func fleetData(v *View) (any, error) {
	out := &fleetView{Operator: v.mayReadNodeRecords()}
	visible := v.visibleBrains()
	a := v.c.cfg.Admin()
	if a == nil {
		out.Starting = true
	} else {
		peers, err := a.Peers()
		out.Alone = err != nil
		for _, p := range peers {
			row := peerRow{Peer: p}
			if !out.Operator {
				row.Addr, row.API = "", ""
			}
			for _, b := range p.Brains {
				if visible[b.ID] {
					row.Shown = append(row.Shown, b)
				} else {
					row.Hidden++
				}
			}
			row.Brains = nil
			out.Peers = append(out.Peers, row)
		}
		routes := a.Routes()
		for _, id := range slices.Sorted(maps.Keys(routes)) {
			if visible[id] {
				out.Routes = append(out.Routes, routeRow{Brain: id, Candidates: routes[id]})
			}
		}
	}
	roots, err := v.c.cfg.Institutions()
	if err != nil {
		v.c.cfg.Log.Error("console: trust store", "err", err)
		out.TrustError = "the trust store could not be read; the node's log says why"
	}
	for _, r := range roots {
		if !out.Operator {
			r.File, r.EKFile = "", ""
		}
		out.Institutions = append(out.Institutions, r)
	}
	return out, nil
}
