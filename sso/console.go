package sso

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"slices"
)

// ConsoleClient is how the node's web console signs an issuer's users in: the
// authorization code flow with PKCE, state and nonce, as the client ClientID. The ID
// token it receives is then checked and mapped exactly like a bearer token
// (Authenticate), so ClientID must be one of the issuer's audiences.
type ConsoleClient struct {
	// ClientID is the console's client id at the issuer.
	ClientID string `json:"client_id"`
	// ClientSecretEnv names the environment variable that holds the client's secret,
	// for a confidential client (sent to the token endpoint with HTTP Basic
	// authentication). Empty: a public client, protected by PKCE alone.
	ClientSecretEnv string `json:"client_secret_env,omitempty"`
	// RedirectURL is the console's callback exactly as registered at the issuer:
	// SCHEME://HOST[:PORT]/console/oidc/callback, https except on a loopback host.
	RedirectURL string `json:"redirect_url"`
	// Scopes are requested besides "openid" (for example "groups", where the issuer
	// puts group claims in the ID token only when asked).
	Scopes []string `json:"scopes,omitempty"`
}

// ConsoleCallbackPath is the path of the console's OIDC callback.
const ConsoleCallbackPath = "/console/oidc/callback"

// Caps on the console client's configuration.
const (
	// MaxConsoleScopes is the most extra scopes the console asks for.
	MaxConsoleScopes = 16
	// MaxClientIDBytes bounds a client id (and a scope).
	MaxClientIDBytes = 256
)

var (
	envPattern   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	scopePattern = regexp.MustCompile(`^[\x21\x23-\x5b\x5d-\x7e]+$`) // RFC 6749 scope-token
)

// checkConsole checks an issuer's console client against its audiences.
func checkConsole(cc *ConsoleClient, audience []string) error {
	if cc.ClientID == "" || len(cc.ClientID) > MaxClientIDBytes {
		return fmt.Errorf("client_id: %q must be 1–%d bytes (MaxClientIDBytes)", clip(cc.ClientID), MaxClientIDBytes)
	}
	if !slices.Contains(audience, cc.ClientID) {
		return fmt.Errorf("client_id: %q is not one of the issuer's audience %q; add it there, or the console's ID tokens would be refused", cc.ClientID, audience)
	}
	if cc.ClientSecretEnv != "" && !envPattern.MatchString(cc.ClientSecretEnv) {
		return fmt.Errorf("client_secret_env: %q is not an environment variable name", clip(cc.ClientSecretEnv))
	}
	if err := checkRedirect(cc.RedirectURL); err != nil {
		return fmt.Errorf("redirect_url: %v", err)
	}
	if len(cc.Scopes) > MaxConsoleScopes {
		return fmt.Errorf("scopes: %d scopes, more than %d (MaxConsoleScopes)", len(cc.Scopes), MaxConsoleScopes)
	}
	for _, s := range cc.Scopes {
		if len(s) > MaxClientIDBytes || !scopePattern.MatchString(s) || s == "openid" {
			return fmt.Errorf("scopes: %q is not a scope to add (printable, no spaces, not \"openid\", which is always asked for)", clip(s))
		}
	}
	return nil
}

// checkRedirect accepts the console's callback URL: absolute, https (http only on a
// loopback host), path ConsoleCallbackPath, no user info, query or fragment.
func checkRedirect(raw string) error {
	if raw == "" {
		return errors.New("missing; the console's callback as registered at the issuer, https://HOST" + ConsoleCallbackPath)
	}
	if len(raw) > MaxURLBytes {
		return fmt.Errorf("%d bytes, more than %d (MaxURLBytes)", len(raw), MaxURLBytes)
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return fmt.Errorf("%q is not an absolute URL", clip(raw))
	}
	if u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return fmt.Errorf("%q must not carry user info, a query or a fragment", clip(raw))
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && loopbackHost(u.Hostname()):
	default:
		return fmt.Errorf("%q must be https (http only on a loopback host)", clip(raw))
	}
	if u.Path != ConsoleCallbackPath {
		return fmt.Errorf("%q: the path must be %s, where the console receives the answer", clip(raw), ConsoleCallbackPath)
	}
	return nil
}

// Secret reads a console client's secret from its environment variable: ""
// for a public client; an error naming the variable when it is set in the
// configuration but empty in the environment.
func (cc *ConsoleClient) Secret(issuer string) (string, error) {
	if cc.ClientSecretEnv == "" {
		return "", nil
	}
	s := os.Getenv(cc.ClientSecretEnv)
	if s == "" {
		return "", fmt.Errorf("config oidc (%s).console.client_secret_env: the environment variable %s is empty or unset", issuer, cc.ClientSecretEnv)
	}
	return s, nil
}
