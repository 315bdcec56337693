package sso

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func jwk(t testing.TB, key any, kid, alg, use string) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKey{Key: key, KeyID: kid, Algorithm: alg, Use: use})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func jwksOf(keys ...json.RawMessage) []byte {
	b, _ := json.Marshal(map[string]any{"keys": keys})
	return b
}

func TestParseJWKSKeepsOnlyUsableSigningKeys(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	weakRSA, _ := rsa.GenerateKey(rand.Reader, 1024)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	set := jwksOf(
		jwk(t, &rsaKey.PublicKey, "rsa", "RS256", "sig"),
		jwk(t, &rsaKey.PublicKey, "rsa-noalg", "", ""),
		jwk(t, &rsaKey.PublicKey, "enc", "RSA-OAEP", "enc"),
		jwk(t, &weakRSA.PublicKey, "weak", "RS256", "sig"),
		jwk(t, rsaKey, "private", "RS256", "sig"),
		jwk(t, []byte("0123456789abcdef0123456789abcdef"), "oct", "HS256", "sig"),
		jwk(t, &ecKey.PublicKey, "ec", "ES256", "sig"),
		jwk(t, edPub, "ed", "EdDSA", "sig"),
		json.RawMessage(`{"kty":"OKP","crv":"X448","x":"AAAA","kid":"x448"}`),
		json.RawMessage(`"not a key"`),
	)
	keys, err := parseJWKS(set, []string{"RS256", "ES256"})
	if err != nil {
		t.Fatal(err)
	}
	if got := keyIDs(keys); !slices.Equal(got, []string{"rsa", "rsa-noalg", "ec"}) {
		t.Fatalf("kept %v", got)
	}

	for name, c := range map[string]struct {
		b    []byte
		want string
	}{
		"no usable key":   {jwksOf(jwk(t, &weakRSA.PublicKey, "weak", "RS256", "")), "no usable public signing key"},
		"not an object":   {[]byte(`[]`), "not a JSON object"},
		"no keys member":  {[]byte(`{}`), "not a JSON object"},
		"too large":       {append(jwksOf(), make([]byte, MaxJWKSBytes)...), "MaxJWKSBytes"},
		"too many keys":   {jwksOf(slices.Repeat([]json.RawMessage{jwk(t, &ecKey.PublicKey, "", "", "")}, MaxKeys+1)...), "MaxKeys"},
		"wrong algorithm": {jwksOf(jwk(t, &ecKey.PublicKey, "ec", "ES256", "")), "RS256"},
	} {
		if _, err := parseJWKS(c.b, []string{"RS256"}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", name, err, c.want)
		}
	}
}

