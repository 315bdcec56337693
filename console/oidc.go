package console

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/sios-project/sios/ratelimit"
	"github.com/sios-project/sios/sso"
)

// Sign-in through an identity provider: the authorization code flow (RFC 6749) with
// PKCE (RFC 7636, S256), state and nonce. The browser leaves with a sealed flow cookie
// holding the state, nonce and code verifier; it comes back with a code, which the
// node exchanges (through its egress guard) for an ID token. The ID token must carry
// the flow's nonce and name the console's client as its audience; it then goes
// through the node's own authentication exactly as a bearer token on the API does —
// the sso validator and the operator's mapping rules — and that records the sign-in
// as sso.sign-in, besides the console's own console.sign-in.

// MaxDiscoveryBytes and MaxTokenResponseBytes bound what the console reads from an
// identity provider (the sso package reads discovery within the same cap).
const (
	MaxDiscoveryBytes     = sso.MaxDiscoveryBytes
	MaxTokenResponseBytes = 2*sso.MaxTokenBytes + 8<<10
)

// oidcFlows holds the identity providers the console signs in with, and their
// discovered endpoints.
type oidcFlows struct {
	clients map[string]OIDCClient // by issuer name
	http    *http.Client
	now     func() time.Time

	exchanges *ratelimit.Limiter // code exchanges, all providers together

	mu        sync.Mutex
	providers map[string]discovered // guarded by mu; by issuer name
}

type discovered struct {
	p       *oidc.Provider // nil after a failure
	fetched time.Time      // of p, or of the failure
	err     error
}

func newOIDCFlows(list []OIDCClient, client *http.Client, now func() time.Time) *oidcFlows {
	o := &oidcFlows{clients: map[string]OIDCClient{}, now: now, providers: map[string]discovered{}, exchanges: ratelimit.New(now)}
	for _, c := range list {
		o.clients[c.Name] = c
	}
	if client != nil {
		o.http = boundedClient(client, MaxTokenResponseBytes)
	}
	return o
}

// boundedClient copies c so that it follows no redirect and reads no response body
// beyond max bytes: what comes back from a provider is outside bytes.
func boundedClient(c *http.Client, max int64) *http.Client {
	cp := *c
	cp.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	rt := cp.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	cp.Transport = boundedTransport{rt: rt, max: max}
	return &cp
}

type boundedTransport struct {
	rt  http.RoundTripper
	max int64
}

func (b boundedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := b.rt.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	resp.Body = &limitedBody{rc: resp.Body, left: b.max, max: b.max}
	return resp, nil
}

// limitedBody fails a read past its limit instead of truncating silently.
type limitedBody struct {
	rc        io.ReadCloser
	left, max int64
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, fmt.Errorf("the identity provider's answer is longer than %d bytes", l.max)
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.rc.Read(p)
	l.left -= int64(n)
	return n, err
}

func (l *limitedBody) Close() error { return l.rc.Close() }

// provider returns the issuer's discovered endpoints, fetching them at most once per
// DiscoveryTTL. Nothing is fetched before the first sign-in: the node makes no
// outbound call at start.
func (o *oidcFlows) provider(ctx context.Context, c OIDCClient) (*oidc.Provider, error) {
	o.mu.Lock()
	d, ok := o.providers[c.Name]
	o.mu.Unlock()
	switch age := o.now().Sub(d.fetched); {
	case ok && d.p != nil && age < DiscoveryTTL:
		return d.p, nil
	case ok && d.p == nil && age < DiscoveryRetry:
		return nil, fmt.Errorf("%v (the last attempt, %v ago; the next after DiscoveryRetry, %v)", d.err, age.Round(time.Second), DiscoveryRetry)
	}
	p, err := o.discover(ctx, c)
	o.mu.Lock()
	o.providers[c.Name] = discovered{p: p, fetched: o.now(), err: err}
	o.mu.Unlock()
	return p, err
}

// discover fetches an issuer's discovery document and checks its endpoints.
func (o *oidcFlows) discover(ctx context.Context, c OIDCClient) (*oidc.Provider, error) {
	ctx, cancel := context.WithTimeout(ctx, ExchangeTimeout)
	defer cancel()
	p, err := oidc.NewProvider(oidc.ClientContext(ctx, boundedClient(o.http, MaxDiscoveryBytes)), c.Issuer)
	if err != nil {
		return nil, err
	}
	if err := checkEndpoint(p.Endpoint().AuthURL); err != nil {
		return nil, fmt.Errorf("its authorization endpoint %v", err)
	}
	if err := checkEndpoint(p.Endpoint().TokenURL); err != nil {
		return nil, fmt.Errorf("its token endpoint %v", err)
	}
	return p, nil
}

