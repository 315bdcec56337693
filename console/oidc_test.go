package console

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

func jwtWith(claims map[string]any) string {
	h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256"}`))
	b, _ := json.Marshal(claims)
	return h + "." + base64.RawURLEncoding.EncodeToString(b) + ".c2ln"
}

// The ID token must be the answer to this flow: its nonce, the console's client.
func TestIDClaimsCheck(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	good := map[string]any{"nonce": "n1", "aud": "sios-console", "exp": now.Unix() + 60}
	cases := []struct {
		name   string
		change func(map[string]any)
		want   string
	}{
		{"good", func(map[string]any) {}, ""},
		{"fractional exp", func(c map[string]any) { c["exp"] = float64(now.Unix()) + 60.5 }, ""},
		{"several audiences with azp", func(c map[string]any) { c["aud"], c["azp"] = []string{"sios-console", "api"}, "sios-console" }, ""},
		{"another nonce", func(c map[string]any) { c["nonce"] = "n2" }, "nonce"},
		{"no nonce", func(c map[string]any) { delete(c, "nonce") }, "nonce"},
		{"another client", func(c map[string]any) { c["aud"] = "other-app" }, "not issued to the console's client"},
		{"several audiences, no azp", func(c map[string]any) { c["aud"] = []string{"sios-console", "api"} }, "azp"},
		{"expired", func(c map[string]any) { c["exp"] = now.Unix() }, "expired"},
	}
	for _, c := range cases {
		claims := map[string]any{}
		for k, v := range good {
			claims[k] = v
		}
		c.change(claims)
		parsed, err := parseIDClaims(jwtWith(claims))
		if err == nil {
			err = parsed.check("sios-console", "n1", now)
		}
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%s: %v, want an error mentioning %q", c.name, err, c.want)
		}
	}
	for _, bad := range []string{"", "a.b", "a.!!.c", "a." + base64.RawURLEncoding.EncodeToString([]byte(`[1]`)) + ".c"} {
		if _, err := parseIDClaims(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestCheckEndpoint(t *testing.T) {
	for raw, ok := range map[string]bool{
		"https://idp.example/authorize": true,
		"http://127.0.0.1:5556/auth":    true,
		"http://localhost/auth":         true,
		"http://idp.example/authorize":  false,
		"javascript:alert(1)":           false,
		"/relative":                     false,
		"ftp://idp.example/x":           false,
		"http://[::1]:8080/authorize":   true,
		"http://127.0.0.1.nip.io/steal": false,
	} {
		if err := checkEndpoint(raw); (err == nil) != ok {
			t.Errorf("checkEndpoint(%q) = %v", raw, err)
		}
	}
}

type countingTransport struct{ n int }

func (c *countingTransport) RoundTrip(*http.Request) (*http.Response, error) {
	c.n++
	return nil, errors.New("connection refused")
}

// Anyone may start a sign-in: a provider that is down is asked again only after
// DiscoveryRetry, however many sign-ins are started meanwhile.
func TestDiscoveryIsNotRetriedAtOnce(t *testing.T) {
	c := &clock{time.Unix(1_800_000_000, 0)}
	tr := &countingTransport{}
	o := newOIDCFlows(nil, &http.Client{Transport: tr}, c.now)
	client := OIDCClient{Name: "corp", Issuer: "https://idp.example"}
	for range 5 {
		if _, err := o.provider(context.Background(), client); err == nil {
			t.Fatal("discovery succeeded without a provider")
		}
	}
	if tr.n != 1 {
		t.Fatalf("%d discovery requests within DiscoveryRetry, want 1", tr.n)
	}
	c.t = c.t.Add(DiscoveryRetry)
	o.provider(context.Background(), client)
	if tr.n != 2 {
		t.Fatalf("%d discovery requests after DiscoveryRetry, want 2", tr.n)
	}
}
