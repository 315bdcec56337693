package invoke

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
	"github.com/sios-project/sios/sso"
)

// Authentication at the API's door. A request whose key the node does not know is
// refused and recorded — but a flood of wrong keys must not flood the log, so refusals
// are aggregated per client address: the first refusal from an address is recorded at
// once, later ones in one record per refusalWindow that counts them. And a key the node
// does not know makes it re-read its principals (a principal added by the CLI while the
// node runs is seen at once) at most once per refreshEvery.

const (
	// refusalWindow is how often refusals from one address are recorded, at most.
	refusalWindow = time.Minute
	// maxRefusalSources bounds the addresses whose refusals are being counted.
	maxRefusalSources = 4096
	// refreshEvery bounds how often an unknown key re-reads the principals file.
	refreshEvery = time.Second
	// maxSignIns bounds the OIDC tokens remembered as signed in (then it starts over).
	maxSignIns = 100_000
)

// refusals counts authentication refusals per client address.
type refusals struct {
	mu          sync.Mutex
	tokens      map[[32]byte]time.Time       // guarded by mu; OIDC tokens whose sign-in is recorded
	bySource    map[netip.Addr]*refusalCount // guarded by mu
	lastRefresh time.Time                    // guarded by mu
}

type refusalCount struct {
	since time.Time // start of the window; its first refusal was recorded
	count int       // refusals since, not yet recorded
}

// Authenticate returns the principal a bearer token stands for: an API key of the
// principal store, or — with single sign-on configured — an OIDC token of a configured
// issuer, mapped to a tenant, clearance and roles by the operator's rules. A refusal is
// an *Error: invalid_api_key or invalid_token (401), unmapped_identity (403).
func (p *Pipeline) Authenticate(ctx context.Context, bearer string) (*policy.Principal, error) {
	if p.cfg.SSO != nil && !strings.HasPrefix(bearer, policy.APIKeyPrefix) && sso.LooksLikeJWT(bearer) {
		id, err := p.cfg.SSO.Authenticate(ctx, bearer)
		var ue *sso.UnmappedError
		switch {
		case errors.As(err, &ue):
			if err := p.unmapped(ctx, bearer, ue); err != nil {
				return nil, err
			}
			return nil, &Error{Code: CodeUnmappedIdentity, Message: "the identity provider vouched for this user, but no rule of this node grants them anything"}
		case err != nil:
			p.cfg.Log.Info("bearer token refused", "reason", oar.Bounded(err.Error(), oar.MaxOutsideValue))
			return nil, &Error{Code: CodeInvalidToken, Message: "the bearer token is not one a configured identity provider issued for this node, or has expired"}
		}
		if err := p.signedIn(ctx, id); err != nil {
			return nil, err
		}
		pr := id.Principal
		return p.withRoles(&pr), nil
	}
	pr, ok := p.authenticateKey(bearer)
	if !ok {
		return nil, &Error{Code: CodeInvalidKey, Message: "invalid API key"}
	}
	return p.withRoles(pr), nil
}

// signedIn records the first request of each OIDC token: who, by which issuer and
// rule (never the token). Later requests are recorded under the principal's id. A
// sign-in that cannot be recorded is not admitted (audit_unavailable).
func (p *Pipeline) signedIn(ctx context.Context, id *sso.Identity) error {
	h := sha256.Sum256([]byte(id.IssuerURL + "\n" + id.Subject + "\n" + id.TokenID + "\n" + id.Expires.String()))
	p.auth.mu.Lock()
	if p.auth.tokens == nil || len(p.auth.tokens) >= maxSignIns {
		p.auth.tokens = map[[32]byte]time.Time{}
	}
	_, seen := p.auth.tokens[h]
	p.auth.tokens[h] = id.Expires
	p.auth.mu.Unlock()
	if seen {
		return nil
	}
	if err := p.writeNow(ctx, &oar.Record{
		Tenant: id.Principal.Tenant, Actor: oar.Actor{ID: id.Principal.ID, Clearance: id.Principal.Clearance.String()},
		Action: oar.ActionSSOSignIn, Resource: "issuer/" + oar.Bounded(id.Issuer, oar.MaxOutsideValue),
		Decision: &oar.Decision{Effect: "allow", Policies: []string{fmt.Sprintf("oidc-rule-%d", id.Rule)}},
		Detail: mustJSON(map[string]any{"issuer": oar.Bounded(id.IssuerURL, oar.MaxOutsideValue), "subject": oar.Bounded(id.Subject, oar.MaxOutsideValue),
			"token_id": oar.Bounded(id.TokenID, oar.MaxOutsideValue), "expires": oar.FormatTime(id.Expires), "roles": id.Principal.Roles}),
	}); err != nil {
		p.auth.mu.Lock()
		delete(p.auth.tokens, h) // the next request tries to record it again
		p.auth.mu.Unlock()
		p.cfg.Log.Error("audit sign-in", "err", err)
		return &Error{Code: CodeAuditFailed, Message: "the sign-in could not be recorded: nothing was served"}
	}
	return nil
}

