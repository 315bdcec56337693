package consent

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// Signer is what a verifier knows of the node that signed a grant: its keys and the
// root id of the institution that enrolled it, both from a source it trusts (the fleet
// log's verified identity record, or the node's own identity at the origin).
type Signer struct {
	Key         identity.PublicKey
	Institution string
}

// Use says who is using a grant, for what, and when. Every member is required but
// Principal, Brain and Subjects, which depend on the action.
type Use struct {
	// Institution is the root id of the institution receiving the data: a target's own
	// institution, or the institution of the person it is released to.
	Institution string
	// Node is the node id of the node receiving the data.
	Node string
	// Principal is the person the data is released to, as ID@ROOTID; empty when the
	// data goes to a brain rather than to a person (a remote brain call).
	Principal string
	// From is the node id of the node the data comes from (a remote call's origin, or
	// the holding node itself): it must be the grant's origin.
	From string
	// Tenant is the tenant whose data it is: it must be the grantor's.
	Tenant string
	// Action is ActionInvoke or ActionMemoryRead.
	Action string
	// Brain is the brain the data is sent to (ActionInvoke).
	Brain string
	// Subjects are the subjects whose memories are asked for (ActionMemoryRead).
	Subjects []string
	// Classification is the classification of the data sent, or the highest that a
	// search may release.
	Classification policy.Level
	// Time is the verifier's clock.
	Time time.Time
}

// Verify checks that g (as Parse returned it) was signed by signer, the node it names as
// origin, and that it covers u (Check). A refusal is an *Error whose Code is CodeForged, CodeExpired,
// CodeWrongAudience, CodeOutOfScope or CodeAboveMax, checked in that order; any other
// error means that u itself is incomplete (a caller's bug). Revocation and use counts
// are not decided here but at the origin (Store.Use).
func Verify(g *Grant, signer Signer, u Use) error {
	if err := u.check(); err != nil {
		return err
	}
	if err := verifySig(g, signer); err != nil {
		return err
	}
	return g.Check(u)
}

// VerifySignature checks only that signer, the node g names as origin and of the
// institution g names, signed g: what a node checks of a grant it explains rather than
// uses ('sios policy check'). A refusal is an *Error with CodeForged.
func VerifySignature(g *Grant, signer Signer) error { return verifySig(g, signer) }

// verifySig checks that signer is the node g names as origin, of the institution g
// names, and that its keys signed g.
func verifySig(g *Grant, signer Signer) error {
	if g.Sig == nil {
		return errorf(CodeForged, "grant %s is not signed", g.ID)
	}
	if signer.Key.MLDSA65 == nil {
		return errorf(CodeForged, "grant %s: no keys are known for its origin %s", g.ID, g.Origin.Node)
	}
	// Keys that verify but belong to another node would let one node speak for another.
	if id := signer.Key.ID(identity.NodePrefix); id != g.Origin.Node {
		return errorf(CodeForged, "grant %s names origin %s, but the keys given are %s's", g.ID, g.Origin.Node, id)
	}
	if signer.Institution != g.Origin.Institution {
		return errorf(CodeForged, "grant %s names origin institution %s, but its origin %s was enrolled by %s", g.ID, g.Origin.Institution, g.Origin.Node, signer.Institution)
	}
	signed, err := g.SignedBytes()
	if err != nil {
		return errorf(CodeMalformed, "grant %s: %v", g.ID, err)
	}
	if err := signer.Key.Verify(SignDomain, signed, *g.Sig); err != nil {
		return errorf(CodeForged, "grant %s: the signature of its origin %s does not verify (%v)", g.ID, g.Origin.Node, err)
	}
	return nil
}

// Check applies every rule of Verify but the signature: expiry, audience, scope and
// classification. The origin uses it to find which of its own grants covers a request.
func (g *Grant) Check(u Use) error {
	if err := u.check(); err != nil {
		return err
	}
	if g.expires.IsZero() {
		return errorf(CodeMalformed, "grant %s was not read with Parse: its times are unchecked", g.ID)
	}
	if !u.Time.Before(g.expires) {
		return errorf(CodeExpired, "grant %s expired at %s (now %s)", g.ID, g.Expires, oar.FormatTime(u.Time))
	}
	if g.issued.Sub(u.Time) > MaxClockSkew {
		return errorf(CodeExpired, "grant %s is not valid yet: issued %s, more than %v (MaxClockSkew) after this node's time %s", g.ID, g.Issued, MaxClockSkew, oar.FormatTime(u.Time))
	}
	a := g.Audience
	if u.Institution != a.Institution {
		return errorf(CodeWrongAudience, "grant %s is for institution %s, not %s", g.ID, a.Institution, u.Institution)
	}
	if a.Node != "" && u.Node != a.Node {
		return errorf(CodeWrongAudience, "grant %s is for node %s, not %s", g.ID, a.Node, u.Node)
	}
	if a.Principal != "" && u.Principal != a.Principal {
		who := u.Principal
		if who == "" {
			who = "a brain call, which names no principal"
		}
		return errorf(CodeWrongAudience, "grant %s is for principal %s, not %s", g.ID, a.Principal, short(who))
	}
	s := g.Scope
	if u.Action != s.Action {
		return errorf(CodeOutOfScope, "grant %s covers %s, not %s", g.ID, s.Action, short(u.Action))
	}
	switch s.Action {
	case ActionInvoke:
		if u.Brain != s.Brain {
			return errorf(CodeOutOfScope, "grant %s covers brain %s, not %s", g.ID, s.Brain, short(u.Brain))
		}
	case ActionMemoryRead:
		for _, sub := range u.Subjects {
			if _, found := slices.BinarySearch(s.Subjects, sub); !found {
				return errorf(CodeOutOfScope, "grant %s does not cover subject %q (it covers %d subjects)", g.ID, short(sub), len(s.Subjects))
			}
		}
	}
	if u.From != g.Origin.Node {
		return errorf(CodeOutOfScope, "grant %s covers data from node %s, not from %s", g.ID, g.Origin.Node, short(u.From))
	}
	if u.Tenant != g.Grantor.Tenant {
		return errorf(CodeOutOfScope, "grant %s covers tenant %s's data, not %s's", g.ID, g.Grantor.Tenant, short(u.Tenant))
	}
	if u.Classification > s.Max {
		return errorf(CodeAboveMax, "grant %s covers data up to %s, not %s", g.ID, s.Max, u.Classification)
	}
	return nil
}

// check refuses an incomplete use: an empty member would otherwise compare as "no
// restriction" or "lowest" and let data through.
func (u *Use) check() error {
	var missing []string
	for _, m := range []struct{ name, v string }{
		{"Institution", u.Institution}, {"Node", u.Node}, {"From", u.From}, {"Tenant", u.Tenant}, {"Action", u.Action},
	} {
		if m.v == "" {
			missing = append(missing, m.name)
		}
	}
	if u.Time.IsZero() {
		missing = append(missing, "Time")
	}
	switch u.Action {
	case ActionInvoke:
		if u.Brain == "" {
			missing = append(missing, "Brain")
		}
	case ActionMemoryRead:
		if len(u.Subjects) == 0 {
			missing = append(missing, "Subjects")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("consent: use is incomplete: %v empty", missing)
	}
	if !u.Classification.Valid() {
		return errors.New("consent: use classification is not a classification")
	}
	return nil
}
