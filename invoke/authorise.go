package invoke

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// The authorise stage: may this principal send this data to this brain? For a local
// brain, one Cedar decision (read up, flow down to where the brain's data goes,
// tenancy). For a brain only peers offer, the same decision as if it were local, then
// peer.send, for every candidate peer: the request may go only to peers policy allows.

// peerChoice is a peer the request may go to, with the policies that allowed it and,
// for a peer of another institution, the principal's grant that lets its data go there.
type peerChoice struct {
	peer     fleet.Peer
	policies []string
	grant    *consent.Entry
}

func (p *Pipeline) authorise(inv *Invocation) *Error {
	if inv.Consent != nil && (inv.remote != nil || inv.Peer != nil) {
		inv.Decision = &oar.Decision{Effect: "deny", Policies: []string{"consent"}}
		return &Error{Code: CodeInvalidRequest, Param: "X-Sios-Consent",
			Message: fmt.Sprintf("brain %s is not this node's: memories released under a grant are used here, for this node's brains only, and never sent on", inv.brainID())}
	}
	if inv.remote != nil {
		return p.authoriseRemote(inv)
	}
	b := inv.brain
	if inv.Consent != nil {
		// A grant the caller brings: checked here, before anything is recorded as
		// admitted; the holder is asked after admission (execute).
		if e := p.checkDescent(inv); e != nil {
			return e
		}
	}
	d := p.decideBrain(inv.Principal, b, inv.data, inv.grantAttrs())
	inv.Decision = decisionOf(d)
	if !d.Allow {
		return errorf(CodePolicyDenied, "principal %s may not use brain %s (%s) with %s data: %s",
			inv.Principal.ID, b.ID, b.Classification, inv.data, denialReason(d))
	}
	return p.authoriseRequest(inv)
}

// grantAttrs is context.grant for inv's own decision: the grant a peer's call came
// under, or the one its caller brought; nil for none.
func (inv *Invocation) grantAttrs() map[string]any {
	switch {
	case inv.Peer != nil && inv.Peer.Grant != nil:
		return inv.Peer.Grant.CedarAttrs()
	case inv.descent != nil:
		return inv.descent.grant.CedarAttrs()
	}
	return nil
}

// authoriseRequest applies the brain's file to what the request asks of it: the
// members a caller may set, images, and the caller's own tools (each allowed by the
// brain's client_tools and by policy).
func (p *Pipeline) authoriseRequest(inv *Invocation) *Error {
	b := inv.brain
	deny := func(policy string) { inv.Decision = &oar.Decision{Effect: "deny", Policies: []string{policy}} }
	for _, name := range inv.Params.set() {
		if !b.Allows(name) {
			deny("brain-parameters")
			return &Error{Code: CodeParameterNotAllowed, Param: name,
				Message: fmt.Sprintf("brain %s does not let callers set %s (its parameters: %s)", b.ID, name, strings.Join(b.Parameters, ", "))}
		}
		if pinned(b, name) {
			deny("brain-parameters")
			return &Error{Code: CodeParameterNotAllowed, Param: name, Message: fmt.Sprintf("brain %s pins %s", b.ID, name)}
		}
	}
	for i, m := range inv.Messages {
		for j, part := range m.Parts {
			if part.Type == "image_url" && !b.Images {
				deny("brain-images")
				return &Error{Code: CodeUnsupportedContent, Param: fmt.Sprintf("messages[%d].content[%d]", i, j),
					Message: fmt.Sprintf("brain %s takes no images (messages[%d].content[%d] is one)", b.ID, i, j)}
			}
		}
	}
	for i, t := range inv.Params.Tools {
		name := t.Function.Name
		if _, ours := tools[name]; ours {
			deny("brain-client-tools")
			return &Error{Code: CodeInvalidRequest, Param: fmt.Sprintf("tools[%d]", i),
				Message: fmt.Sprintf("tools[%d]: %q is the name of one of the node's own tools", i, name)}
		}
		listed := b.AllowsClientTool(name)
		d := p.cfg.Policy.Decide(policy.Request{
			Principal: *inv.Principal, Action: policy.ActionTool,
			Resource: policy.Resource{Type: policy.ResourceTool, ID: name},
			Context: policy.Context{Tenant: inv.Principal.Tenant, ToolAllowed: listed,
				DataClassification: inv.data, TargetAccreditation: p.flowsTo(inv)},
		})
		if !listed || !d.Allow {
			why := d.Reasons
			if !listed {
				why = append([]string{"brain-client-tools"}, why...)
			}
			inv.Decision = &oar.Decision{Effect: "deny", Policies: why}
			return &Error{Code: CodePolicyDenied, Param: fmt.Sprintf("tools[%d]", i),
				Message: fmt.Sprintf("tool %q may not be offered to brain %s: %s", oar.Bounded(name, 64), b.ID, strings.Join(why, ", "))}
		}
	}
	return nil
}