// checkEndpoint accepts an https URL, or http on a loopback host.
func checkEndpoint(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", clip(raw))
	}
	if u.Scheme == "https" {
		return nil
	}
	h := u.Hostname()
	if ip := net.ParseIP(h); u.Scheme == "http" && (strings.EqualFold(h, "localhost") || ip != nil && ip.IsLoopback()) {
		return nil
	}
	return fmt.Errorf("%q is not https", clip(raw))
}

func (o *oidcFlows) oauth2Config(c OIDCClient, p *oidc.Provider) *oauth2.Config {
	ep := p.Endpoint()
	ep.AuthStyle = oauth2.AuthStyleInHeader
	if c.Secret == "" {
		ep.AuthStyle = oauth2.AuthStyleInParams // a public client sends its id alone
	}
	return &oauth2.Config{ClientID: c.Client.ClientID, ClientSecret: c.Secret, Endpoint: ep,
		RedirectURL: c.Client.RedirectURL, Scopes: append([]string{oidc.ScopeOpenID}, c.Client.Scopes...)}
}

// oidcStart sends the browser to the identity provider with a new flow.
func (c *Console) oidcStart(w http.ResponseWriter, r *http.Request) {
	name, err := query(r, "issuer")
	if err != nil {
		c.renderError(w, r, nil, err)
		return
	}
	next, _ := query(r, "next")
	client, ok := c.oidc.clients[name]
	if !ok {
		c.renderError(w, r, nil, errorf(http.StatusNotFound, "no identity provider %q offers console sign-in on this node", clip(name)))
		return
	}
	p, err := c.oidc.provider(r.Context(), client)
	if err != nil {
		c.cfg.Log.Warn("console: identity provider discovery", "issuer", name, "err", err)
		c.renderError(w, r, nil, errorf(http.StatusBadGateway, "the identity provider %s could not be reached or did not answer as one (the node's log says why); try again later, or sign in with an API key", name))
		return
	}
	f := &flow{Issuer: name, State: c.keys.newID(), Nonce: c.keys.newID(), Verifier: oauth2.GenerateVerifier(),
		Next: safeNext(next), Expires: c.cfg.Now().Add(SignInFlowLifetime).Unix()}
	c.setCookie(w, r, &http.Cookie{Name: flowCookie, Value: c.keys.sealFlow(f), Path: sso.ConsoleCallbackPath,
		MaxAge: int(SignInFlowLifetime.Seconds()), SameSite: http.SameSiteLaxMode})
	u := c.oidc.oauth2Config(client, p).AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier))
	http.Redirect(w, r, u, http.StatusSeeOther)
}

// oidcCallback receives the browser back from the identity provider.
func (c *Console) oidcCallback(w http.ResponseWriter, r *http.Request) {
	// The flow is used once, whatever happens next.
	c.clearCookie(w, r, flowCookie, sso.ConsoleCallbackPath, http.SameSiteLaxMode)
	val, _ := cookieValue(r, flowCookie)
	f, err := c.keys.openFlow(val, c.cfg.Now())
	if err != nil {
		c.showSignIn(w, r, http.StatusBadRequest, Prefix, "Not signed in: "+err.Error()+".")
		return
	}
	q := map[string]string{}
	for _, k := range []string{"state", "code", "error", "error_description"} {
		if q[k], err = query(r, k); err != nil {
			c.renderError(w, r, nil, err)
			return
		}
	}
	if subtle.ConstantTimeCompare([]byte(q["state"]), []byte(f.State)) != 1 {
		c.showSignIn(w, r, http.StatusBadRequest, f.Next, "Not signed in: the identity provider's answer does not belong to the sign-in this browser started (state). Start again.")
		return
	}
	if q["error"] != "" {
		c.showSignIn(w, r, http.StatusUnauthorized, f.Next, fmt.Sprintf("Not signed in: the identity provider %s answered %q: %s", f.Issuer, clip(q["error"]), clip(q["error_description"])))
		return
	}
	client, ok := c.oidc.clients[f.Issuer]
	if !ok || q["code"] == "" {
		c.showSignIn(w, r, http.StatusBadRequest, f.Next, "Not signed in: the identity provider sent no code.")
		return
	}
	idToken, err := c.exchange(r.Context(), client, q["code"], f.Verifier)
	if err != nil {
		c.cfg.Log.Warn("console: code exchange", "issuer", f.Issuer, "err", err)
		c.showSignIn(w, r, http.StatusBadGateway, f.Next, "Not signed in: the node could not exchange the identity provider's code for an ID token (the node's log says why).")
		return
	}
	claims, err := parseIDClaims(idToken)
	if err == nil {
		err = claims.check(client.Client.ClientID, f.Nonce, c.cfg.Now())
	}
	if err != nil {
		// The token is not the one this flow asked for: refused and recorded like a
		// bad bearer token, before anything is decided with it.
		if !c.cfg.Pipeline.RefuseAuthentication(r.Context(), r.RemoteAddr, "a console sign-in whose ID token does not match its flow") {
			c.renderError(w, r, nil, errorf(http.StatusServiceUnavailable, "the audit ledger could not record this sign-in attempt; nothing was done"))
			return
		}
		c.showSignIn(w, r, http.StatusUnauthorized, f.Next, "Not signed in: "+err.Error()+".")
		return
	}
	p, err := c.cfg.Pipeline.Authenticate(r.Context(), idToken)
	if err != nil {
		c.refused(w, r, f.Next, err, "a token no configured identity provider issued, or expired")
		return
	}
	expires := c.cfg.Now().Add(SessionLifetime)
	if t := time.Unix(int64(claims.Expiry), 0); t.Before(expires) {
		expires = t // the session ends with the ID token
	}
	sess := &session{via: viaOIDC, issuer: f.Issuer, principal: *p}
	if err := c.startSession(w, r, sess, expires); err != nil {
		c.renderError(w, r, nil, err)
		return
	}
	// The session cookie is SameSite=Strict, and this request arrived from the
	// provider's site: a redirect would still count as cross-site, so a page of this
	// origin sends the browser on.
	c.render(w, http.StatusOK, "signedin.html", shell{Title: "Signed in", NodeID: c.cfg.Node.ID, Refresh: "0;url=" + f.Next,
		Data: map[string]string{"Next": f.Next, "ID": p.ID, "Issuer": f.Issuer}})
}

