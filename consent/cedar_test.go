package consent

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cedar-policy/cedar-go/types"
	"github.com/sios-project/sios/policy"
)

// cedarValue converts CedarAttrs' plain values as the policy package would.
func cedarValue(t testing.TB, v any) types.Value {
	switch x := v.(type) {
	case string:
		return types.String(x)
	case int64:
		return types.Long(x)
	case bool:
		return types.Boolean(x)
	case []string:
		vs := make([]types.Value, len(x))
		for i, s := range x {
			vs[i] = types.String(s)
		}
		return types.NewSet(vs...)
	}
	t.Fatalf("CedarAttrs holds a %T, which has no Cedar type here", v)
	return nil
}

func TestCedarAttrs(t *testing.T) {
	fx := newFixture()
	g := mustParse(t, mustSign(t, fx.hospital.node, fx.memoryGrant()))
	a := g.CedarAttrs()
	want := map[string]any{
		"id": g.ID, "grantor": "okafor", "tenant": "cardiology", "grantor_clearance": int64(3),
		"origin": fx.hospital.nodeID, "origin_institution": fx.hospital.rootID,
		"audience": fx.practice.rootID, "audience_node": "", "audience_principal": "dr.okafor@" + fx.practice.rootID,
		"action": "memory.read", "brain": "", "subjects": []string{"case-1187", "case-2290"},
		"max_classification": int64(2), "purpose": g.Purpose,
		"issued": t0.Unix(), "expires": t0.AddDate(0, 0, 7).Unix(), "uses": int64(0), "retain": true,
	}
	if len(a) != len(want) {
		t.Fatalf("CedarAttrs has %d attributes, want %d: %v", len(a), len(want), a)
	}
	for k, w := range want {
		if fmt.Sprint(a[k]) != fmt.Sprint(w) || fmt.Sprintf("%T", a[k]) != fmt.Sprintf("%T", w) {
			t.Errorf("context.grant.%s = %#v, want %#v", k, a[k], w)
		}
		cedarValue(t, a[k])
	}
	// The attributes are a copy: changing them does not change the grant.
	a["subjects"].([]string)[0] = "x"
	if g.Scope.Subjects[0] != "case-1187" {
		t.Fatal("CedarAttrs shares the grant's subjects")
	}
}

// operatorPolicies is the operator's example of docs/consent.md section 8, beside the
// default policies (which hold the consent policies themselves since they were wired).
func operatorPolicies(t testing.TB) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", "policies.cedar"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDefaultPoliciesHoldTheConsentPolicies: the default set holds the three consent
// policies docs/consent.md section 8 quotes, guarded so that a request without a grant
// within the institution is unaffected, and the operator's example loads beside them.
func TestDefaultPoliciesHoldTheConsentPolicies(t *testing.T) {
	defaults := string(policy.Defaults())
	for _, id := range []string{"permit-consent-grant", "forbid-cross-institution-without-grant", "forbid-release-without-grant"} {
		if !strings.Contains(defaults, `@id("`+id+`")`) {
			t.Errorf("policy/default.cedar lacks %s", id)
		}
	}
	e, err := policy.LoadBytes("default+operator.cedar", append(policy.Defaults(), operatorPolicies(t)...))
	if err != nil {
		t.Fatalf("the policy package refuses the operator's example beside the defaults: %v", err)
	}
	pr := policy.Principal{ID: "dr.adeyemi", Tenant: "oncology", Clearance: policy.Secret}
	send := func(same bool) policy.Decision {
		return e.Decide(policy.Request{Principal: pr, Action: policy.ActionPeerSend,
			Resource: policy.Resource{Type: policy.ResourcePeer, ID: "node_x", Classification: policy.Secret,
				Institution: "root_x", Attestation: "software", SameInstitution: same},
			Context: policy.Context{Tenant: "oncology", DataClassification: policy.OfficialSensitive, TargetAccreditation: policy.Secret}})
	}
	if d := send(true); !d.Allow {
		t.Fatalf("a call within the institution is refused: %+v", d)
	}
	if d := send(false); d.Allow || !slices.Contains(d.Reasons, "forbid-cross-institution-without-grant") {
		t.Fatalf("a call to another institution without a grant: %+v", d)
	}
}

