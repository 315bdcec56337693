package invoke

import (
	"context"
	"slices"
	"testing"

	"github.com/sios-project/sios/policy"
)

func TestAuthorise(t *testing.T) {
	h := newHarness(t, "http://model", nil)
	for _, c := range []struct {
		name      string
		clearance policy.Level
		brain     string
		data      string
		allow     bool
		policy    string // a policy that must be named
	}{
		{"cleared", policy.Secret, "cyber-threat", "", true, "permit-tenant-members"},
		{"read up", policy.Official, "cyber-threat", "", false, "forbid-read-up"},
		// The model server is accredited SECRET: TOP-SECRET data may not flow to it.
		{"flow down to the backend", policy.TopSecret, "intelligence-analysis", "TOP-SECRET", false, "forbid-flow-down"},
	} {
		t.Run(c.name, func(t *testing.T) {
			inv := ask(c.brain, "x")
			inv.Principal.Clearance, inv.Classification = c.clearance, c.data
			if err := h.p.resolve(context.Background(), inv); err != nil {
				t.Fatal(err)
			}
			err := h.p.authorise(inv)
			if (err == nil) != c.allow {
				t.Fatalf("allowed=%v, want %v (%v)", err == nil, c.allow, err)
			}
			if !slices.Contains(inv.Decision.Policies, c.policy) {
				t.Fatalf("decision %+v does not name %s", inv.Decision, c.policy)
			}
			if err != nil && err.Code != CodePolicyDenied {
				t.Fatalf("code %s", err.Code)
			}
		})
	}
}

func TestModelsListsOnlyUsableBrains(t *testing.T) {
	h := newHarness(t, "builtin", nil)
	ids := func(l policy.Level) []string {
		var out []string
		for _, m := range h.p.Models(principal("u", l)) {
			out = append(out, m.ID)
		}
		return out
	}
	official, secret := ids(policy.Official), ids(policy.Secret)
	if !slices.Contains(official, "auto") || !slices.Contains(official, "education") {
		t.Fatalf("OFFICIAL sees %v", official)
	}
	if slices.Contains(official, "cyber-threat") || !slices.Contains(secret, "cyber-threat") {
		t.Fatal("a SECRET brain is listed by clearance")
	}
	// Every brain listed is one the principal may invoke.
	for _, id := range official[1:] {
		inv := ask(id, "x")
		inv.Principal.Clearance = policy.Official
		if err := h.p.resolve(context.Background(), inv); err != nil {
			t.Fatal(err)
		}
		if err := h.p.authorise(inv); err != nil {
			t.Fatalf("%s is listed but refused: %v", id, err)
		}
	}
}