// pinned says whether the brain fixes the member name.
func pinned(b *brain.Brain, name string) bool {
	switch name {
	case "temperature":
		return b.Pin.Temperature != nil
	case "top_p":
		return b.Pin.TopP != nil
	case "frequency_penalty":
		return b.Pin.FrequencyPenalty != nil
	case "presence_penalty":
		return b.Pin.PresencePenalty != nil
	case "seed":
		return b.Pin.Seed != nil
	}
	return false
}

func (p *Pipeline) authoriseRemote(inv *Invocation) *Error {
	rb := inv.remote
	b := rb.brain
	if len(rb.peers) == 0 {
		var where []string
		for _, peer := range rb.all {
			where = append(where, fmt.Sprintf("%s (%s)", peer.NodeID, peer.State))
		}
		inv.Decision = &oar.Decision{Effect: "deny", Policies: []string{"fleet-route"}}
		inv.note("reason", "no reachable peer offers the brain")
		return errorf(CodeRemoteUnavailable, "brain %s is offered only by peers, and none is reachable now: %s", b.ID, strings.Join(where, ", "))
	}
	var denied policy.Decision
	var missing *Error // why no grant covers the first peer of another institution
	for _, peer := range rb.peers {
		var grant *consent.Entry
		if peer.Institution != p.cfg.Identity.Cert.RootID {
			// The principal's data would leave the institution: only under its grant.
			g, e := p.findGrant(inv, peer)
			if e != nil {
				if missing == nil {
					missing = e
				}
				continue
			}
			grant = g
		}
		if d := p.decidePeer(inv.Principal, b, peer, inv.data, grant); d.Allow {
			inv.peers = append(inv.peers, peerChoice{peer: peer, policies: d.Reasons, grant: grant})
		} else if denied.Reasons == nil && denied.Errors == nil {
			denied = d
		}
	}
	if len(inv.peers) == 0 && missing != nil && denied.Reasons == nil && denied.Errors == nil {
		inv.Decision = &oar.Decision{Effect: "deny", Policies: []string{"consent"}}
		inv.note("code", string(missing.Code))
		return missing
	}
	if len(inv.peers) == 0 {
		inv.Decision = &oar.Decision{Effect: "deny", Policies: denied.Reasons}
		why := "no policy permits it"
		if len(denied.Reasons) > 0 {
			why = "forbidden by " + strings.Join(denied.Reasons, ", ")
		}
		return errorf(CodePolicyDenied, "principal %s may not send %s data to any peer offering brain %s (%s): %s",
			inv.Principal.ID, inv.data, b.ID, b.Classification, why)
	}
	inv.Decision = &oar.Decision{Effect: "allow", Policies: inv.peers[0].policies}
	return nil
}

// decideInvoke asks the policy engine whether pr may send data of level data to b.
func (p *Pipeline) decideInvoke(pr *policy.Principal, b *brain.Brain, data policy.Level) policy.Decision {
	return p.decideBrain(pr, b, data, nil)
}

// decideBrain is decideInvoke with a verified grant as context.grant (nil: none).
func (p *Pipeline) decideBrain(pr *policy.Principal, b *brain.Brain, data policy.Level, grant map[string]any) policy.Decision {
	lvl, err := policy.ParseLevel(b.Classification)
	if err != nil {
		return policy.Decision{Errors: []string{err.Error()}}
	}
	return p.cfg.Policy.Decide(policy.Request{
		Principal: *pr,
		Action:    policy.ActionInvoke,
		Resource:  policy.Resource{Type: policy.ResourceBrain, ID: b.ID, Classification: lvl, Kind: b.Kind},
		Context:   policy.Context{Tenant: pr.Tenant, DataClassification: data, TargetAccreditation: p.accreditation(b, lvl), Grant: grant},
	})
}

