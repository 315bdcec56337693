package fleet

import (
	"errors"
	"slices"
	"testing"
)

// Un-pinning an institution's root drops its nodes' feeds and held records at once,
// keeps the other institution's, and refuses the dropped nodes' records afterwards.
func TestPruneDropsTheFeedsOfAnUntrustedInstitution(t *testing.T) {
	fx := newFixture(t)
	l := NewLog()
	a1, b1 := newFeed(t, fx.a1).standard(), newFeed(t, fx.b1).standard()
	mustAdd(t, l, fx.both, a1.recs...)
	mustAdd(t, l, fx.both, b1.recs...)
	// A record of b1's held for a missing predecessor goes too.
	b1.add(KindLimits, &LimitsBody{RequestsPerMinute: 1})
	held := b1.add(KindLimits, &LimitsBody{RequestsPerMinute: 2})
	if res, err := l.Add(held, fx.both); err != nil || res.Status != Held {
		t.Fatalf("held: %v %v", res, err)
	}
	if got := l.Untrusted(fx.both); len(got) != 0 {
		t.Fatalf("untrusted under both roots: %v", got)
	}
	if got := l.Untrusted(fx.onlyA); !slices.Equal(got, []string{fx.b1.ID()}) {
		t.Fatalf("untrusted under A alone: %v", got)
	}
	if got := l.Prune(fx.onlyA); !slices.Equal(got, []string{fx.b1.ID()}) {
		t.Fatalf("pruned %v, want b1", got)
	}
	if _, ok := l.NodeView(fx.b1.ID()); ok {
		t.Fatal("b1 is still in the view")
	}
	if _, ok := l.NodeView(fx.a1.ID()); !ok {
		t.Fatal("a1 was dropped with b1")
	}
	if l.nheld != 0 || len(l.held) != 0 {
		t.Fatalf("held records of b1 remain: %d", l.nheld)
	}
	if _, err := l.Add(b1.recs[0], fx.onlyA); !errors.Is(err, ErrUntrusted) {
		t.Fatalf("b1's identity record after pruning: %v", err)
	}
	if got := l.Prune(fx.onlyA); len(got) != 0 {
		t.Fatalf("a second prune dropped %v", got)
	}
	// Pinned again, the institution's feed is accepted from the start.
	mustAdd(t, l, fx.both, b1.recs[:len(b1.recs)-2]...)
}
