package invoke

import (
	"time"

	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/consent"
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
// and the peer's posture, then peer.send. grant is the principal's grant the data would
// go under (MemberGrant), seen by both decisions as context.grant; nil for a peer of
// this node's institution. Without one, the default policy
// forbid-cross-institution-without-grant refuses a peer of another institution.
func (p *Pipeline) MaySend(pr *policy.Principal, b fleet.Brain, peer fleet.Peer, data policy.Level, grant *consent.Entry) policy.Decision {
	return p.decidePeer(pr, b, peer, data, grant)
}

// MemberGrant finds the grant of pr's that lets its data of level data go to brain at
// peer, a node of another institution, exactly as a remote call of that brain finds
// one (consent.Store.Find): it covers the peer's institution and node, pr's tenant,
// action invoke, the brain and the classification, and may still be used. None is an
// *Error with code consent_required that says what is missing.
func (p *Pipeline) MemberGrant(pr *policy.Principal, brainID string, peer fleet.Peer, data policy.Level) (*consent.Entry, *Error) {
	return p.grantFor(pr, brainID, peer, data)
}

// UseMemberGrant consumes one use of grant g (as MemberGrant found it) for a decision's
// question, pr's data of level data, to go to brain at peer, and returns the grant as
// used with its consent.use record (detail: the grant, its hash, uses made and left,
// the peer, the brain and the decision), ready for the ledger, and the record's hash.
// The use is on disk when it returns; the caller makes the record durable before the
// question goes under the grant (with the decision.request record that links to it,
// so that both share one seal). A grant revoked, expired or used up since it was found
// is an *Error with its consent code.
func (p *Pipeline) UseMemberGrant(pr *policy.Principal, g *consent.Entry, peer, brainID, decisionHash string, data policy.Level) (*consent.Entry, *oar.Record, string, error) {
	if p.cfg.Consent == nil {
		return nil, nil, "", errorf(CodeConsentRequired, "brain %s is at %s, a node of another institution, and this node keeps no consent grants", brainID, peer)
	}
	en, err := p.cfg.Consent.Use(g.Grant.ID, time.Now())
	if err != nil {
		if consent.CodeOf(err) == "" {
			p.cfg.Log.Error("consent store: use", "grant", g.Grant.ID, "err", err)
		}
		return nil, nil, "", consentOutcome(err)
	}
	rec, h, err := p.useRecord(pr, en, data, map[string]any{"peer": peer, "brain": brainID, "decision": decisionHash})
	if err != nil {
		return nil, nil, "", err
	}
	return en, rec, h, nil
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
