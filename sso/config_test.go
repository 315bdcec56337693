package sso_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sios-project/sios/egress"
	"github.com/sios-project/sios/sso"
)

const goodIssuer = `{"name":"corp","issuer":"https://idp.example/realms/x","audience":"sios",
	"claims":{"rules":[{"when":{"groups":"g"},"tenant":"t","clearance":"OFFICIAL"}]}}`

// with replaces old by new in goodIssuer, failing if old is absent.
func with(t *testing.T, old, new string) string {
	t.Helper()
	if !strings.Contains(goodIssuer, old) {
		t.Fatalf("%q not in the base config", old)
	}
	return strings.Replace(goodIssuer, old, new, 1)
}

func TestConfigErrorsNameTheField(t *testing.T) {
	cases := []struct{ name, config, want string }{
		{"not a list", `{}`, "unmarshal JSON object into Go []sso.Issuer"},
		{"unknown field", with(t, `"audience"`, `"audiance":"x","audience"`), `unknown member "audiance"`},
		{"misspelt rule field", with(t, `"clearance"`, `"clearence":"SECRET","clearance"`), `unknown member "clearence" in /claims/rules/0`},
		{"differently cased field", with(t, `"audience"`, `"Audience":"x","audience"`), `unknown member "Audience"`},
		{"repeated field", with(t, `"audience"`, `"audience":"x","audience"`), `duplicate object member name "audience"`},
		{"bad name", with(t, `"corp"`, `"Corp"`), "oidc[0].name:"},
		{"no issuer", with(t, `"https://idp.example/realms/x"`, `""`), "oidc[0] (corp).issuer: missing"},
		{"http issuer", with(t, `https://idp.example`, `http://idp.example`), "only https is accepted, except on a loopback host"},
		{"issuer with query", with(t, `realms/x"`, `realms/x?a=1"`), "must not carry user info, a query or a fragment"},
		{"issuer with bad port", with(t, `idp.example`, `idp.example:0`), "(corp).issuer:"},
		{"jwks_uri not https", with(t, `"audience"`, `"jwks_uri":"ftp://idp.example/k","audience"`), "(corp).jwks_uri:"},
		{"no audience", with(t, `"audience":"sios",`, ``), "(corp).audience: missing"},
		{"empty audience", with(t, `"audience":"sios"`, `"audience":[""]`), "(corp).audience:"},
		{"audience not strings", with(t, `"audience":"sios"`, `"audience":3`), "want a string or a list of strings"},
		{"symmetric algorithm", with(t, `"audience"`, `"algorithms":["HS256"],"audience"`), `(corp).algorithms: "HS256" is not accepted`},
		{"alg none", with(t, `"audience"`, `"algorithms":["none"],"audience"`), `algorithms: "none" is not accepted`},
		{"refresh too short", with(t, `"audience"`, `"refresh":"10s","audience"`), "(corp).refresh:"},
		{"refresh not a duration", with(t, `"audience"`, `"refresh":"daily","audience"`), "(corp).refresh:"},
		{"no rules", with(t, `"rules":[{"when":{"groups":"g"},"tenant":"t","clearance":"OFFICIAL"}]`, `"rules":[]`), "(corp).claims.rules: missing"},
		{"rule without when", with(t, `"when":{"groups":"g"},`, ``), "claims.rules[0].when: missing; write {} to match every user"},
		{"condition without values", with(t, `"groups":"g"`, `"groups":[]`), `claims.rules[0].when["groups"]: no values`},
		{"bad claim path", with(t, `"groups":"g"`, `"a..b":"g"`), `claims.rules[0].when["a..b"]: claim path "a..b" has an empty segment`},
		{"bad pointer escape", with(t, `"groups":"g"`, `"/a~2b":"g"`), `'~' must be followed by 0 or 1`},
		{"path too deep", with(t, `"groups":"g"`, `"a.b.c.d.e.f.g.h.i":"g"`), "MaxClaimPathSegments"},
		{"rule without tenant or source", with(t, `"tenant":"t",`, ``), "claims.rules[0].tenant: missing; name the tenant here or set claims.tenant"},
		{"bad tenant", with(t, `"tenant":"t"`, `"tenant":"a b"`), "claims.rules[0].tenant:"},
		{"no clearance", with(t, `,"clearance":"OFFICIAL"`, ``), "claims.rules[0].clearance: missing"},
		{"unknown clearance", with(t, `"OFFICIAL"`, `"RESTRICTED"`), "claims.rules[0].clearance: unknown classification"},
		{"bad role", with(t, `"clearance":"OFFICIAL"`, `"clearance":"OFFICIAL","roles":["a:b"]`), `claims.rules[0].roles: "a:b"`},
		{"tenant source both", with(t, `"claims":{`, `"claims":{"tenant":{"value":"a","claim":"org"},`), "claims.tenant.value: set either"},
		{"tenant source neither", with(t, `"claims":{`, `"claims":{"tenant":{},`), "claims.tenant.value: set"},
		{"tenant values without claim", with(t, `"claims":{`, `"claims":{"tenant":{"value":"a","values":{"x":"y"}},`), "claims.tenant.values: only with"},
		{"tenant values bad tenant", with(t, `"claims":{`, `"claims":{"tenant":{"claim":"tid","values":{"x":"a b"}},`), `claims.tenant.values["x"]`},
		{"bad principal claim", with(t, `"claims":{`, `"claims":{"principal":".sub",`), "claims.principal:"},
		{"duplicate name", "[" + goodIssuer + "," + strings.Replace(goodIssuer, "realms/x", "realms/y", 1), "oidc[1] (corp).name: also the name of oidc[0]"},
		{"duplicate issuer", "[" + goodIssuer + "," + strings.Replace(goodIssuer, `"corp"`, `"corp2"`, 1), "oidc[1] (corp2).issuer:"},
		{"trailing data", "[" + goodIssuer + "] []", "trailing data"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.config
			if !strings.HasPrefix(cfg, "[") && !strings.HasPrefix(cfg, "{}") {
				cfg = "[" + cfg + "]"
			} else if strings.HasPrefix(cfg, "[") && !strings.HasSuffix(cfg, "]") {
				cfg += "]"
			}
			_, err := sso.ParseConfig([]byte(cfg))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q: want one line containing %q", err, c.want)
			}
		})
	}
	if _, err := sso.ParseConfig([]byte("[" + goodIssuer + "]")); err != nil {
		t.Fatalf("the base config: %v", err)
	}
	if _, err := sso.ParseConfig([]byte(strings.Repeat(" ", sso.MaxConfigBytes+1))); err == nil || !strings.Contains(err.Error(), "MaxConfigBytes") {
		t.Fatalf("oversized config: %v", err)
	}
}

