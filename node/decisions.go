package node

import (
	"context"

	"github.com/sios-project/sios/deliberate"
	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/policy"
)

// newDecisions builds the decision service over the node's pipeline, ledger, brains
// and panels (loaded at Open: a panel file that does not load stops start-up; re-read
// with the brains on SIGHUP).
func (n *Node) newDecisions() *deliberate.Service {
	return deliberate.New(deliberate.Config{
		Identity: n.id, Pipeline: n.pipeline, Ledger: n.ledger, Brains: n.brains, Panels: n.panels,
		FleetLog: n.fleetLog, OpenLog: n.openLog, Log: n.log,
	})
}

// apiGateway is what the API serves: the pipeline, and decisions.
type apiGateway struct {
	*invoke.Pipeline
	decisions *deliberate.Service
}

func (g apiGateway) Decide(ctx context.Context, p *policy.Principal, ask deliberate.Ask) (*deliberate.Result, error) {
	return g.decisions.Decide(ctx, p, ask)
}

func (g apiGateway) Decision(ctx context.Context, p *policy.Principal, id string) (*deliberate.Result, error) {
	return g.decisions.Get(ctx, p, id)
}
