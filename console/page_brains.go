package console

import (
	"math"

	"github.com/sios-project/sios/invoke"
)

// The brains page: the brains the viewer may use — exactly the list /v1/models gives
// them, so a brain above their clearance is never named — with each local brain's rate
// limit and what its bucket has let through and refused over the last minute (the
// node-wide perimeter, live), and the viewer's own limit across all brains.

func brainsPage() Page {
	return Page{Path: "/console/brains", Title: "Brains", Nav: true, Template: "brains.html", Data: brainsData}
}

type brainRow struct {
	invoke.Model
	Local            bool
	PerMinute, Burst int
	Taken, Refused   float64
	Available        float64
}

type brainsView struct {
	Brains    []brainRow
	PerMinute int // the viewer's own limit
	Burst     int
	Taken     float64
	Refused   float64
	Available float64
}

func brainsData(v *View) (any, error) {
	out := &brainsView{}
	for _, m := range v.c.cfg.Pipeline.Models(&v.P) {
		row := brainRow{Model: m}
		if limit, u, ok := v.c.cfg.Pipeline.BrainUsage(m.ID); ok && m.OwnedBy == "" {
			row.Local, row.PerMinute, row.Burst = true, limit.RequestsPerMinute, limit.Burst
			row.Taken, row.Refused, row.Available = u.TakenPerMinute, u.RefusedPerMinute, math.Floor(u.Available)
		}
		out.Brains = append(out.Brains, row)
	}
	perMinute, burst, use := v.c.cfg.Pipeline.PrincipalUsage(&v.P)
	out.PerMinute, out.Burst, out.Taken, out.Refused, out.Available = perMinute, burst, use.TakenPerMinute, use.RefusedPerMinute, math.Floor(use.Available)
	return out, nil
}
