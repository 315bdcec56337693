package sso_test

import (
	"context"
	"testing"
)

// BenchmarkAuthenticate checks a real RS256 access token from the test provider with
// cached keys: signature, issuer, audience, expiry and the mapping rules.
func BenchmarkAuthenticate(b *testing.B) {
	f := newFixture(b)
	_, accessToken := f.p.SignIn(b, "sios-console", "alice")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := f.v.Authenticate(ctx, accessToken); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMap applies the Entra ID example's rules to a sample of its claims.
func BenchmarkMap(b *testing.B) {
	is := parseOne(b, entraConfig)
	claims := []byte(`{"oid":"u1","tid":"72f988bf-86f1-41af-91ab-2d7cd011db47","groups":["aaaa","bbbb","cccc","5f0c3a53-5d0a-4b7e-9a7c-0e6f1b0f6d11"]}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := is.Map(claims); err != nil {
			b.Fatal(err)
		}
	}
}
