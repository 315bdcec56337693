package invoke

import (
	"context"
	"fmt"
	"time"

	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/oar"
)

// The resolve stage: which brain serves the request. A brain id names a local brain,
// or else one that only peers offer; "auto" is the deterministic router, choosing
// among the domain brains the principal may use with this data. A peer's call is only
// ever served by a local brain: requests are not forwarded twice.

// remoteBrain is a brain offered by peers, as the origin sees it.
type remoteBrain struct {
	brain fleet.Brain
	peers []fleet.Peer // candidates, best first (Fleet.Candidates)
	all   []fleet.Peer // every peer offering it, reachable or not
}

func (p *Pipeline) resolve(ctx context.Context, inv *Invocation) *Error {
	inv.started = time.Now()
	lvl, err := parseClassification(inv.Classification)
	if err != nil {
		inv.Decision = &oar.Decision{Effect: "deny", Policies: []string{"input-validation"}}
		inv.note("reason", "X-Sios-Classification is not one classification")
		return err
	}
	inv.data = lvl
	if inv.Model == "auto" {
		allowed := func(c *brain.Brain) bool { return p.decideInvoke(inv.Principal, c, inv.data).Allow }
		router := p.cfg.Router
		if inv.data > p.cfg.EmbedAccreditation {
			router = nil // the prompt may not go to the embeddings backend: lexical routing
		}
		rctx, cancel := context.WithTimeout(ctx, routeTimeout)
		inv.brain, inv.route = router.Route(rctx, p.cfg.Brains.Catalogue(), lastUser(inv.Messages), allowed)
		cancel()
		inv.note("requested", "auto")
		inv.note("route", inv.route)
		return nil
	}
	if b, ok := p.cfg.Brains.Get(inv.Model); ok {
		inv.brain = b
		return nil
	}
	if inv.Peer == nil {
		if rb, ok := p.findRemote(inv.Model); ok {
			inv.remote = rb
			return nil
		}
	}
	inv.Decision = &oar.Decision{Effect: "deny"}
	inv.note("reason", "no such brain")
	return &Error{Code: CodeModelNotFound, Param: "model",
		Message: fmt.Sprintf("no brain %q: GET /v1/models lists the brains you may use", inv.Model)}
}

// findRemote looks a brain up among the peers' offers.
func (p *Pipeline) findRemote(id string) (*remoteBrain, bool) {
	f := p.fleetOf()
	if f == nil {
		return nil, false
	}
	return remoteBrainOf(f, id, f.Offered()[id])
}

// remoteBrainOf builds what the origin knows of brain id from the peers offering it.
func remoteBrainOf(f Fleet, id string, all []fleet.Peer) (*remoteBrain, bool) {
	if len(all) == 0 {
		return nil, false
	}
	rb := &remoteBrain{all: all, peers: f.Candidates(id)}
	for _, peer := range all {
		for _, b := range peer.Brains {
			if b.ID == id {
				rb.brain = b
			}
		}
	}
	return rb, true
}

// brainID is the id of the brain the request resolved to, or what it asked for.
func (inv *Invocation) brainID() string {
	switch {
	case inv.brain != nil:
		return inv.brain.ID
	case inv.remote != nil:
		return inv.remote.brain.ID
	}
	return inv.Model
}

// note adds a member to the detail of the request's record.
func (inv *Invocation) note(k, v string) { inv.noteAny(k, v) }

func (inv *Invocation) noteAny(k string, v any) {
	if inv.detail == nil {
		inv.detail = map[string]any{}
	}
	inv.detail[k] = v
}
