package consent_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/memory"
	"github.com/sios-project/sios/policy"
)

// TestCapsMatchTheirSources: the rules that restate another package's agree with it.
// (An external test: fleet and the pipeline may come to import this package.)
func TestCapsMatchTheirSources(t *testing.T) {
	if consent.MaxSubjectLen != memory.MaxNameBytes {
		t.Errorf("MaxSubjectLen %d != memory.MaxNameBytes %d: a subject the memory store holds could not be granted", consent.MaxSubjectLen, memory.MaxNameBytes)
	}
	if consent.MaxIDLen != fleet.MaxIDLen {
		t.Errorf("MaxIDLen %d != fleet.MaxIDLen %d", consent.MaxIDLen, fleet.MaxIDLen)
	}
	key, err := identity.GenerateKey(identity.KindNode)
	if err != nil {
		t.Fatal(err)
	}
	root, err := identity.GenerateKey(identity.KindRoot)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	grant := func(principal string) consent.Grant {
		return consent.Grant{
			Grantor:  consent.Grantor{Principal: principal, Tenant: "t", Clearance: policy.Official},
			Origin:   consent.Origin{Node: key.Public().ID(identity.NodePrefix), Institution: root.Public().ID(identity.RootPrefix)},
			Audience: consent.Audience{Institution: root.Public().ID(identity.RootPrefix)},
			Scope:    consent.Scope{Action: consent.ActionInvoke, Brain: "b", Max: policy.Official},
			Purpose:  "p", Issued: "2026-03-02T09:00:00Z", Expires: "2026-03-03T09:00:00Z",
		}
	}
	// Principal ids and tenants: a grant may name exactly the principals the principal
	// store holds.
	ps, err := policy.OpenPrincipals(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"a", "Z9", "dr.okafor", "okafor@root_x", "a-b_c.d", ".a", "-a", "_a", "@a", "a b", "a/b", "é", "",
		strings.Repeat("a", 128), strings.Repeat("a", 129), "a\n"} {
		_, _, err := ps.Add(policy.NewPrincipal{Tenant: fmt.Sprintf("t%d", i), ID: id, Clearance: "OFFICIAL"}, now)
		_, serr := consent.Sign(key, grant(id))
		if (err == nil) != (serr == nil) {
			t.Errorf("principal id %q: the principal store says %v, a grant says %v", id, err, serr)
		}
	}
}
