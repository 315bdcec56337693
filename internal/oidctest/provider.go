// Package oidctest runs a real OpenID Provider for tests: github.com/zitadel/oidc's op package served
// on loopback, with an in-memory storage holding a few users with group and role
// claims, clients that receive JWT access tokens, and a signing key that can be
// rotated. Tokens come from its authorization code flow (authorize → login →
// callback → token endpoint), exactly as a browser sign-in would get them. It is for
// tests only: nothing in the node imports it.
package oidctest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/sios-project/sios/egress"
)

// provider is a running OpenID Provider on 127.0.0.1.
type Provider struct {
	Issuer  string
	srv     *httptest.Server
	store   *storage
	JWKSGET atomic.Int64 // requests for the key set
}

const redirectURI = "http://127.0.0.1:1/callback" // never dialled: the test reads the redirect

// Start serves an OpenID Provider with users (subject → extra claims) and the
// clients "sios-console" and "other-app" (secret "secret").
func Start(t testing.TB, users map[string]map[string]any) *Provider {
	t.Helper()
	p := &Provider{store: newStorage(t, users)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.Issuer = "http://" + ln.Addr().String()
	cfg := &op.Config{
		CryptoKey:             sha256.Sum256([]byte("sso test provider")),
		CodeMethodS256:        true,
		AuthMethodPost:        true,
		SupportedClaims:       append(op.DefaultSupportedClaims, "groups", "realm_access", "org"),
		SupportedUILocales:    nil,
		DeviceAuthorization:   op.DeviceAuthorizationConfig{},
		GrantTypeRefreshToken: false,
	}
	o, err := op.NewProvider(cfg, p.store, op.StaticIssuer(p.Issuer), op.WithAllowInsecure())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/login", p.loginPage)
	mux.Handle("/", o)
	p.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/keys" {
			p.JWKSGET.Add(1)
		}
		mux.ServeHTTP(w, r)
	})}}
	p.srv.Start()
	t.Cleanup(p.srv.Close)
	return p
}

// Stop takes the provider off the network: its port refuses connections.
func (p *Provider) Stop() { p.srv.Close() }

// EgressClient is the client a node would pass: its transport dials only through an
// egress guard that allows the provider's address and nothing else.
func (p *Provider) EgressClient(t testing.TB) *http.Client {
	t.Helper()
	u, _ := url.Parse(p.Issuer)
	host, port, _ := net.SplitHostPort(u.Host)
	var n int
	fmt.Sscan(port, &n)
	g, err := egress.New([]egress.Rule{{Host: host, Port: n}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	tr := g.HTTPTransport()
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// SignIn runs the authorization code flow for user at client and returns the ID token
// and the (JWT) access token the token endpoint issues.
func (p *Provider) SignIn(t testing.TB, client, user string) (idToken, accessToken string) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	q := url.Values{
		"client_id":     {client},
		"redirect_uri":  {redirectURI},
		"response_type": {"code"},
		"scope":         {"openid"},
		"state":         {"s-" + user},
		"nonce":         {"n-" + user},
	}
	loc := redirectTo(t, c, p.Issuer+"/authorize?"+q.Encode())
	id := loc.Query().Get("authRequestID")
	if id == "" {
		t.Fatalf("authorize redirected to %s, not to the login page", loc)
	}
	// The login page: the user authenticates (here: the test says who), and the
	// login UI sends the browser back to the provider's callback.
	p.store.login(t, id, user)
	loc = redirectTo(t, c, p.Issuer+"/authorize/callback?id="+url.QueryEscape(id))
	code := loc.Query().Get("code")
	if code == "" || loc.Query().Get("state") != "s-"+user {
		t.Fatalf("callback redirected to %s, want a code and the state", loc)
	}
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}}
	req, _ := http.NewRequest(http.MethodPost, p.Issuer+"/oauth/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(client, "secret")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		IDToken     string `json:"id_token"`
		AccessToken string `json:"access_token"`
		Error       string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("token endpoint: %s %v %s", resp.Status, err, tok.Error)
	}
	if strings.Count(tok.IDToken, ".") != 2 || strings.Count(tok.AccessToken, ".") != 2 {
		t.Fatalf("token endpoint gave no JWTs: %+v", tok)
	}
	return tok.IDToken, tok.AccessToken
}