func TestLoopbackHTTPIssuers(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:8080", "http://[::1]:8080/realms/x", "http://localhost:8080", "http://127.0.0.2"} {
		if _, err := sso.ParseConfig([]byte("[" + with(t, "https://idp.example/realms/x", u) + "]")); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
	for _, u := range []string{"http://10.0.0.1", "http://idp.example", "http://localhost.example"} {
		if _, err := sso.ParseConfig([]byte("[" + with(t, "https://idp.example/realms/x", u) + "]")); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
}

func TestEgressRules(t *testing.T) {
	list, err := sso.ParseConfig([]byte(`[` + goodIssuer + `,` +
		`{"name":"b","issuer":"http://127.0.0.1:8080/realms/b","jwks_uri":"https://keys.example:8443/k","audience":"a","claims":{"rules":[{"when":{},"tenant":"t","clearance":"OFFICIAL"}]}},` +
		`{"name":"c","issuer":"https://idp.example/realms/c","audience":"a","claims":{"rules":[{"when":{},"tenant":"t","clearance":"OFFICIAL"}]}}]`))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := sso.EgressRules(list)
	if err != nil {
		t.Fatal(err)
	}
	want := []egress.Rule{{Host: "idp.example", Port: 443}, {Host: "127.0.0.1", Port: 8080}, {Host: "keys.example", Port: 8443}}
	if len(rules) != len(want) {
		t.Fatalf("rules %v, want %v", rules, want)
	}
	for i := range want {
		if rules[i] != want[i] {
			t.Fatalf("rules %v, want %v", rules, want)
		}
	}
}

// TestDocsConfigExamples parses every JSON block in docs/sso.md that holds an "oidc"
// section, so that the published examples stay valid configuration.
func TestDocsConfigExamples(t *testing.T) {
	file := filepath.Join("..", "docs", "sso.md")
	doc, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	n := 0
	for _, b := range blocks {
		body := strings.TrimSpace(b[1])
		if !strings.HasPrefix(body, `{`) || !strings.Contains(body, `"oidc"`) {
			continue
		}
		i := strings.Index(body, "[")
		j := strings.LastIndex(body, "]")
		if _, err := sso.ParseConfig([]byte(body[i : j+1])); err != nil {
			t.Errorf("%s: example %d: %v\n%s", file, n, err, body)
		}
		n++
	}
	if n < 4 {
		t.Fatalf("%s: %d config examples found, want the general one and Entra ID, Keycloak and Okta", file, n)
	}
}
