package invoke

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// Consent grants, made by a principal on its own node — the node that holds its data,
// the grant's origin — over its own tenant's data (docs/consent.md). Making one is a
// policy decision (consent.grant on a Sios::Consent, the grant in the context); the
// node signs it with its keys, records consent.grant with the grant among the record's
// parties, and keeps it in its store, where every use and the revocation are decided.

// NewGrant is what a principal asks to grant (POST /v1/consents). The grantor is the
// principal asking, the origin this node; the node sets the id and the times.
type NewGrant struct {
	// To is the audience: an institution's root id, or a principal there as ID@ROOTID.
	To string
	// ToNode optionally narrows the audience to one node of that institution.
	ToNode string
	// Action is consent.ActionInvoke (Brain is required) or consent.ActionMemoryRead
	// (Subjects are required).
	Action   string
	Brain    string
	Subjects []string
	// Max is the highest classification covered.
	Max     policy.Level
	Purpose string
	// ExpiresIn is how long from now the grant is valid, at most
	// consent.MaxGrantLifetime; it is counted in whole seconds.
	ExpiresIn time.Duration
	// Uses is how many times the grant may be used (0: until it expires or is revoked).
	Uses int
	// Retain lets the receiver keep what is released under a memory.read grant.
	Retain bool
}

// consentStore is the node's grant store, or the refusal a node without one gives.
func (p *Pipeline) consentStore() (*consent.Store, *Error) {
	if p.cfg.Consent == nil {
		return nil, errorf(CodeInternal, "this node keeps no consent grant store")
	}
	return p.cfg.Consent, nil
}

// self is this node as a grant's signer: its keys and its institution.
func (p *Pipeline) self() consent.Signer {
	id := p.cfg.Identity
	return consent.Signer{Key: id.Public(), Institution: id.Cert.RootID}
}

// ConsentGrant makes, signs, records and stores a grant of pr's, if policy lets pr make
// it. The consent.grant record is durable before the grant is stored and returned.
func (p *Pipeline) ConsentGrant(ctx context.Context, pr *policy.Principal, ng NewGrant) (*consent.Entry, *oar.Receipt, error) {
	store, e := p.consentStore()
	if e != nil {
		return nil, nil, e
	}
	if ok, wait := p.limits.Take("principal/"+pr.Tenant+"/"+pr.ID, p.cfg.PrincipalPerMinute, p.cfg.PrincipalBurst); !ok {
		return nil, nil, &Error{Code: CodeRateLimited, RetryAfter: wait,
			Message: fmt.Sprintf("principal %s is over its rate limit; retry after %s", pr.ID, wait.Round(time.Millisecond))}
	}
	g, e := p.newGrant(pr, ng, time.Now())
	if e != nil {
		return nil, nil, e
	}
	raw, serr := consent.Sign(p.cfg.Identity.Key, *g)
	if serr != nil {
		return nil, nil, &Error{Code: CodeInvalidRequest, Message: strings.TrimPrefix(serr.Error(), "grant "+g.ID+": ")}
	}
	parsed, serr := consent.Parse(raw)
	if serr != nil {
		return nil, nil, consentOutcome(serr)
	}
	d := p.cfg.Policy.Decide(policy.Request{
		Principal: *pr, Action: policy.ActionConsentGrant,
		Resource: policy.Resource{Type: policy.ResourceConsent, ID: parsed.ID, Classification: parsed.Scope.Max, Tenant: pr.Tenant},
		Context: policy.Context{Tenant: pr.Tenant, DataClassification: parsed.Scope.Max, TargetAccreditation: parsed.Scope.Max,
			Grant: parsed.CedarAttrs()},
	})
	rec := grantRecord(pr, parsed, raw, decisionOf(d))
	if !d.Allow {
		// A grant never made: its signed bytes go nowhere, its digest into the refusal.
		rec.Parties, rec.Inputs = nil, []oar.Digest{oar.DigestOf("grant", raw)}
		rc, err := p.appendNow(ctx, rec)
		if err != nil {
			p.cfg.Log.Error("audit consent refusal", "err", err)
			return nil, nil, errAudit()
		}
		return nil, nil, &Error{Code: CodePolicyDenied, Receipt: rc,
			Message: fmt.Sprintf("principal %s may not grant %s over %s data of tenant %s: %s", pr.ID, parsed.Scope.Action, parsed.Scope.Max, pr.Tenant, denialReason(d))}
	}
	// No record, no grant: the record is durable before the grant exists.
	rc, err := p.appendNow(ctx, rec)
	if err != nil {
		p.cfg.Log.Error("audit consent grant", "err", err)
		return nil, nil, errAudit()
	}
	entry, err := store.Add(raw, time.Now())
	if err != nil {
		p.cfg.Log.Error("consent store: add", "grant", parsed.ID, "err", err)
		return nil, nil, errorf(CodeInternal, "the grant could not be stored; it was not made")
	}
	return entry, rc, nil
}