// TestCedarSeesGrants evaluates the default policies and the operator's example through
// the policy engine, with the verified grant in the context as the node puts it there
// (policy.Context.Grant from CedarAttrs).
func TestCedarSeesGrants(t *testing.T) {
	fx := newFixture()
	e, err := policy.LoadBytes("default+operator.cedar", append(policy.Defaults(), operatorPolicies(t)...))
	if err != nil {
		t.Fatal(err)
	}
	principal := func(id, tenant string, clearance policy.Level) policy.Principal {
		return policy.Principal{ID: id, Tenant: tenant, Clearance: clearance}
	}
	peer := func(institution string, same bool) policy.Resource {
		return policy.Resource{Type: policy.ResourcePeer, ID: fx.regional.nodeID, Classification: policy.Secret,
			Institution: institution, Attestation: "software", SameInstitution: same}
	}
	mem := func(tenant string, c policy.Level) policy.Resource {
		return policy.Resource{Type: policy.ResourceMemory, ID: "case-2290", Classification: c, Tenant: tenant}
	}
	grantResource := func(g *Grant) policy.Resource {
		return policy.Resource{Type: policy.ResourceConsent, ID: g.ID, Classification: g.Scope.Max, Tenant: g.Grantor.Tenant}
	}
	context := func(tenant string, data policy.Level, g *Grant) policy.Context {
		c := policy.Context{Tenant: tenant, DataClassification: data, TargetAccreditation: policy.Secret}
		if g != nil {
			c.Grant = g.CedarAttrs()
		}
		return c
	}
	sign := func(f func(g *Grant)) *Grant {
		g := fx.invokeGrant()
		if f != nil {
			f(&g)
		}
		return mustParse(t, mustSign(t, fx.hospital.node, g))
	}
	invoke := sign(nil)
	otherInstitution := sign(func(g *Grant) { g.Audience = Audience{Institution: fx.third.rootID} })
	research := sign(func(g *Grant) { g.Purpose, g.Scope.Max = "research: outcomes of the 2025 cohort", policy.Secret })
	researchOS := sign(func(g *Grant) { g.Purpose = "research: outcomes of the 2025 cohort" })
	careSecret := sign(func(g *Grant) { g.Scope.Max = policy.Secret })
	memGrant := mustParse(t, mustSign(t, fx.hospital.node, fx.memoryGrant()))

	clin := principal("dr.adeyemi", "oncology", policy.Secret)
	okafor := principal("dr.okafor@"+fx.practice.rootID, "gp@"+fx.practice.rootID, policy.Secret)
	for _, tc := range []struct {
		name      string
		principal policy.Principal
		action    string
		resource  policy.Resource
		context   policy.Context
		allow     bool
		reason    string // a policy that must be among the reasons
	}{
		{"brain call to the regional centre without a grant", clin, policy.ActionPeerSend, peer(fx.regional.rootID, false),
			context("oncology", policy.OfficialSensitive, nil), false, "forbid-cross-institution-without-grant"},
		{"brain call with the grant", clin, policy.ActionPeerSend, peer(fx.regional.rootID, false),
			context("oncology", policy.OfficialSensitive, invoke), true, "permit-peer-send"},
		{"brain call with a grant for another institution", clin, policy.ActionPeerSend, peer(fx.regional.rootID, false),
			context("oncology", policy.OfficialSensitive, otherInstitution), false, "forbid-cross-institution-without-grant"},
		{"SECRET data under an OFFICIAL-SENSITIVE grant", clin, policy.ActionPeerSend, peer(fx.regional.rootID, false),
			context("oncology", policy.Secret, invoke), false, "forbid-cross-institution-without-grant"},
		{"within the institution no grant is needed", clin, policy.ActionPeerSend, peer(fx.hospital.rootID, true),
			context("oncology", policy.Secret, nil), true, "permit-peer-send"},
		{"a research grant covering SECRET is forbidden", clin, policy.ActionPeerSend, peer(fx.regional.rootID, false),
			context("oncology", policy.OfficialSensitive, research), false, "forbid-research-secret"},
		{"a research grant up to OFFICIAL-SENSITIVE is not", clin, policy.ActionPeerSend, peer(fx.regional.rootID, false),
			context("oncology", policy.OfficialSensitive, researchOS), true, "permit-peer-send"},
		{"a care grant covering SECRET is not", clin, policy.ActionPeerSend, peer(fx.regional.rootID, false),
			context("oncology", policy.Secret, careSecret), true, "permit-peer-send"},
		{"granting up to one's clearance", clin, policy.ActionConsentGrant, grantResource(careSecret),
			context("oncology", policy.Secret, careSecret), true, "permit-consent-grant"},
		{"granting above one's clearance", principal("dr.adeyemi", "oncology", policy.OfficialSensitive), policy.ActionConsentGrant, grantResource(careSecret),
			context("oncology", policy.Secret, careSecret), false, ""},
		{"granting over another tenant's data", principal("dr.adeyemi", "cardiology", policy.Secret), policy.ActionConsentGrant, grantResource(invoke),
			context("cardiology", policy.OfficialSensitive, invoke), false, ""},
		{"making a research grant covering SECRET", clin, policy.ActionConsentGrant, grantResource(research),
			context("oncology", policy.Secret, research), false, "forbid-research-secret"},
		{"release to the practice under the grant", okafor, policy.ActionMemoryRead, mem("cardiology", policy.OfficialSensitive),
			context("cardiology", policy.OfficialSensitive, memGrant), true, "permit-cross-tenant-consent"},
		{"release without a grant", okafor, policy.ActionMemoryRead, mem("cardiology", policy.Official),
			context("cardiology", policy.Official, nil), false, "forbid-release-without-grant"},
		{"release of SECRET under an OFFICIAL-SENSITIVE grant", okafor, policy.ActionMemoryRead, mem("cardiology", policy.Secret),
			context("cardiology", policy.Secret, memGrant), false, "forbid-release-without-grant"},
		{"release of another tenant's memory", okafor, policy.ActionMemoryRead, mem("oncology", policy.Official),
			context("cardiology", policy.Official, memGrant), false, "forbid-release-without-grant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := e.Decide(policy.Request{Principal: tc.principal, Action: tc.action, Resource: tc.resource, Context: tc.context})
			if len(d.Errors) > 0 {
				t.Fatalf("policies failed to evaluate: %v", d.Errors)
			}
			if d.Allow != tc.allow || tc.reason != "" && !slices.Contains(d.Reasons, tc.reason) {
				t.Fatalf("decision %+v; want allow=%v with %q", d, tc.allow, tc.reason)
			}
		})
	}
}
