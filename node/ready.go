package node

import (
	"fmt"

	"github.com/sios-project/sios/api"
	"github.com/sios-project/sios/fleet"
)

// readiness is what /readyz checks: the ledger takes records, policies and brains
// are loaded, and — where the node is configured for a fleet — membership runs and,
// when it was told whom to join, at least one peer is alive.
func (n *Node) readiness() []api.Check {
	var checks []api.Check
	if err := n.ledger.Err(); err != nil {
		checks = append(checks, api.Check{Name: "ledger", Detail: err.Error()})
	} else {
		detail := fmt.Sprintf("taking records: %d entries, journal depth %d", n.ledger.Size(), n.ledger.Pending())
		if w := n.ledger.JournalWrites(); w != "" {
			detail += ", journal writes by " + w
		}
		checks = append(checks, api.Check{Name: "ledger", OK: true, Detail: detail})
	}
	np := n.policy.Len()
	checks = append(checks, api.Check{Name: "policies", OK: np > 0, Detail: fmt.Sprintf("%d in force", np)})
	nb := len(n.brains.All())
	checks = append(checks, api.Check{Name: "brains", OK: nb > 0, Detail: fmt.Sprintf("%d loaded", nb)})
	if n.cfg.FleetListen == "" {
		return checks
	}
	f := n.joined.Load()
	switch {
	case f == nil:
		checks = append(checks, api.Check{Name: "fleet", Detail: "membership has not started"})
	default:
		alive := 0
		for _, p := range f.Peers() {
			if p.State == fleet.StateAlive {
				alive++
			}
		}
		c := api.Check{Name: "fleet", OK: true, Detail: fmt.Sprintf("listening on %s, %d peers alive", f.Addr(), alive)}
		if len(n.cfg.Join) > 0 && alive == 0 {
			c.OK, c.Detail = false, fmt.Sprintf("listening on %s, no peer alive yet of those it was told to join (%d addresses)", f.Addr(), len(n.cfg.Join))
		}
		checks = append(checks, c)
	}
	return checks
}
