package invoke

import (
	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/policy"
	"github.com/sios-project/sios/ratelimit"
)

// Live use of the perimeter's rate limits, for the console: the buckets admit spends
// from (admit.go names them the same way), read without spending.

// BrainUsage is one local brain's rate limit and what its bucket has seen over the
// last minute; false for a brain this node does not hold.
func (p *Pipeline) BrainUsage(id string) (brain.RateLimit, ratelimit.Usage, bool) {
	b, ok := p.cfg.Brains.Get(id)
	if !ok {
		return brain.RateLimit{}, ratelimit.Usage{}, false
	}
	return b.RateLimit, p.limits.Usage("brain/"+b.ID, b.RateLimit.RequestsPerMinute, b.RateLimit.Burst), true
}

// PrincipalUsage is pr's own rate limit (across all brains) and what its bucket has
// seen over the last minute.
func (p *Pipeline) PrincipalUsage(pr *policy.Principal) (perMinute, burst int, u ratelimit.Usage) {
	return p.cfg.PrincipalPerMinute, p.cfg.PrincipalBurst,
		p.limits.Usage("principal/"+pr.Tenant+"/"+pr.ID, p.cfg.PrincipalPerMinute, p.cfg.PrincipalBurst)
}