func redirectTo(t testing.TB, c *http.Client, u string) *url.URL {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("GET %s: %s, want a redirect", u, resp.Status)
	}
	loc, err := resp.Location()
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// RotateKey makes a new signing key current. The key set publishes the new key, and
// the old one too if keepOld.
func (p *Provider) RotateKey(t testing.TB, keepOld bool) string {
	t.Helper()
	return p.store.rotate(t, keepOld)
}

// storage is the provider's in-memory op.Storage.
type storage struct {
	users   map[string]map[string]any
	clients map[string]*client

	mu       sync.Mutex
	requests map[string]*authRequest // guarded by mu
	codes    map[string]string       // guarded by mu; code → request id
	keys     []*signingKey           // guarded by mu; the last signs
	keepOld  bool                    // guarded by mu
	seq      int                     // guarded by mu
	redirect []string                // guarded by mu; redirect URIs allowed besides redirectURI
}

var (
	_ op.Storage                   = (*storage)(nil)
	_ op.CanSetUserinfoFromRequest = (*storage)(nil)
)

func newStorage(t testing.TB, users map[string]map[string]any) *storage {
	s := &storage{
		users:    users,
		clients:  map[string]*client{},
		requests: map[string]*authRequest{},
		codes:    map[string]string{},
		keepOld:  true,
	}
	s.clients["sios-console"] = &client{id: "sios-console", s: s}
	s.clients["other-app"] = &client{id: "other-app", s: s}
	s.rotate(t, true)
	return s
}

func (s *storage) rotate(t testing.TB, keepOld bool) string {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	k := &signingKey{id: fmt.Sprintf("key-%d", s.seq), key: key}
	s.keys = append(s.keys, k)
	s.keepOld = keepOld
	return k.id
}

func (s *storage) login(t testing.TB, id, user string) {
	t.Helper()
	if err := s.authenticate(id, user); err != nil {
		t.Fatal(err)
	}
}

// authenticate marks the auth request id as signed in by user.
func (s *storage) authenticate(id, user string) error {
	if _, ok := s.users[user]; !ok {
		return fmt.Errorf("no user %q at the provider", user)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.requests[id]
	if !ok {
		return fmt.Errorf("no auth request %q", id)
	}
	r.subject, r.done, r.authTime = user, true, time.Now()
	return nil
}

// AllowRedirect lets the clients send users back to uri as well (a node's console
// callback on loopback).
func (p *Provider) AllowRedirect(uri string) {
	p.store.mu.Lock()
	defer p.store.mu.Unlock()
	p.store.redirect = append(p.store.redirect, uri)
}

// loginPage is the provider's login page for a browser: a form asking who signs in
// (the test provider has no passwords); posting it completes the auth request and
// sends the browser on to the provider's callback, as a real login UI does.
func (p *Provider) loginPage(w http.ResponseWriter, r *http.Request) {
	id := r.FormValue("authRequestID")
	if r.Method == http.MethodPost {
		if err := p.store.authenticate(id, r.PostFormValue("username")); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		http.Redirect(w, r, "/authorize/callback?id="+url.QueryEscape(id), http.StatusFound)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	fmt.Fprintf(w, `<!doctype html><title>Test provider sign-in</title>
<form method="post" action="/login"><input type="hidden" name="authRequestID" value="%s">
<label>User <input id="username" name="username"></label> <button id="login" type="submit">Sign in</button></form>`,
		html.EscapeString(id))
}

func (s *storage) CreateAuthRequest(_ context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	r := &authRequest{id: fmt.Sprintf("req-%d", s.seq), clientID: req.ClientID, redirectURI: req.RedirectURI,
		scopes: req.Scopes, state: req.State, nonce: req.Nonce, responseType: req.ResponseType}
	if req.CodeChallenge != "" {
		r.challenge = &oidc.CodeChallenge{Challenge: req.CodeChallenge, Method: req.CodeChallengeMethod}
	}
	s.requests[r.id] = r
	return r, nil
}

func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.requests[id]
	if !ok {
		return nil, errors.New("no such auth request")
	}
	return r, nil
}

func (s *storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	id, ok := s.codes[code]
	s.mu.Unlock()
	if !ok {
		return nil, errors.New("no such code")
	}
	return s.AuthRequestByID(ctx, id)
}

func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = id
	return nil
}

func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.requests, id)
	for c, rid := range s.codes {
		if rid == id {
			delete(s.codes, c)
		}
	}
	return nil
}

