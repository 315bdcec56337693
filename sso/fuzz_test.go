package sso

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/policy"
)

// fuzzIssuer has rules of every shape: nested paths, a JSON Pointer, several
// conditions, a catch-all, and a tenant from a claim with and without translation.
const fuzzIssuer = `{
	"name": "corp",
	"issuer": "https://idp.example/realms/x",
	"audience": "sios",
	"claims": {
		"principal": "sub",
		"tenant": {"claim": "org"},
		"rules": [
			{"when": {"resource_access.sios.roles": "admin"}, "tenant": "ops", "clearance": "SECRET", "roles": ["admin"]},
			{"when": {"groups": ["clinicians", "doctors"], "email_verified": "true"}, "clearance": "OFFICIAL-SENSITIVE", "roles": ["clinician", "staff"]},
			{"when": {"/https:~1~1sios.example~1level": "2"}, "tenant": "lab", "clearance": "OFFICIAL"},
			{"when": {"realm_access.roles": "staff"}, "clearance": "OFFICIAL", "roles": ["staff"]}
		]
	}
}`

// FuzzMapClaims feeds arbitrary claims objects to the mapping. It must not panic;
// every outcome is either a grant or an *UnmappedError (or a refusal of bytes that are
// not a JSON object); a grant is exactly what the first matching rule says — its
// clearance and roles, its tenant or a valid tenant name from the claim — under
// "oidc:corp:" and the subject; and mapping is deterministic.
func FuzzMapClaims(f *testing.F) {
	for _, s := range []string{
		`{"sub":"alice","groups":["clinicians"],"email_verified":true,"org":"hospital"}`,
		`{"sub":"bob","groups":"doctors","email_verified":"true","org":["hospital"]}`,
		`{"sub":"carol","resource_access":{"sios":{"roles":["admin"]}}}`,
		`{"sub":"dan","https://sios.example/level":2}`,
		`{"sub":"erin","realm_access":{"roles":["staff"]},"org":"a b"}`,
		`{"sub":"f","realm_access":{"roles":{"staff":1}},"org":"x"}`,
		`{"sub":"","groups":["clinicians"]}`,
		`{"sub":123}`,
		`{"sub":"g","groups":[["clinicians"]],"email_verified":true,"org":"h"}`,
		`{"sub":"h","groups":null}`,
		`[]`, `null`, `{}`, `{"sub":"x"} {}`, `{"a":{"b":{"c":{"d":[1,2,{"e":"f"}]}}}}`,
	} {
		f.Add([]byte(s))
	}
	var is Issuer
	if err := json.Unmarshal([]byte(fuzzIssuer), &is); err != nil {
		f.Fatal(err)
	}
	c, err := compile(is)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, claimsJSON []byte) {
		id, err := is.Map(claimsJSON)
		again, err2 := is.Map(claimsJSON)
		if (err == nil) != (err2 == nil) || (err != nil && err.Error() != err2.Error()) || !reflect.DeepEqual(id, again) {
			t.Fatalf("mapping is not deterministic: %+v %v / %+v %v", id, err, again, err2)
		}
		if err != nil {
			var ue *UnmappedError
			if id != nil || errors.Is(err, ErrInvalidToken) {
				t.Fatalf("identity %v with error %v", id, err)
			}
			if errors.As(err, &ue) && (ue.Issuer != "corp" || ue.Reason == "") {
				t.Fatalf("unmapped error %+v", ue)
			}
			return
		}
		if id.Rule < 0 || id.Rule >= len(c.rules) {
			t.Fatalf("rule %d of %d", id.Rule, len(c.rules))
		}
		r := c.rules[id.Rule]
		claims, derr := decodeClaims(claimsJSON)
		if derr != nil {
			t.Fatalf("granted on claims that do not decode: %v", derr)
		}
		if !r.matches(claims) {
			t.Fatalf("rule %d granted but does not match", id.Rule)
		}
		for i := range id.Rule {
			if c.rules[i].matches(claims) {
				t.Fatalf("rule %d granted but rule %d matches first", id.Rule, i)
			}
		}
		p := id.Principal
		if p.Clearance != r.clearance || !slices.Equal(p.Roles, r.roles) || !p.Clearance.Valid() {
			t.Fatalf("granted %+v, rule says %v %v", p, r.clearance, r.roles)
		}
		if r.tenant != "" && p.Tenant != r.tenant || !idPattern.MatchString(p.Tenant) {
			t.Fatalf("tenant %q (rule: %q)", p.Tenant, r.tenant)
		}
		if p.ID != "oidc:corp:"+id.Subject || checkSubject(id.Subject) != nil {
			t.Fatalf("principal id %q, subject %q", p.ID, id.Subject)
		}
	})
}

