package consent

import (
	"slices"
	"testing"

	"github.com/sios-project/sios/memory"
	"github.com/sios-project/sios/policy"
)

func TestReleaseMaxIsTheMinimumOfFour(t *testing.T) {
	fx := newFixture()
	const (
		O  = policy.Official
		OS = policy.OfficialSensitive
		S  = policy.Secret
		TS = policy.TopSecret
	)
	for _, tc := range []struct {
		name                                  string
		grantMax, grantor, requester, posture policy.Level
		want                                  policy.Level
	}{
		{"the grant's maximum binds", OS, TS, TS, TS, OS},
		{"the grantor's clearance at the hospital binds", TS, O, TS, TS, O},
		{"her clearance at the practice binds", S, TS, OS, TS, OS},
		{"the practice's accreditation binds", TS, TS, TS, O, O},
		{"all equal", S, S, S, S, S},
		{"the story: OS grant, SECRET grantor, SECRET requester, SECRET practice", OS, S, S, S, OS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := fx.memoryGrant()
			g.Scope.Max = tc.grantMax
			got, err := ReleaseMax(&g, tc.grantor, tc.requester, tc.posture)
			if err != nil || got != tc.want {
				t.Fatalf("ReleaseMax = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	g := fx.memoryGrant()
	for i := range 4 {
		lv := []policy.Level{S, S, S}
		if i < 3 {
			lv[i] = 0
		} else {
			g.Scope.Max = 0
		}
		if _, err := ReleaseMax(&g, lv[0], lv[1], lv[2]); err == nil {
			t.Errorf("ReleaseMax with ceiling %d unset released something", i)
		}
	}
}

// TestReleasableFiltersMemories: only memories of the grantor's tenant, about a subject
// in scope, at or below the ceiling, leave; a SECRET canary never does under an
// OFFICIAL-SENSITIVE grant, and a lower requester clearance releases less.
func TestReleasableFiltersMemories(t *testing.T) {
	fx := newFixture()
	g := mustParse(t, mustSign(t, fx.hospital.node, fx.memoryGrant())) // cardiology; case-1187, case-2290; max OS
	ms := []memory.Memory{
		{ID: "m1", Tenant: "cardiology", Subject: "case-1187", Classification: policy.Official, Text: "echo normal"},
		{ID: "m2", Tenant: "cardiology", Subject: "case-2290", Classification: policy.OfficialSensitive, Text: "referral letter"},
		{ID: "m3", Tenant: "cardiology", Subject: "case-2290", Classification: policy.Secret, Text: "CANARY-SECRET"},
		{ID: "m4", Tenant: "cardiology", Subject: "case-5555", Classification: policy.Official, Text: "CANARY-OTHER-SUBJECT"},
		{ID: "m5", Tenant: "oncology", Subject: "case-1187", Classification: policy.Official, Text: "CANARY-OTHER-TENANT"},
		{ID: "m6", Tenant: "cardiology", Subject: "case-1187", Classification: 0, Text: "CANARY-UNCLASSIFIED"},
	}
	item := func(m memory.Memory) Item {
		return Item{Tenant: m.Tenant, Subject: m.Subject, Classification: m.Classification}
	}
	ids := func(ms []memory.Memory) []string {
		var out []string
		for _, m := range ms {
			out = append(out, m.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name      string
		requester policy.Level
		want      []string
	}{
		{"a SECRET-cleared requester gets up to the grant's maximum", policy.Secret, []string{"m1", "m2"}},
		{"an OFFICIAL requester gets less", policy.Official, []string{"m1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			max, err := ReleaseMax(g, policy.Secret, tc.requester, policy.Secret)
			if err != nil {
				t.Fatal(err)
			}
			got := ids(Releasable(g, max, ms, item))
			if !slices.Equal(got, tc.want) {
				t.Fatalf("released %v; want %v", got, tc.want)
			}
		})
	}
	// A ceiling above the grant's maximum cannot widen it.
	if got := ids(Releasable(g, policy.TopSecret, ms, item)); !slices.Equal(got, []string{"m1", "m2"}) {
		t.Fatalf("a ceiling above the grant's maximum released %v", got)
	}
	inv := mustParse(t, mustSign(t, fx.hospital.node, fx.invokeGrant()))
	if got := Releasable(inv, policy.TopSecret, ms, item); len(got) != 0 {
		t.Fatalf("a brain grant released memories: %v", ids(got))
	}
	if got := Releasable(g, 0, ms, item); len(got) != 0 {
		t.Fatalf("no ceiling released memories: %v", ids(got))
	}
}