func (s *storage) CreateAccessToken(context.Context, op.TokenRequest) (string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return fmt.Sprintf("at-%d", s.seq), time.Now().Add(5 * time.Minute), nil
}

func (s *storage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, errors.New("refresh tokens are not offered")
}

func (s *storage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, errors.New("refresh tokens are not offered")
}

func (s *storage) TerminateSession(context.Context, string, string) error { return nil }

func (s *storage) RevokeToken(context.Context, string, string, string) *oidc.Error { return nil }

func (s *storage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[len(s.keys)-1], nil
}

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := s.keys
	if !s.keepOld {
		keys = keys[len(keys)-1:]
	}
	out := make([]op.Key, 0, len(keys))
	for _, k := range keys {
		out = append(out, publicKey{k})
	}
	return out, nil
}

func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	c, ok := s.clients[id]
	if !ok {
		return nil, errors.New("no such client")
	}
	return c, nil
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	if _, ok := s.clients[id]; !ok || secret != "secret" {
		return errors.New("wrong client credentials")
	}
	return nil
}

func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest puts the user's claims into the ID token.
func (s *storage) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, req op.IDTokenRequest, _ []string) error {
	info.Subject = req.GetSubject()
	for k, v := range s.users[req.GetSubject()] {
		info.AppendClaims(k, v)
	}
	return nil
}

func (s *storage) SetUserinfoFromToken(context.Context, *oidc.UserInfo, string, string, string) error {
	return errors.New("the userinfo endpoint is not offered")
}

func (s *storage) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return errors.New("introspection is not offered")
}

// GetPrivateClaimsFromScopes puts the user's claims into the JWT access token.
func (s *storage) GetPrivateClaimsFromScopes(_ context.Context, user, _ string, _ []string) (map[string]any, error) {
	return maps.Clone(s.users[user]), nil
}

func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("JWT profile grants are not offered")
}

func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("JWT profile grants are not offered")
}

func (s *storage) Health(context.Context) error { return nil }

type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

type publicKey struct{ k *signingKey }

func (p publicKey) ID() string                         { return p.k.id }
func (p publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (p publicKey) Use() string                        { return "sig" }
func (p publicKey) Key() any                           { return &p.k.key.PublicKey }

type authRequest struct {
	id, clientID, redirectURI, state, nonce string
	scopes                                  []string
	responseType                            oidc.ResponseType
	subject                                 string
	done                                    bool
	authTime                                time.Time
	challenge                               *oidc.CodeChallenge // PKCE, when the client sent one
}

func (r *authRequest) GetID() string                         { return r.id }
func (r *authRequest) GetACR() string                        { return "" }
func (r *authRequest) GetAMR() []string                      { return []string{"pwd"} }
func (r *authRequest) GetAudience() []string                 { return []string{r.clientID} }
func (r *authRequest) GetAuthTime() time.Time                { return r.authTime }
func (r *authRequest) GetClientID() string                   { return r.clientID }
func (r *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return r.challenge }
func (r *authRequest) GetNonce() string                      { return r.nonce }
func (r *authRequest) GetRedirectURI() string                { return r.redirectURI }
func (r *authRequest) GetResponseType() oidc.ResponseType    { return r.responseType }
func (r *authRequest) GetResponseMode() oidc.ResponseMode    { return "" }
func (r *authRequest) GetScopes() []string                   { return r.scopes }
func (r *authRequest) GetState() string                      { return r.state }
func (r *authRequest) GetSubject() string                    { return r.subject }
func (r *authRequest) Done() bool                            { return r.done }

// client is a confidential web client that receives JWT access tokens.
type client struct {
	id string
	s  *storage
}

func (c *client) GetID() string { return c.id }
func (c *client) RedirectURIs() []string {
	c.s.mu.Lock()
	defer c.s.mu.Unlock()
	return append([]string{redirectURI}, c.s.redirect...)
}
func (c *client) PostLogoutRedirectURIs() []string    { return nil }
func (c *client) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c *client) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType         { return []oidc.GrantType{oidc.GrantTypeCode} }
func (c *client) LoginURL(id string) string            { return "/login?authRequestID=" + url.QueryEscape(id) }
func (c *client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeJWT }
func (c *client) IDTokenLifetime() time.Duration       { return time.Hour }
func (c *client) DevMode() bool                        { return false }
func (c *client) IsScopeAllowed(string) bool           { return false }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *client) ClockSkew() time.Duration             { return 0 }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
