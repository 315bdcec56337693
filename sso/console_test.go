package sso_test

import (
	"strings"
	"testing"

	"github.com/sios-project/sios/sso"
)

const consoleMember = `"console":{"client_id":"sios","redirect_url":"https://sios.example/console/oidc/callback"},"claims"`

func TestConsoleClientConfig(t *testing.T) {
	ok := with(t, `"claims"`, consoleMember)
	list, err := sso.ParseConfig([]byte("[" + ok + "]"))
	if err != nil {
		t.Fatal(err)
	}
	if cc := list[0].Console; cc == nil || cc.ClientID != "sios" {
		t.Fatalf("console client not decoded: %+v", list[0].Console)
	}
	loopback := strings.Replace(ok, "https://sios.example", "http://127.0.0.1:7600", 1)
	if _, err := sso.ParseConfig([]byte("[" + loopback + "]")); err != nil {
		t.Fatalf("an http callback on loopback: %v", err)
	}
	cases := []struct{ name, old, new, want string }{
		{"no client id", `"client_id":"sios",`, ``, "(corp).console.client_id:"},
		{"client id not an audience", `"client_id":"sios"`, `"client_id":"other"`, `console.client_id: "other" is not one of the issuer's audience`},
		{"no redirect", `,"redirect_url":"https://sios.example/console/oidc/callback"`, ``, "console.redirect_url: missing"},
		{"http redirect", `https://sios.example/console`, `http://sios.example/console`, "must be https (http only on a loopback host)"},
		{"wrong path", `/console/oidc/callback`, `/callback`, "the path must be /console/oidc/callback"},
		{"query", `/console/oidc/callback"`, `/console/oidc/callback?x=1"`, "must not carry user info, a query or a fragment"},
		{"bad env", `"client_id":"sios"`, `"client_id":"sios","client_secret_env":"A B"`, "console.client_secret_env:"},
		{"openid scope", `"client_id":"sios"`, `"client_id":"sios","scopes":["openid"]`, `console.scopes: "openid"`},
		{"scope with space", `"client_id":"sios"`, `"client_id":"sios","scopes":["a b"]`, `console.scopes: "a b"`},
		{"unknown member", `"client_id":"sios"`, `"client_id":"sios","secret":"x"`, `unknown field "secret"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if !strings.Contains(ok, c.old) {
				t.Fatalf("%q not in the config", c.old)
			}
			_, err := sso.ParseConfig([]byte("[" + strings.Replace(ok, c.old, c.new, 1) + "]"))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}

func TestConsoleSecretFromTheEnvironment(t *testing.T) {
	cc := &sso.ConsoleClient{ClientID: "sios", ClientSecretEnv: "SIOS_TEST_CONSOLE_SECRET"}
	t.Setenv("SIOS_TEST_CONSOLE_SECRET", "")
	if _, err := cc.Secret("corp"); err == nil || !strings.Contains(err.Error(), "SIOS_TEST_CONSOLE_SECRET is empty or unset") {
		t.Fatalf("an unset secret: %v", err)
	}
	t.Setenv("SIOS_TEST_CONSOLE_SECRET", "s3cret")
	if s, err := cc.Secret("corp"); err != nil || s != "s3cret" {
		t.Fatalf("secret %q %v", s, err)
	}
	if s, err := (&sso.ConsoleClient{ClientID: "sios"}).Secret("corp"); err != nil || s != "" {
		t.Fatalf("a public client: %q %v", s, err)
	}
}