// newGrant builds the grant ng asks for, issued now to the second.
func (p *Pipeline) newGrant(pr *policy.Principal, ng NewGrant, now time.Time) (*consent.Grant, *Error) {
	bad := func(param, format string, a ...any) *Error {
		return &Error{Code: CodeInvalidRequest, Param: param, Message: fmt.Sprintf(format, a...)}
	}
	id := p.cfg.Identity
	aud := consent.Audience{Institution: ng.To, Node: ng.ToNode}
	if strings.Contains(ng.To, "@") {
		_, root, ok := consent.SplitPrincipal(ng.To)
		if !ok {
			return nil, bad("to", "to %q is not ROOTID or ID@ROOTID (a principal id, '@', an institution's root id)", oar.Bounded(ng.To, 64))
		}
		aud = consent.Audience{Institution: root, Node: ng.ToNode, Principal: ng.To}
	}
	if aud.Institution == id.Cert.RootID {
		return nil, bad("to", "a grant lets data go to another institution, and %s is this node's own: within it, policy alone decides", aud.Institution)
	}
	if ng.ExpiresIn < time.Second {
		return nil, bad("expires_in", "expires_in must be at least one second")
	}
	if ng.ExpiresIn > consent.MaxGrantLifetime {
		return nil, bad("expires_in", "a grant is valid for at most %d days (MaxGrantLifetime)", int(consent.MaxGrantLifetime/(24*time.Hour)))
	}
	if !ng.Max.Valid() {
		return nil, bad("max_classification", "max_classification is required: OFFICIAL, OFFICIAL-SENSITIVE, SECRET or TOP-SECRET")
	}
	var subjects []string
	if len(ng.Subjects) > 0 {
		subjects = slices.Clone(ng.Subjects)
		slices.Sort(subjects)
		subjects = slices.Compact(subjects)
	}
	issued := now.UTC().Truncate(time.Second)
	return &consent.Grant{
		ID:       consent.NewID(),
		Grantor:  consent.Grantor{Principal: pr.ID, Tenant: pr.Tenant, Clearance: pr.Clearance},
		Origin:   consent.Origin{Node: id.ID(), Institution: id.Cert.RootID},
		Audience: aud,
		Scope:    consent.Scope{Action: ng.Action, Brain: ng.Brain, Subjects: subjects, Max: ng.Max},
		Purpose:  ng.Purpose,
		Issued:   oar.FormatTime(issued),
		Expires:  oar.FormatTime(issued.Add(ng.ExpiresIn.Truncate(time.Second))),
		Uses:     ng.Uses,
		Retain:   ng.Retain,
	}, nil
}

