package invoke

import (
	"context"
	"testing"
	"time"

	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/policy"
)

// BenchmarkRemoteCall is a brain call to a peer of the same institution (no grant) and
// to one of another institution under a grant: the difference is what consent costs the
// origin — finding the grant, its durable use and the consent.use record, both before
// the admission record.
func BenchmarkRemoteCall(b *testing.B) {
	for _, c := range []struct {
		name string
		same bool
	}{{"same-institution", true}, {"other-institution-under-grant", false}} {
		b.Run(c.name, func(b *testing.B) {
			h, ps := remoteHarnessOf(b, 1, c.same)
			h.p.cfg.PrincipalPerMinute, h.p.cfg.PrincipalBurst = 1<<30, 1<<30
			if !c.same {
				if _, _, err := h.p.ConsentGrant(context.Background(), principal("dr.okafor", policy.Secret), NewGrant{
					To: ps[0].peer.Institution, Action: consent.ActionInvoke, Brain: "lab-brain", Max: policy.Secret,
					Purpose: "benchmark", ExpiresIn: time.Hour}); err != nil {
					b.Fatal(err)
				}
			}
			ctx := context.Background()
			for b.Loop() {
				if err := h.p.Chat(ctx, ask("lab-brain", "x"), &sink{}); err != nil {
					b.Fatal(err)
				}
			}
			h.p.Wait()
		})
	}
}
