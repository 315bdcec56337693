package invoke

import (
	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// Decisions (package deliberate) ask several brains one question. Before anything is
// sent, the origin authorises every member with the decisions the authorise stage
// makes for an invocation of it; each member's brain then runs through Chat, which
// decides again. These methods expose those decisions without running a request.

// MayInvoke decides whether pr may send data of level data to the local brain id: read
// up, flow down to where the brain's data goes (its ceiling, its backend's and the
// node's accreditation), tenancy. ok is false when the node has no such brain.
func (p *Pipeline) MayInvoke(pr *policy.Principal, id string, data policy.Level) (d policy.Decision, ok bool) {
	b, ok := p.cfg.Brains.Get(id)
	if !ok {
		return policy.Decision{}, false
	}
	return p.decideInvoke(pr, b, data), true
}

// MaySend decides whether pr's data of level data may go to peer for its brain b: the
// brain decision as if it were local, flowing down to the lower of the brain's ceiling
// and the peer's posture, then peer.send. No consent grant goes with a decision's
// question: a member of another institution is refused by the default policy
// forbid-cross-institution-without-grant.
func (p *Pipeline) MaySend(pr *policy.Principal, b fleet.Brain, peer fleet.Peer, data policy.Level) policy.Decision {
	return p.decidePeer(pr, b, peer, data, nil)
}

// MayReadRecord decides whether pr may read record idx of this node's log (Cedar
// audit.read on a Sios::Record, with the data flowing to the principal).
func (p *Pipeline) MayReadRecord(pr *policy.Principal, idx uint64, rec *oar.Record) bool {
	return p.mayReadRecord(pr, idx, rec, pr.Clearance)
}

// ModelOf names the backend model that serves the local brain id, as a ballot records
// it: "builtin" for the builtin backend, else the brain's model or the node's default
// model; "" when the node has no such brain.
func (p *Pipeline) ModelOf(id string) string {
	b, ok := p.cfg.Brains.Get(id)
	switch {
	case !ok:
		return ""
	case p.isBuiltin(b):
		return brain.BackendBuiltin
	case b.Model != "":
		return b.Model
	case p.cfg.DefaultModel != "":
		return p.cfg.DefaultModel
	}
	return "unnamed"
}

// DenialReason says why a policy decision denied, in the words the pipeline's refusals
// use ("forbidden by forbid-flow-down", "no policy permits it").
func DenialReason(d policy.Decision) string { return denialReason(d) }