// exchange trades the code (with the PKCE verifier) for the ID token.
func (c *Console) exchange(ctx context.Context, client OIDCClient, code, verifier string) (string, error) {
	p, err := c.oidc.provider(ctx, client)
	if err != nil {
		return "", err
	}
	if ok, wait := c.oidc.exchanges.Take("exchange", ExchangesPerMinute, ExchangeBurst); !ok {
		return "", fmt.Errorf("more than %d code exchanges a minute (ExchangesPerMinute); the next in %v", ExchangesPerMinute, wait.Round(time.Millisecond))
	}
	ctx, cancel := context.WithTimeout(ctx, ExchangeTimeout)
	defer cancel()
	tok, err := c.oidc.oauth2Config(client, p).Exchange(context.WithValue(ctx, oauth2.HTTPClient, c.oidc.http), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return "", err
	}
	id, _ := tok.Extra("id_token").(string)
	if id == "" {
		return "", errors.New("the token response holds no id_token")
	}
	if len(id) > sso.MaxTokenBytes {
		return "", fmt.Errorf("the ID token is longer than %d bytes (sso.MaxTokenBytes)", sso.MaxTokenBytes)
	}
	return id, nil
}

// idClaims are the claims of an ID token the console checks against its flow.
type idClaims struct {
	Nonce    string      `json:"nonce"`
	Audience sso.Strings `json:"aud"`
	AZP      string      `json:"azp"`
	Expiry   float64     `json:"exp"` // NumericDate: seconds, possibly fractional
}

// parseIDClaims reads the nonce, audience, azp and expiry of a JWT's payload. It
// verifies nothing: Authenticate verifies the same bytes next, so claims checked here
// count only if it accepts the token.
func parseIDClaims(token string) (*idClaims, error) {
	if len(token) > sso.MaxTokenBytes {
		return nil, fmt.Errorf("the ID token is longer than %d bytes (sso.MaxTokenBytes)", sso.MaxTokenBytes)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("the ID token is not a signed JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, errors.New("the ID token's payload is not base64url")
	}
	var c idClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return nil, errors.New("the ID token's payload is not a JSON object with the claims an ID token has")
	}
	return &c, nil
}

// check holds the claims to the flow: the nonce it sent, the console's client as the
// audience (and as azp when there are several audiences), and not expired.
func (c *idClaims) check(clientID, nonce string, now time.Time) error {
	if subtle.ConstantTimeCompare([]byte(c.Nonce), []byte(nonce)) != 1 {
		return errors.New("the ID token does not carry the nonce this sign-in sent")
	}
	if !slices.Contains(c.Audience, clientID) {
		return errors.New("the ID token was not issued to the console's client")
	}
	if len(c.Audience) > 1 && c.AZP != clientID {
		return errors.New("the ID token names several audiences and was not authorised for the console's client (azp)")
	}
	if c.Expiry <= float64(now.Unix()) {
		return errors.New("the ID token has expired")
	}
	return nil
}