func TestParseDiscovery(t *testing.T) {
	const iss = "https://idp.example/realms/x"
	cases := []struct{ doc, want string }{
		{`{"issuer":"https://idp.example/realms/x","jwks_uri":"https://idp.example/realms/x/certs"}`, ""},
		{`{"issuer":"https://idp.example/realms/x","jwks_uri":"https://idp.example:443/certs"}`, ""},
		{`{"issuer":"https://idp.example/realms/x/","jwks_uri":"https://idp.example/certs"}`, "not the configured"},
		{`{"issuer":"https://evil.example/realms/x","jwks_uri":"https://idp.example/certs"}`, "not the configured"},
		{`{"jwks_uri":"https://idp.example/certs"}`, "names issuer none"},
		{`{"issuer":"https://idp.example/realms/x"}`, "no jwks_uri"},
		{`{"issuer":"https://idp.example/realms/x","jwks_uri":"https://keys.example/certs"}`, "not on the issuer's origin"},
		{`{"issuer":"https://idp.example/realms/x","jwks_uri":"https://idp.example:8443/certs"}`, "not on the issuer's origin"},
		{`{"issuer":"https://idp.example/realms/x","jwks_uri":"http://idp.example/certs"}`, "only https"},
		{`{"issuer":"https://idp.example/realms/x","jwks_uri":3}`, "not a JSON object"},
		{`[]`, "not a JSON object"},
		// Each name exactly and once: encoding/json took the last issuer, or "ISSUER".
		{`{"issuer":"https://evil.example","issuer":"https://idp.example/realms/x","jwks_uri":"https://idp.example/certs"}`, "each once"},
		{`{"ISSUER":"https://idp.example/realms/x","jwks_uri":"https://idp.example/certs"}`, "names issuer none"},
	}
	for _, c := range cases {
		uri, err := parseDiscovery([]byte(c.doc), iss)
		if c.want == "" {
			if err != nil || uri == "" {
				t.Errorf("%s: %q %v", c.doc, uri, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.doc, err, c.want)
		}
	}
}

// A key set served by an issuer-shaped server: the fetch path, its size caps and its
// redirect policy.
func TestFetchBoundsAndRedirects(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	set := jwksOf(jwk(t, &ecKey.PublicKey, "ec", "ES256", "sig"))
	var srvURL string
	mux := http.NewServeMux()
	mux.HandleFunc("/good/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": srvURL + "/good", "jwks_uri": srvURL + "/moved-keys"})
	})
	mux.HandleFunc("/moved-keys", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/keys", http.StatusFound) // same origin: followed
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) { w.Write(set) })
	mux.HandleFunc("/huge/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(`{"issuer":"` + srvURL + `/huge","jwks_uri":"` + srvURL + `/huge-keys","pad":"`))
		w.Write([]byte(strings.Repeat("x", MaxDiscoveryBytes)))
		w.Write([]byte(`"}`))
	})
	mux.HandleFunc("/away/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		// Off the issuer's origin: refused before any connection is attempted.
		http.Redirect(w, r, "http://127.0.0.2:1/.well-known/openid-configuration", http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	srvURL = srv.URL

	fetch := func(path string) (*keySet, error) {
		is, err := compile(Issuer{Name: "t", Issuer: srvURL + path, Audience: Strings{"a"}, Algorithms: []string{"ES256"},
			Claims: Claims{Rules: []Rule{{When: map[string]Strings{}, Tenant: "t", Clearance: "OFFICIAL"}}}})
		if err != nil {
			t.Fatal(err)
		}
		k := newKeySet(is, originBound(srv.Client()), t.TempDir(), time.Now, nil)
		return k, k.fetch(context.Background())
	}
	k, err := fetch("/good")
	if err != nil {
		t.Fatal(err)
	}
	if n, uri, _, _, _ := k.status(); n != 1 || uri != srvURL+"/moved-keys" {
		t.Fatalf("%d keys from %s", n, uri)
	}
	if _, err := fetch("/huge"); err == nil || !strings.Contains(err.Error(), "MaxDiscoveryBytes") {
		t.Fatalf("oversized discovery document: %v", err)
	}
	if _, err := fetch("/away"); err == nil || !strings.Contains(err.Error(), "off the issuer's origin") {
		t.Fatalf("redirect off the origin: %v", err)
	}
}

func TestCacheRoundTripAndBounds(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	// '<' and '&' would grow under HTML escaping; the cache must not grow a key set.
	set := []byte(`{"keys": [` + string(jwk(t, &ecKey.PublicKey, "a<&>b", "ES256", "sig")) + `], "note": "<&>"}`)
	dir := t.TempDir()
	path := cachePath(dir, "corp")
	fetched := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := writeCache(path, cacheFile{Issuer: "https://idp.example", JWKSURI: "https://idp.example/keys", Fetched: fetched, JWKS: set}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !strings.Contains(string(b), `"note":"<&>"`) {
		t.Fatal("the cache escapes HTML characters")
	}
	c, keys, err := readCache(path, "https://idp.example", "", []string{"ES256"})
	if err != nil || c == nil || !c.Fetched.Equal(fetched) || !slices.Equal(keyIDs(keys), []string{"a<&>b"}) {
		t.Fatalf("read back %+v %v %v", c, keyIDs(keys), err)
	}
	if c, _, err := readCache(path, "https://other.example", "", []string{"ES256"}); c != nil || err != nil {
		t.Fatalf("cache of another issuer: %+v %v", c, err)
	}
	if c, _, err := readCache(path, "https://idp.example", "https://idp.example/other-keys", []string{"ES256"}); c != nil || err != nil {
		t.Fatalf("cache of another jwks_uri: %+v %v", c, err)
	}
	if c, _, err := readCache(filepath.Join(dir, "absent.jwks.json"), "https://idp.example", "", nil); c != nil || err != nil {
		t.Fatalf("absent cache: %+v %v", c, err)
	}
	if err := os.WriteFile(path, make([]byte, MaxCacheFileBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := readCache(path, "https://idp.example", "", []string{"ES256"}); err == nil || !strings.Contains(err.Error(), "MaxCacheFileBytes") {
		t.Fatalf("oversized cache: %v", err)
	}
	if err := writeCache(path, cacheFile{Issuer: "x", JWKS: []byte(`{"keys":[],"pad":"` + strings.Repeat("x", MaxJWKSBytes) + `"}`)}); err == nil {
		t.Fatal("wrote a key set larger than MaxJWKSBytes")
	}
}
