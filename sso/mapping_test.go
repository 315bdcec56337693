package sso_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/sios-project/sios/policy"
	"github.com/sios-project/sios/sso"
)

func parseOne(t testing.TB, cfg string) sso.Issuer {
	t.Helper()
	list, err := sso.ParseConfig([]byte("[" + cfg + "]"))
	if err != nil {
		t.Fatal(err)
	}
	return list[0]
}

// The issuers below are shaped as the three providers operators meet most: their
// claims are samples of what each issues (group ids in Entra ID, realm and client
// roles in Keycloak, group names in Okta).
const (
	entraConfig = `{
		"name": "entra",
		"issuer": "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
		"audience": "api://sios",
		"claims": {
			"principal": "oid",
			"tenant": {"claim": "tid", "values": {"72f988bf-86f1-41af-91ab-2d7cd011db47": "hospital"}},
			"rules": [
				{"when": {"roles": "Sios.Admin"}, "clearance": "SECRET", "roles": ["admin"]},
				{"when": {"groups": "5f0c3a53-5d0a-4b7e-9a7c-0e6f1b0f6d11"}, "clearance": "OFFICIAL-SENSITIVE", "roles": ["clinician"]},
				{"when": {}, "clearance": "OFFICIAL"}
			]
		}
	}`
	keycloakConfig = `{
		"name": "keycloak",
		"issuer": "https://sso.hospital.example/realms/hospital",
		"audience": ["sios", "sios-console"],
		"algorithms": ["RS256", "ES256"],
		"claims": {
			"tenant": {"value": "hospital"},
			"rules": [
				{"when": {"resource_access.sios.roles": "auditor"}, "tenant": "regulator", "clearance": "OFFICIAL", "roles": ["auditor"]},
				{"when": {"realm_access.roles": "clinician", "groups": "/wards/icu"}, "clearance": "OFFICIAL-SENSITIVE", "roles": ["clinician", "icu"]},
				{"when": {"realm_access.roles": "clinician"}, "clearance": "OFFICIAL-SENSITIVE", "roles": ["clinician"]}
			]
		}
	}`
	oktaConfig = `{
		"name": "okta",
		"issuer": "https://hospital.okta.com/oauth2/default",
		"audience": "api://sios",
		"claims": {
			"principal": "uid",
			"tenant": {"claim": "/https:~1~1sios.example~1tenant"},
			"rules": [
				{"when": {"groups": ["Clinicians", "Doctors"], "email_verified": "true"}, "clearance": "OFFICIAL-SENSITIVE", "roles": ["clinician"]}
			]
		}
	}`
)

