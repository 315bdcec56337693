package sso

import (
	"encoding/base64"
	"strings"
	"testing"
)

// TestRepeatedClaimsRefused: a token whose claims name one member twice, at any depth,
// is refused naming it, where encoding/json took the last; the issuer is peeked by its
// exact name, where encoding/json took "ISS" for it.
func TestRepeatedClaimsRefused(t *testing.T) {
	for _, c := range []struct{ payload, want string }{
		{`{"iss":"https://a.example","sub":"alice","sub":"admin"}`, `duplicate object member name "sub"`},
		{`{"iss":"https://a.example","realm_access":{"roles":["a"],"roles":["admin"]}}`, `duplicate object member name "roles" within "/realm_access"`},
	} {
		if _, err := decodeClaims([]byte(c.payload)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("decodeClaims(%s) = %v, want %q", c.payload, err, c.want)
		}
	}
	tok := func(payload string) string {
		return "eyJhbGciOiJFUzI1NiJ9." + base64.RawURLEncoding.EncodeToString([]byte(payload)) + ".c2ln"
	}
	if iss, err := peekIssuer(tok(`{"ISS":"https://evil.example","iss":"https://a.example"}`)); err != nil || iss != "https://a.example" {
		t.Errorf("peekIssuer = %q, %v; want the exact iss", iss, err)
	}
	if iss, err := peekIssuer(tok(`{"iss":"https://a.example","iss":"https://evil.example"}`)); err == nil {
		t.Errorf("peekIssuer of a repeated iss = %q, want an error", iss)
	}
}

// TestRepeatedKeyMembersRefused: a key set that names a member twice is refused.
func TestRepeatedKeyMembersRefused(t *testing.T) {
	for _, set := range []string{
		`{"keys":[],"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`,
	} {
		if _, err := parseJWKS([]byte(set), []string{"EdDSA"}); err == nil || !strings.Contains(err.Error(), "without repeated members") {
			t.Errorf("parseJWKS(%s) = %v, want a refusal of repeated members", set, err)
		}
	}
}