// grantRecord is the consent.grant record of a grant being made (or refused): the
// grant itself is its one party, so that the log alone shows what was granted.
func grantRecord(pr *policy.Principal, g *consent.Grant, raw []byte, d *oar.Decision) *oar.Record {
	detail := map[string]any{"grant": g.ID, "grant_hash": consent.Hash(raw), "audience": g.Audience.Institution,
		"action": g.Scope.Action, "expires": g.Expires, "retain": g.Retain}
	if g.Audience.Node != "" {
		detail["audience_node"] = g.Audience.Node
	}
	if g.Audience.Principal != "" {
		detail["audience_principal"] = g.Audience.Principal
	}
	if g.Scope.Brain != "" {
		detail["brain"] = g.Scope.Brain
	}
	if len(g.Scope.Subjects) > 0 {
		detail["subjects"] = len(g.Scope.Subjects) // named in the grant itself, not repeated
	}
	if g.Uses > 0 {
		detail["uses"] = g.Uses
	}
	return &oar.Record{Tenant: pr.Tenant, Actor: actorOf(pr), Action: oar.ActionConsentGrant, Resource: "consent/" + g.ID,
		Classification: g.Scope.Max.String(), Decision: d, Parties: []json.RawMessage{raw}, Detail: mustJSON(detail)}
}

// ConsentList returns pr's grants, oldest first; a principal with the role admin sees
// every grant this node made.
func (p *Pipeline) ConsentList(ctx context.Context, pr *policy.Principal) ([]*consent.Entry, error) {
	store, e := p.consentStore()
	if e != nil {
		return nil, e
	}
	all, err := store.List()
	if err != nil {
		p.cfg.Log.Error("consent store: list", "err", err)
		return nil, errorf(CodeInternal, "the grant store could not be read; see the node's log")
	}
	admin := slices.Contains(pr.Roles, "admin")
	out := []*consent.Entry{}
	for _, en := range all {
		if admin || mine(pr, en.Grant) {
			out = append(out, en)
		}
	}
	return out, nil
}

func mine(pr *policy.Principal, g *consent.Grant) bool {
	return g.Grantor.Principal == pr.ID && g.Grantor.Tenant == pr.Tenant
}

// ConsentRevoke revokes grant id, pr's own (or any, for an admin), at once: every later
// use is refused. Another principal's grant is unknown to pr, so that ids are not
// disclosed. The consent.revoke record is durable before the revocation. Revoking a
// revoked grant changes nothing and records nothing.
func (p *Pipeline) ConsentRevoke(ctx context.Context, pr *policy.Principal, id string) (*consent.Entry, *oar.Receipt, error) {
	store, e := p.consentStore()
	if e != nil {
		return nil, nil, e
	}
	en, err := store.Get(id)
	if err == nil && !mine(pr, en.Grant) && !slices.Contains(pr.Roles, "admin") {
		err = &consent.Error{Code: consent.CodeUnknown, Message: fmt.Sprintf("this node holds no grant %s of yours", oar.Bounded(id, 64))}
	}
	if err != nil {
		if consent.CodeOf(err) == "" {
			p.cfg.Log.Error("consent store: get", "grant", oar.Bounded(id, 64), "err", err)
		}
		return nil, nil, consentOutcome(err)
	}
	if !en.Revoked.IsZero() {
		return en, nil, nil
	}
	now := time.Now()
	rc, err := p.appendNow(ctx, &oar.Record{Tenant: en.Grant.Grantor.Tenant, Actor: actorOf(pr), Action: oar.ActionConsentRevoke,
		Resource: "consent/" + id, Decision: &oar.Decision{Effect: "allow", Policies: []string{"consent-grantor"}},
		Inputs: []oar.Digest{oar.DigestOf("grant", en.Raw)},
		Detail: mustJSON(map[string]any{"grant": id, "grant_hash": consent.Hash(en.Raw), "revoked": oar.FormatTime(now)})})
	if err != nil {
		p.cfg.Log.Error("audit consent revocation", "err", err)
		return nil, nil, errAudit()
	}
	en, err = store.Revoke(id, now)
	if err != nil {
		p.cfg.Log.Error("consent store: revoke", "grant", id, "err", err)
		return nil, nil, consentOutcome(err)
	}
	return en, rc, nil
}