// unmapped records, once per token, a genuine user whom no rule grants anything:
// issuer, subject and the reason (never the token). Only a configured issuer's
// signed tokens get here, so these records are not a flood an anonymous caller controls.
func (p *Pipeline) unmapped(ctx context.Context, bearer string, ue *sso.UnmappedError) error {
	h := sha256.Sum256([]byte("unmapped\n" + bearer))
	p.auth.mu.Lock()
	if p.auth.tokens == nil || len(p.auth.tokens) >= maxSignIns {
		p.auth.tokens = map[[32]byte]time.Time{}
	}
	_, seen := p.auth.tokens[h]
	p.auth.tokens[h] = time.Time{}
	p.auth.mu.Unlock()
	if seen {
		return nil
	}
	if err := p.writeNow(ctx, &oar.Record{
		Actor: oar.Actor{ID: "anonymous"}, Action: oar.ActionAuthRefuse, Resource: "issuer/" + oar.Bounded(ue.Issuer, oar.MaxOutsideValue),
		Decision: &oar.Decision{Effect: "deny"},
		Detail: mustJSON(map[string]any{"reason": "an identity provider's user no rule grants anything", "issuer": oar.Bounded(ue.Issuer, oar.MaxOutsideValue),
			"subject": oar.Bounded(ue.Subject, oar.MaxOutsideValue), "why": oar.Bounded(ue.Reason, oar.MaxOutsideValue)}),
	}); err != nil {
		p.auth.mu.Lock()
		delete(p.auth.tokens, h)
		p.auth.mu.Unlock()
		p.cfg.Log.Error("audit unmapped sign-in", "err", err)
		return &Error{Code: CodeAuditFailed, Message: "the refusal could not be recorded"}
	}
	return nil
}

// authenticateKey returns the principal holding an API key.
func (p *Pipeline) authenticateKey(key string) (*policy.Principal, bool) {
	if pr, ok := p.cfg.Principals.Authenticate(key); ok {
		return pr, true
	}
	p.auth.mu.Lock()
	refresh := time.Since(p.auth.lastRefresh) >= refreshEvery
	if refresh {
		p.auth.lastRefresh = time.Now()
	}
	p.auth.mu.Unlock()
	if !refresh {
		return nil, false
	}
	if err := p.cfg.Principals.Refresh(); err != nil {
		p.cfg.Log.Error("reload principals", "err", err)
		return nil, false
	}
	return p.cfg.Principals.Authenticate(key)
}

// RefuseAuthentication records a request refused for its key (none, or one the node
// does not know) from a client address, aggregated per address. It never records the
// key. It reports whether the refusal is recorded or counted for a record to come;
// false means the ledger could not take it.
func (p *Pipeline) RefuseAuthentication(ctx context.Context, addr, reason string) bool {
	src := netip.Addr{}
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		src = ap.Addr().Unmap()
	}
	now := time.Now()
	var due []refusalRecord
	p.auth.mu.Lock()
	if p.auth.bySource == nil {
		p.auth.bySource = map[netip.Addr]*refusalCount{}
	}
	c := p.auth.bySource[src]
	if c != nil && now.Sub(c.since) < refusalWindow {
		c.count++
		p.auth.mu.Unlock()
		return true
	}
	if c != nil && c.count > 0 {
		due = append(due, refusalRecord{src, c.count, c.since})
	}
	if c == nil && len(p.auth.bySource) >= maxRefusalSources {
		due = append(due, p.takeRefusalsLocked(time.Time{})...)
	}
	p.auth.bySource[src] = &refusalCount{since: now}
	p.auth.mu.Unlock()
	// The first refusal of a window is recorded at once; the others are counted.
	due = append(due, refusalRecord{src, 1, now})
	ok := true
	for _, r := range due {
		ok = p.recordRefusals(ctx, r, reason) && ok
	}
	return ok
}

// FlushRefusals records the refusals counted in windows that have ended (all of them,
// at shutdown). The node calls it every refusalWindow.
func (p *Pipeline) FlushRefusals(ctx context.Context, all bool) {
	cutoff := time.Now().Add(-refusalWindow)
	if all {
		cutoff = time.Now().Add(time.Hour)
	}
	p.auth.mu.Lock()
	due := p.takeRefusalsLocked(cutoff)
	p.auth.mu.Unlock()
	for _, r := range due {
		p.recordRefusals(ctx, r, "wrong or missing API key")
	}
}

// takeRefusalsLocked removes the counts of windows that started before cutoff (all,
// for the zero time) and returns those with refusals still to record.
func (p *Pipeline) takeRefusalsLocked(cutoff time.Time) []refusalRecord {
	var due []refusalRecord
	for src, c := range p.auth.bySource {
		if !cutoff.IsZero() && !c.since.Before(cutoff) {
			continue
		}
		if c.count > 0 {
			due = append(due, refusalRecord{src, c.count, c.since})
		}
		delete(p.auth.bySource, src)
	}
	return due
}

type refusalRecord struct {
	src   netip.Addr
	n     int
	since time.Time
}

func (p *Pipeline) recordRefusals(ctx context.Context, r refusalRecord, reason string) bool {
	resource := "address/unknown"
	if r.src.IsValid() {
		resource = "address/" + r.src.String()
	}
	err := p.writeNow(ctx, &oar.Record{
		Actor: oar.Actor{ID: "anonymous"}, Action: oar.ActionAuthRefuse, Resource: resource,
		Decision: &oar.Decision{Effect: "deny", Policies: []string{"api-key"}},
		Detail:   mustJSON(map[string]any{"reason": reason, "refusals": r.n, "since": oar.FormatTime(r.since)}),
	})
	if err != nil {
		p.cfg.Log.Error("audit authentication refusal", "err", err)
		return false
	}
	return true
}