func TestMapping(t *testing.T) {
	type want struct {
		id, tenant string
		clearance  policy.Level
		roles      []string
		rule       int
	}
	cases := []struct {
		name, config, claims string
		want                 *want  // nil: unmapped
		reason               string // for unmapped
	}{
		{"entra app role wins by order", entraConfig,
			`{"oid":"00000000-0000-0000-66f3-3332eca7ea81","tid":"72f988bf-86f1-41af-91ab-2d7cd011db47","roles":["Sios.Admin"],"groups":["5f0c3a53-5d0a-4b7e-9a7c-0e6f1b0f6d11"]}`,
			&want{"oidc:entra:00000000-0000-0000-66f3-3332eca7ea81", "hospital", policy.Secret, []string{"admin"}, 0}, ""},
		{"entra group", entraConfig,
			`{"oid":"u1","tid":"72f988bf-86f1-41af-91ab-2d7cd011db47","groups":["aaaa","5f0c3a53-5d0a-4b7e-9a7c-0e6f1b0f6d11"]}`,
			&want{"oidc:entra:u1", "hospital", policy.OfficialSensitive, []string{"clinician"}, 1}, ""},
		{"entra catch-all", entraConfig,
			`{"oid":"u2","tid":"72f988bf-86f1-41af-91ab-2d7cd011db47"}`,
			&want{"oidc:entra:u2", "hospital", policy.Official, nil, 2}, ""},
		{"entra guest from another directory", entraConfig,
			`{"oid":"u3","tid":"9188040d-6c67-4c5b-b112-36a304b66dad","roles":["Sios.Admin"]}`,
			nil, "not listed in claims.tenant.values"},
		{"entra group overage is not followed", entraConfig,
			`{"oid":"u4","tid":"72f988bf-86f1-41af-91ab-2d7cd011db47","_claim_names":{"groups":"src1"},"_claim_sources":{"src1":{"endpoint":"https://graph.microsoft.com/v1.0/users/u4/getMemberObjects"}}}`,
			&want{"oidc:entra:u4", "hospital", policy.Official, nil, 2}, ""},
		{"entra without oid", entraConfig, `{"sub":"x","tid":"72f988bf-86f1-41af-91ab-2d7cd011db47"}`, nil, "no oid claim"},
		{"keycloak client role, own tenant", keycloakConfig,
			`{"sub":"f:1","resource_access":{"sios":{"roles":["auditor"]},"account":{"roles":["view-profile"]}},"realm_access":{"roles":["clinician"]}}`,
			&want{"oidc:keycloak:f:1", "regulator", policy.Official, []string{"auditor"}, 0}, ""},
		{"keycloak realm role and group (both must hold)", keycloakConfig,
			`{"sub":"k2","realm_access":{"roles":["offline_access","clinician"]},"groups":["/wards/icu"]}`,
			&want{"oidc:keycloak:k2", "hospital", policy.OfficialSensitive, []string{"clinician", "icu"}, 1}, ""},
		{"keycloak realm role only", keycloakConfig,
			`{"sub":"k3","realm_access":{"roles":["clinician"]},"groups":["/wards/ae"]}`,
			&want{"oidc:keycloak:k3", "hospital", policy.OfficialSensitive, []string{"clinician"}, 2}, ""},
		{"keycloak role of another client", keycloakConfig,
			`{"sub":"k4","resource_access":{"other":{"roles":["auditor"]}}}`, nil, "no rule matched"},
		{"keycloak roles as an object are not roles", keycloakConfig,
			`{"sub":"k5","realm_access":{"roles":{"clinician":true}}}`, nil, "no rule matched"},
		{"okta group name, namespaced tenant claim", oktaConfig,
			`{"sub":"nurse@hospital.example","uid":"00u1abcd","groups":["Everyone","Doctors"],"email_verified":true,"https://sios.example/tenant":"hospital"}`,
			&want{"oidc:okta:00u1abcd", "hospital", policy.OfficialSensitive, []string{"clinician"}, 0}, ""},
		{"okta unverified email", oktaConfig,
			`{"uid":"00u2","groups":["Doctors"],"email_verified":false,"https://sios.example/tenant":"hospital"}`, nil, "no rule matched"},
		{"okta tenant claim not a name", oktaConfig,
			`{"uid":"00u3","groups":["Doctors"],"email_verified":true,"https://sios.example/tenant":"a b"}`, nil, "is not a tenant name"},
		{"okta tenant claim missing", oktaConfig,
			`{"uid":"00u3","groups":["Doctors"],"email_verified":true}`, nil, "rule 0 matched but the token has no"},
		{"okta group match is case-sensitive", oktaConfig,
			`{"uid":"00u5","groups":["doctors"],"email_verified":true,"https://sios.example/tenant":"hospital"}`, nil, "no rule matched"},
		{"subject with a control character", oktaConfig,
			`{"uid":"00u6\u0000","groups":["Doctors"],"email_verified":true,"https://sios.example/tenant":"hospital"}`, nil, "control"},
		{"subject too long", oktaConfig,
			`{"uid":"` + strings.Repeat("u", sso.MaxSubjectBytes+1) + `","groups":["Doctors"]}`, nil, "MaxSubjectBytes"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id, err := parseOne(t, c.config).Map([]byte(c.claims))
			if c.want == nil {
				var ue *sso.UnmappedError
				if id != nil || !errors.As(err, &ue) || !errors.Is(err, sso.ErrUnmapped) || !strings.Contains(ue.Reason, c.reason) {
					t.Fatalf("identity %+v, error %v; want unmapped because %q", id, err, c.reason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := id.Principal
			if p.ID != c.want.id || p.Tenant != c.want.tenant || p.Clearance != c.want.clearance || !slices.Equal(p.Roles, c.want.roles) || id.Rule != c.want.rule {
				t.Fatalf("got %+v by rule %d, want %+v", p, id.Rule, *c.want)
			}
			if !strings.HasSuffix(p.ID, ":"+id.Subject) {
				t.Fatalf("principal id %q does not end with the subject %q", p.ID, id.Subject)
			}
		})
	}
}

func TestMappingNumbersMatchTheirText(t *testing.T) {
	is := parseOne(t, `{"name":"n","issuer":"https://idp.example","audience":"a","claims":{"tenant":{"value":"t"},
		"rules":[{"when":{"level":"2","ids":"12345678901234567890"},"clearance":"OFFICIAL"}]}}`)
	if _, err := is.Map([]byte(`{"sub":"s","level":2,"ids":[1,12345678901234567890]}`)); err != nil {
		t.Fatalf("numbers: %v", err)
	}
	if _, err := is.Map([]byte(`{"sub":"s","level":2.0,"ids":[12345678901234567890]}`)); !errors.Is(err, sso.ErrUnmapped) {
		t.Fatalf("2.0 matched \"2\": %v", err)
	}
}

func TestPrincipalIDsCannotCollide(t *testing.T) {
	// A local principal id never holds ':'; a subject may, but the issuer name may not,
	// so "oidc:NAME:" always ends at the second ':'.
	a := sso.PrincipalID("corp", "x:y")
	b := sso.PrincipalID("corp-x", "y")
	if a == b || !strings.HasPrefix(a, sso.PrincipalPrefix+"corp:") {
		t.Fatalf("%q and %q", a, b)
	}
	for _, name := range []string{"a:b", "A", "-a", ""} {
		_, err := sso.ParseConfig([]byte(`[{"name":"` + name + `","issuer":"https://idp.example","audience":"a","claims":{"rules":[{"when":{},"tenant":"t","clearance":"OFFICIAL"}]}}]`))
		if err == nil || !strings.Contains(err.Error(), ".name:") {
			t.Fatalf("name %q: %v", name, err)
		}
	}
}
