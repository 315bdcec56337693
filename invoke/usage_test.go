package invoke

import (
	"context"
	"testing"

	"github.com/sios-project/sios/policy"
)

// The usage the console shows is read from the very buckets admit spends from.
func TestUsageFollowsAdmissions(t *testing.T) {
	h := newHarness(t, "builtin", func(c *Config) { c.PrincipalPerMinute, c.PrincipalBurst = 60, 2 })
	ctx := context.Background()
	for range 3 {
		h.p.Chat(ctx, ask("quick", "1+1"), &sink{}) // the third is over the principal's burst
	}
	perMinute, burst, u := h.p.PrincipalUsage(ask("quick", "").Principal)
	if perMinute != 60 || burst != 2 || u.TakenPerMinute != 2 || u.RefusedPerMinute != 1 || u.Available >= 1 {
		t.Fatalf("principal usage: %d/min burst %d %+v, want 2 taken, 1 refused, nothing left", perMinute, burst, u)
	}
	limit, bu, ok := h.p.BrainUsage("quick")
	if !ok || limit.RequestsPerMinute == 0 || bu.TakenPerMinute != 2 || bu.RefusedPerMinute != 0 {
		t.Fatalf("brain usage: %v %+v %+v, want the two admitted requests", ok, limit, bu)
	}
	if _, other, _ := h.p.BrainUsage("calculator"); other.TakenPerMinute != 0 {
		t.Fatalf("another brain's bucket counted them: %+v", other)
	}
	if _, _, ok := h.p.BrainUsage("no-such-brain"); ok {
		t.Fatal("usage of a brain the node does not hold")
	}
	if _, _, u := h.p.PrincipalUsage(principal("someone-else", policy.Official)); u.TakenPerMinute != 0 {
		t.Fatalf("another principal's bucket counted them: %+v", u)
	}
}