// accreditation is where a brain's data flows: the lower of the brain's ceiling and its
// backend's accreditation, capped by the node's own. The builtin backend never leaves
// the process.
func (p *Pipeline) accreditation(b *brain.Brain, brainLvl policy.Level) policy.Level {
	if p.cfg.Accreditation.Valid() {
		brainLvl = min(brainLvl, p.cfg.Accreditation)
	}
	if p.isBuiltin(b) {
		return brainLvl
	}
	return min(brainLvl, p.cfg.BackendAccreditation)
}

// findGrant finds the grant of inv's principal that lets its data go to peer, a node
// of another institution, for inv's brain at inv's classification: one that covers
// the use and may still be used. None is consent_required, saying what is missing.
func (p *Pipeline) findGrant(inv *Invocation, peer fleet.Peer) (*consent.Entry, *Error) {
	return p.grantFor(inv.Principal, inv.remote.brain.ID, peer, inv.data)
}

// grantFor finds the grant of pr's that lets its data of level data go to brain at peer,
// a node of another institution (consent.Store.Find): one that covers the use and may
// still be used. None is consent_required, saying what is missing.
func (p *Pipeline) grantFor(pr *policy.Principal, brainID string, peer fleet.Peer, data policy.Level) (*consent.Entry, *Error) {
	if p.cfg.Consent == nil {
		return nil, errorf(CodeConsentRequired, "brain %s is at %s, a node of another institution, and this node keeps no consent grants", brainID, peer.NodeID)
	}
	e, err := p.cfg.Consent.Find(pr.ID, consent.Use{
		Institution: peer.Institution, Node: peer.NodeID, From: p.cfg.Identity.ID(), Tenant: pr.Tenant,
		Action: consent.ActionInvoke, Brain: brainID, Classification: data, Time: time.Now(),
	})
	if err != nil {
		if consent.CodeOf(err) == "" {
			p.cfg.Log.Error("consent store: find", "err", err)
		}
		return nil, consentOutcome(err)
	}
	return e, nil
}

// grantAttrs is context.grant for a grant, nil for none.
func grantAttrs(e *consent.Entry) map[string]any {
	if e == nil {
		return nil
	}
	return e.Grant.CedarAttrs()
}

// decidePeer asks policy whether pr's data of level data may go to peer for brain b:
// the brain decision as if it were local (read up, flow down to the lower of the
// brain's ceiling and the peer's posture, tenancy), then peer.send. Both see the grant
// the data would go under, if any, as context.grant.
func (p *Pipeline) decidePeer(pr *policy.Principal, b fleet.Brain, peer fleet.Peer, data policy.Level, grant *consent.Entry) policy.Decision {
	bl, err1 := policy.ParseLevel(b.Classification)
	pl, err2 := policy.ParseLevel(peer.Posture)
	if err := errors.Join(err1, err2); err != nil {
		return policy.Decision{Errors: []string{fmt.Sprintf("peer %s: %v", peer.NodeID, err)}}
	}
	d := p.cfg.Policy.Decide(policy.Request{
		Principal: *pr, Action: policy.ActionInvoke,
		Resource: policy.Resource{Type: policy.ResourceBrain, ID: b.ID, Classification: bl, Kind: b.Kind},
		Context:  policy.Context{Tenant: pr.Tenant, DataClassification: data, TargetAccreditation: min(bl, pl), Grant: grantAttrs(grant)},
	})
	if !d.Allow {
		return d
	}
	return p.cfg.Policy.Decide(policy.Request{
		Principal: *pr, Action: policy.ActionPeerSend,
		Resource: policy.Resource{Type: policy.ResourcePeer, ID: peer.NodeID, Classification: pl,
			Institution: peer.Institution, Attestation: peer.Attestation, SameInstitution: peer.Institution == p.cfg.Identity.Cert.RootID},
		Context: policy.Context{Tenant: pr.Tenant, DataClassification: data, TargetAccreditation: pl, Grant: grantAttrs(grant)},
	})
}

func decisionOf(d policy.Decision) *oar.Decision {
	return &oar.Decision{Effect: d.Effect(), Policies: d.Reasons}
}

// denialReason says why a decision denied, for the caller.
func denialReason(d policy.Decision) string {
	switch {
	case len(d.Reasons) > 0:
		return "forbidden by " + strings.Join(d.Reasons, ", ")
	case len(d.Errors) > 0:
		return "the request could not be evaluated (" + strings.Join(d.Errors, "; ") + ")"
	}
	return "no policy permits it"
}