// FuzzParseConfig feeds arbitrary bytes to ParseConfig. It must not panic; errors are
// one line starting "config oidc"; an accepted configuration survives a round trip
// (written back as JSON it parses to the same issuers) and compiles to rules whose
// limits hold.
func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("[" + fuzzIssuer + "]"))
	f.Add([]byte(`[{"name":"a","issuer":"http://127.0.0.1:8080","audience":["x","y"],"algorithms":["ES256","EdDSA"],"refresh":"2h","jwks_uri":"http://127.0.0.1:8080/k",` +
		`"claims":{"tenant":{"claim":"tid","values":{"g1":"t1","g2":"t2"}},"rules":[{"when":{},"clearance":"top_secret"}]}}]`))
	f.Add([]byte(`[{"name":"a","issuer":"https://i.example","audience":"x","claims":{"tenant":{"value":"t"},"rules":[{"when":{"/a~1b/c~0":["1","2"]},"clearance":"OFFICIAL","roles":["r","r"]}]}}]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`null`))
	f.Add([]byte(`[{"name":"a","unknown":1}]`))
	f.Add([]byte(`[{"name":"a","issuer":"https://i.example","audience":"x","claims":{"rules":[{"when":{"a..b":"x"},"clearance":"OFFICIAL","tenant":"t"}]}}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		list, err := ParseConfig(b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config oidc") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error is not one line naming the section: %q", err)
			}
			return
		}
		out, err := json.Marshal(list)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseConfig(out)
		if err != nil {
			t.Fatalf("written back, the configuration does not parse: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(normalise(list), normalise(again)) {
			t.Fatalf("round trip changed the configuration:\n%+v\n%+v", list, again)
		}
		compiled, err := compileAll(list)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range compiled {
			if len(c.rules) == 0 || len(c.rules) > MaxRules || len(c.audience) == 0 {
				t.Fatalf("compiled issuer %s with %d rules, %d audiences", c.name, len(c.rules), len(c.audience))
			}
			for _, r := range c.rules {
				if !r.clearance.Valid() || len(r.when) > MaxConditions || len(r.roles) > MaxRoles {
					t.Fatalf("compiled rule %+v", r)
				}
				if r.tenant == "" && c.tenant == nil {
					t.Fatal("a rule with no tenant and no tenant source")
				}
			}
		}
	})
}

// normalise makes empty and absent collections compare equal (omitempty drops them).
func normalise(list []Issuer) []Issuer {
	out := slices.Clone(list)
	for i := range out {
		if len(out[i].Algorithms) == 0 {
			out[i].Algorithms = nil
		}
		if t := out[i].Claims.Tenant; t != nil && len(t.Values) == 0 {
			cp := *t
			cp.Values = nil
			out[i].Claims.Tenant = &cp
		}
		rules := slices.Clone(out[i].Claims.Rules)
		for j := range rules {
			if len(rules[j].Roles) == 0 {
				rules[j].Roles = nil
			}
		}
		out[i].Claims.Rules = rules
	}
	return out
}

// FuzzIssuerDocuments feeds arbitrary bytes to the parsers of what an issuer or the
// cache sends back: the discovery document, the key set and the cache file. None may
// panic; a key set is accepted only with 1–MaxKeys public keys.
func FuzzIssuerDocuments(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	set := jwksOf(jwk(f, &key.PublicKey, "k1", "ES256", "sig"))
	f.Add([]byte(`{"issuer":"https://idp.example","jwks_uri":"https://idp.example/keys"}`))
	f.Add(set)
	cache, _ := json.Marshal(cacheFile{V: cacheVersion, Issuer: "https://idp.example", JWKSURI: "https://idp.example/keys", Fetched: time.Unix(0, 0).UTC(), JWKS: set})
	f.Add(cache)
	f.Add([]byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"},{"kty":"oct","k":"AAAA"},{"kty":"EC","crv":"P-256","x":"","y":""}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseDiscovery(b, "https://idp.example")
		algs := []string{"RS256", "ES256", "EdDSA", "PS256"}
		keys, err := parseJWKS(b, algs)
		if err == nil && (len(keys) == 0 || len(keys) > MaxKeys) {
			t.Fatalf("accepted a key set of %d keys", len(keys))
		}
		for _, k := range keys {
			if !k.IsPublic() || !k.Valid() {
				t.Fatalf("accepted key %q that is not a valid public key", k.KeyID)
			}
		}
		c, keys, err := parseCache(b, "https://idp.example", "", algs)
		if err == nil && c != nil && len(keys) == 0 {
			t.Fatal("a cache with no keys was accepted")
		}
	})
}

// failingTransport answers every request with an error: the fuzzed validator must
// never reach the network.
type failingTransport struct{}

func (failingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("no network in this test")
}

// FuzzAuthenticate feeds arbitrary bearer tokens to a validator holding a key. It
// must not panic, must refuse every one with ErrInvalidToken (no token can be made
// without the private key), and no error may hold the token.
func FuzzAuthenticate(f *testing.F) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	f.Add("eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIn0.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlL3JlYWxtcy94IiwiYXVkIjoic2lvcyIsInN1YiI6ImEiLCJleHAiOjk5OTk5OTk5OTl9.AAAA")
	f.Add("eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlL3JlYWxtcy94In0.")
	f.Add("sios_abcdefghijklmnopqrstuvwxyz")
	f.Add("a.b.c")
	f.Add("..")
	f.Add("")
	var is Issuer
	if err := json.Unmarshal([]byte(fuzzIssuer), &is); err != nil {
		f.Fatal(err)
	}
	is.Algorithms = []string{"ES256"}
	dir := f.TempDir()
	if err := writeCache(cachePath(dir, "corp"), cacheFile{Issuer: is.Issuer, JWKSURI: is.Issuer + "/keys", Fetched: time.Now(),
		JWKS: jwksOf(jwk(f, &key.PublicKey, "k1", "ES256", "sig"))}); err != nil {
		f.Fatal(err)
	}
	v, err := New([]Issuer{is}, Options{Client: &http.Client{Transport: failingTransport{}}, CacheDir: dir})
	if err != nil {
		f.Fatal(err)
	}
	if v.Status()[0].Keys != 1 {
		f.Fatal("the cached key was not loaded")
	}
	f.Fuzz(func(t *testing.T, token string) {
		id, err := v.Authenticate(context.Background(), token)
		if id != nil || !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("token %q: identity %v, error %v", token, id, err)
		}
		if len(token) > 8 && strings.Contains(err.Error(), token) {
			t.Fatalf("the error holds the token: %v", err)
		}
		if LooksLikeJWT(token) && strings.HasPrefix(token, policy.APIKeyPrefix) {
			t.Fatal("an API key taken for a JWT")
		}
	})
}
