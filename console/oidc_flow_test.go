package console_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/sios-project/sios/internal/oidctest"
	"github.com/sios-project/sios/node"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/sso"
)

// startOIDCNode starts a node whose console signs in with an in-process OpenID
// Provider (a real one: zitadel's op), whose users are alice (a clinician) and mallory.
func startOIDCNode(t *testing.T) (*testNode, *oidctest.Provider) {
	t.Setenv("SIOS_TEST_CONSOLE_SECRET", "secret") // oidctest's clients' secret
	idp := oidctest.Start(t, map[string]map[string]any{
		"alice":   {"groups": []string{"clinicians"}},
		"mallory": {"groups": []string{"visitors"}},
	})
	tn := startNode(t, func(cfg *node.Config, addr string) {
		redirect := "http://" + addr + sso.ConsoleCallbackPath
		idp.AllowRedirect(redirect)
		cfg.OIDC = []sso.Issuer{{Name: "corp", Issuer: idp.Issuer, Audience: sso.Strings{"sios-console"},
			Claims: sso.Claims{Rules: []sso.Rule{{When: map[string]sso.Strings{"groups": {"clinicians"}}, Tenant: "hospital",
				Clearance: "OFFICIAL-SENSITIVE", Roles: []string{"clinician"}}}},
			Console: &sso.ConsoleClient{ClientID: "sios-console", ClientSecretEnv: "SIOS_TEST_CONSOLE_SECRET", RedirectURL: redirect}}}
	})
	return tn, idp
}

// follow GETs u and follows redirects across origins, as a browser does, until a page.
func (b *browser) follow(u string) (string, page) {
	b.t.Helper()
	for range 10 {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		p := b.do(req)
		if p.status/100 != 3 {
			return u, p
		}
		next, err := url.Parse(u)
		if err != nil {
			b.t.Fatal(err)
		}
		loc, err := next.Parse(p.header.Get("Location"))
		if err != nil {
			b.t.Fatal(err)
		}
		u = loc.String()
	}
	b.t.Fatalf("more than 10 redirects from %s", u)
	return "", page{}
}

