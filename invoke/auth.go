package invoke

import (
	"context"
	"net/netip"
	"sync"
	"time"

	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
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
)

// refusals counts authentication refusals per client address.
type refusals struct {
	mu          sync.Mutex
	bySource    map[netip.Addr]*refusalCount // guarded by mu
	lastRefresh time.Time                    // guarded by mu
}

type refusalCount struct {
	since time.Time // start of the window; its first refusal was recorded
	count int       // refusals since, not yet recorded
}

// Authenticate returns the principal holding an API key.
func (p *Pipeline) Authenticate(key string) (*policy.Principal, bool) {
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
	_, err := p.appendNow(ctx, &oar.Record{
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
