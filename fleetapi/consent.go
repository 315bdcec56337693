package fleetapi

import (
	"fmt"
	"time"

	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/policy"
)

// Consent grants in calls (docs/consent.md): a call whose data crosses an institution's
// boundary carries its origin's grant in a fed-call/2 envelope, and the receiving node
// verifies it before it serves — the grant's form, its origin's signatures with the keys
// of the node it names (this node's own, the fleet log's, or the connecting node's
// certificate), its audience, scope, expiry and maximum against this call.

// callGrant checks the consent grant of a call that sends a principal's data to a brain
// of this node — a remote brain call or a decision call. A call from another
// institution carries its origin's grant for this node, this brain and this data; a
// call that carries one is held to it, whoever sent it: the use is this node's
// institution and node, from the envelope's origin, its tenant, invoke, its brain, its
// classification, now. It returns the verified grant (nil when none is needed and none
// carried), or the refusal, audited with its code.
func (a *API) callGrant(cert *identity.Certificate, env *fleet.Envelope, envelope []byte) (*consent.Grant, *fleet.CallResponse) {
	if env.Consent == nil && cert.RootID == a.cfg.Identity.Cert.RootID {
		return nil, nil
	}
	cl, _ := policy.ParseLevel(env.Classification)
	g, err := a.verifyGrant(cert, env, func(*consent.Grant) consent.Use {
		return consent.Use{Institution: a.cfg.Identity.Cert.RootID, Node: a.cfg.Identity.ID(), From: env.Origin, Tenant: env.Tenant,
			Action: consent.ActionInvoke, Brain: env.Brain, Classification: cl, Time: time.Now()}
	})
	if err != nil {
		return nil, a.refusal(cert.NodeID, envelope, invoke.Code(consent.CodeOf(err)), oneLine(err), oneLine(err))
	}
	return g, nil
}

// verifyGrant parses and verifies the grant env carries for the use useOf makes of it.
// A refusal is a *consent.Error (consent_required when env carries none).
func (a *API) verifyGrant(cert *identity.Certificate, env *fleet.Envelope, useOf func(*consent.Grant) consent.Use) (*consent.Grant, error) {
	if env.Consent == nil {
		return nil, &consent.Error{Code: consent.CodeRequired, Message: fmt.Sprintf(
			"node %s is of another institution (%s): its calls carry a consent grant of its principal's for this node (a %s envelope), and this one carries none",
			env.Origin, cert.RootID, fleet.EnvelopeVersion2)}
	}
	g, err := consent.Parse(env.Consent)
	if err != nil {
		return nil, err
	}
	if err := consent.Verify(g, a.signerOf(cert, g.Origin.Node), useOf(g)); err != nil {
		return nil, err
	}
	return g, nil
}

// signerOf is what this node knows of node, the origin a grant names: its own keys, the
// connecting node's (whose certificate chains to a root trusted now), or the fleet
// log's. An unknown node has no keys, and its grant cannot verify.
func (a *API) signerOf(cert *identity.Certificate, node string) consent.Signer {
	id := a.cfg.Identity
	switch {
	case node == id.ID():
		return consent.Signer{Key: id.Public(), Institution: id.Cert.RootID}
	case node == cert.NodeID:
		if pub, err := a.originKey(cert); err == nil {
			return consent.Signer{Key: pub, Institution: cert.RootID}
		}
	}
	var s consent.Signer
	if pub, ok := a.cfg.FleetLog.Key(node); ok {
		s.Key = pub
		if v, ok := a.cfg.FleetLog.NodeView(node); ok {
			s.Institution = v.Institution
		}
	}
	return s
}
