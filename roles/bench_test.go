package roles

import (
	"fmt"
	"testing"
)

// BenchmarkOverlay is what every authenticated request pays for roles: the overlay of
// the principal's roles and the note of its presence, with 20 roles chartered in its
// tenant.
func BenchmarkOverlay(b *testing.B) {
	n := newNet(b)
	ms := n.institution(3)
	for i := range 20 {
		if _, err := ms[2].keeper.Define(ctx, as("admin"), Spec{Tenant: "trust", Name: fmt.Sprintf("role-%d", i), Holder: fmt.Sprintf("holder-%d", i),
			Successors: []string{"dr.li"}, Observers: ids(ms[:2]), K: 2, SuspectAfter: 3600, Wait: 3600, AcceptWithin: 3600}); err != nil {
			b.Fatal(err)
		}
	}
	k := ms[2].keeper
	holder, other := principal("holder-7", "clinician"), principal("dr.li", "clinician")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		pr := other
		if i%2 == 0 {
			pr = holder
		}
		k.Active(pr)
		if out := k.Overlay(pr); len(out.Roles) == 0 {
			b.Fatal("roles lost")
		}
	}
}