// oidcSignIn starts a console sign-in with the provider and signs in there as user;
// it returns the page the console answers the provider's redirect back with.
func (b *browser) oidcSignIn(user string) page {
	b.t.Helper()
	start := b.get("/console/oidc/start?issuer=corp&next=/console/brains")
	authz, err := url.Parse(start.header.Get("Location"))
	if err != nil || start.status != http.StatusSeeOther {
		b.t.Fatalf("start: %d %v", start.status, err)
	}
	q := authz.Query()
	if q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256" || q.Get("state") == "" || q.Get("nonce") == "" ||
		q.Get("client_id") != "sios-console" || !strings.HasSuffix(q.Get("redirect_uri"), sso.ConsoleCallbackPath) {
		b.t.Fatalf("the authorization request lacks PKCE, state or nonce: %s", authz)
	}
	loginURL, login := b.follow(authz.String())
	if !strings.Contains(login.body, `name="username"`) {
		b.t.Fatalf("the provider's login page: %d %s", login.status, login.body)
	}
	lu, _ := url.Parse(loginURL)
	req, _ := http.NewRequest(http.MethodPost, lu.Scheme+"://"+lu.Host+"/login",
		strings.NewReader(url.Values{"authRequestID": {lu.Query().Get("authRequestID")}, "username": {user}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	p := b.do(req)
	loc, _ := lu.Parse(p.header.Get("Location"))
	_, back := b.follow(loc.String())
	return back
}

func TestOIDCSignIn(t *testing.T) {
	tn, _ := startOIDCNode(t)
	b := tn.browser(t)
	if body := b.get("/console/signin").body; !strings.Contains(body, `id="oidc-corp"`) {
		t.Fatalf("the sign-in page offers no provider:\n%s", body)
	}
	back := b.oidcSignIn("alice")
	if back.status != http.StatusOK || !strings.Contains(back.body, `<meta http-equiv="refresh" content="0;url=/console/brains">`) ||
		!strings.Contains(back.body, "oidc:corp:alice") {
		t.Fatalf("back from the provider: %d\n%s", back.status, back.body)
	}
	brains := b.get("/console/brains")
	if brains.status != http.StatusOK || !strings.Contains(brains.body, `<span id="viewer">oidc:corp:alice</span>`) ||
		!strings.Contains(brains.body, ">OFFICIAL-SENSITIVE<") || !strings.Contains(brains.body, ">clinician<") {
		t.Fatalf("the brains page after an OIDC sign-in: %d\n%s", brains.status, brains.body)
	}
	// The mapped clearance decides what is shown: no SECRET brain for this user.
	if strings.Contains(brains.body, "cyber-threat") {
		t.Fatal("an OFFICIAL-SENSITIVE user is shown a SECRET brain")
	}
	recs := tn.records(t, action(oar.ActionConsoleSignIn))
	var sso, con bool
	for _, r := range recs {
		switch r.Action {
		case oar.ActionSSOSignIn:
			sso = r.Actor.ID == "oidc:corp:alice" && r.Tenant == "hospital"
		case oar.ActionConsoleSignIn:
			con = r.Actor.ID == "oidc:corp:alice" && strings.Contains(string(r.Detail), `"issuer":"corp"`) &&
				strings.Contains(string(r.Detail), `"via":"oidc"`)
		}
	}
	if !sso || !con {
		t.Fatalf("sign-in records: sso.sign-in %v, console.sign-in %v", sso, con)
	}

	// A user no rule maps gets nothing.
	m := tn.browser(t)
	if p := m.oidcSignIn("mallory"); p.status != http.StatusForbidden || !strings.Contains(p.body, "no rule of this node grants them anything") {
		t.Fatalf("an unmapped user: %d\n%s", p.status, p.body)
	}
	if p := m.get("/console/node"); p.status != http.StatusSeeOther {
		t.Fatalf("the unmapped user has a session: %d", p.status)
	}
}

// The answer from the provider must belong to the sign-in this browser started.
func TestOIDCCallbackChecksItsFlow(t *testing.T) {
	tn, _ := startOIDCNode(t)
	b := tn.browser(t)
	start := b.get("/console/oidc/start?issuer=corp")
	authz, _ := url.Parse(start.header.Get("Location"))
	state := authz.Query().Get("state")
	if p := b.get("/console/oidc/callback?code=x&state=" + url.QueryEscape(state+"x")); p.status != http.StatusBadRequest || !strings.Contains(p.body, "(state)") {
		t.Fatalf("another state: %d\n%s", p.status, p.body)
	}
	// The flow is spent: the right state now finds no flow either.
	if p := b.get("/console/oidc/callback?code=x&state=" + url.QueryEscape(state)); p.status != http.StatusBadRequest || !strings.Contains(p.body, "holds no sign-in in progress") {
		t.Fatalf("a spent flow: %d\n%s", p.status, p.body)
	}
	// Another browser (no flow cookie) cannot finish this one's sign-in.
	b.get("/console/oidc/start?issuer=corp")
	if p := tn.browser(t).get("/console/oidc/callback?code=x&state=" + url.QueryEscape(state)); p.status != http.StatusBadRequest {
		t.Fatalf("a callback in another browser: %d", p.status)
	}
	if p := b.get("/console/oidc/start?issuer=nobody"); p.status != http.StatusNotFound {
		t.Fatalf("an unknown provider: %d", p.status)
	}
	// The provider's refusal is shown, not trusted.
	b.get("/console/oidc/start?issuer=corp")
	start = b.get("/console/oidc/start?issuer=corp")
	authz, _ = url.Parse(start.header.Get("Location"))
	p := b.get("/console/oidc/callback?error=access_denied&error_description=%3Cscript%3E&state=" + url.QueryEscape(authz.Query().Get("state")))
	if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "access_denied") || strings.Contains(p.body, "<script>") {
		t.Fatalf("the provider's refusal: %d\n%s", p.status, p.body)
	}
}
