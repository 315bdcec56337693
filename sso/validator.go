package sso

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/sios-project/sios/policy"
)

// Options are what a Validator needs from the node.
type Options struct {
	// Client makes every request to an issuer; the node passes one whose transport is
	// its egress guard's. Its CheckRedirect is replaced: redirects are followed only
	// on the origin of the URL first asked for, at most MaxRedirects.
	Client *http.Client
	// CacheDir holds one key cache file per issuer ("NAME.jwks.json"); it is created
	// (0700) if absent.
	CacheDir string
	// Now is the clock (default time.Now), for token expiry and fetch intervals.
	Now func() time.Time
	// OnKeys, if set, is told of every key fetch and cache load, for the audit log.
	// It is called on the goroutine that fetched, must be safe for concurrent use and
	// should return quickly.
	OnKeys func(KeyEvent)
}

// Validator checks bearer tokens from the configured issuers and maps their users
// to principals. Its methods are safe for concurrent use.
type Validator struct {
	issuers []*issuerState // in configuration order
	byURL   map[string]*issuerState
	now     func() time.Time
}

type issuerState struct {
	cfg      *issuer
	keys     *keySet
	verifier *oidc.IDTokenVerifier
}

// Identity is a signed-in user: the principal the node decides with, and what the
// audit record of the sign-in names. It never holds the token.
type Identity struct {
	// Principal has ID "oidc:ISSUER:SUBJECT" (see PrincipalID) and the tenant,
	// clearance and roles of the rule that matched.
	Principal policy.Principal
	Issuer    string // the configured issuer name
	IssuerURL string // the issuer URL ("iss")
	Subject   string // the principal claim's value
	// Rule is the index, in the issuer's claims.rules, of the rule that matched.
	Rule int
	// TokenID is the token's "jti" when it has a short printable one (to find the
	// sign-in in the issuer's own logs); empty otherwise.
	TokenID string
	// Expires is when the token expires.
	Expires time.Time
}

// New builds a Validator for the issuers (as decoded from config.json's "oidc"
// section; they are checked again here). It makes no network request: each issuer's
// keys come from its cache file in opts.CacheDir if there is one, and are fetched by
// Run, Refresh, or the first token that names a key not held.
func New(list []Issuer, opts Options) (*Validator, error) {
	if opts.Client == nil {
		return nil, errors.New("sso: Options.Client is nil; pass the client built on the egress guard")
	}
	if opts.CacheDir == "" {
		return nil, errors.New("sso: Options.CacheDir is empty")
	}
	compiled, err := compileAll(list)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("sso: key cache directory: %v", err)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	client := originBound(opts.Client)
	v := &Validator{byURL: make(map[string]*issuerState, len(compiled)), now: now}
	for _, c := range compiled {
		ks := newKeySet(c, client, opts.CacheDir, now, opts.OnKeys)
		ks.loadCache()
		st := &issuerState{
			cfg:  c,
			keys: ks,
			verifier: oidc.NewVerifier(c.url, ks, &oidc.Config{
				// The audience is checked against the configured list in Authenticate.
				SkipClientIDCheck:    true,
				SupportedSigningAlgs: c.algorithms,
				Now:                  now,
			}),
		}
		v.issuers = append(v.issuers, st)
		v.byURL[c.url] = st
	}
	return v, nil
}

// originBound copies client with a redirect policy that stays on the first URL's
// origin.
func originBound(c *http.Client) *http.Client {
	cp := *c
	cp.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) > MaxRedirects {
			return fmt.Errorf("more than %d redirects (MaxRedirects)", MaxRedirects)
		}
		if !sameOrigin(req.URL, via[0].URL) {
			return fmt.Errorf("redirected off the issuer's origin to %s://%s", req.URL.Scheme, req.URL.Host)
		}
		return nil
	}
	return &cp
}

// Authenticate checks a bearer token — an OIDC ID token or a JWT access token — and
// maps its user. The token must come from a configured issuer, name one of its
// audiences in "aud", be signed by one of its keys with an allowed algorithm, and be
// unexpired. Errors: ErrInvalidToken (answer 401) for any token that fails those
// checks; an *UnmappedError, which is ErrUnmapped (answer 403), for a genuine token
// whose user no rule admits.
func (v *Validator) Authenticate(ctx context.Context, token string) (*Identity, error) {
	iss, err := peekIssuer(token)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidToken, err)
	}
	st, ok := v.byURL[iss]
	if !ok {
		return nil, fmt.Errorf("%w: issuer %q is not configured", ErrInvalidToken, clip(iss))
	}
	is := st.cfg
	tok, err := st.verifier.Verify(ctx, token)
	if err != nil {
		var expired *oidc.TokenExpiredError
		if errors.As(err, &expired) {
			return nil, fmt.Errorf("%w: issuer %s: the token expired at %s", ErrInvalidToken, is.name, expired.Expiry.UTC().Format(time.RFC3339))
		}
		return nil, fmt.Errorf("%w: issuer %s: %v", ErrInvalidToken, is.name, err)
	}
	if !slices.ContainsFunc(tok.Audience, func(a string) bool { return slices.Contains(is.audience, a) }) {
		return nil, fmt.Errorf("%w: issuer %s: the token's audience %q is not one configured (%q)", ErrInvalidToken, is.name, clipAll(tok.Audience), is.audience)
	}
	var payload rawClaims
	if err := tok.Claims(&payload); err != nil {
		return nil, fmt.Errorf("%w: issuer %s: %v", ErrInvalidToken, is.name, err)
	}
	claims, err := decodeClaims(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: issuer %s: %v", ErrInvalidToken, is.name, err)
	}
	m, err := is.mapClaims(claims)
	if err != nil {
		return nil, err
	}
	id := is.identity(m, claims)
	id.Expires = tok.Expiry
	return id, nil
}

// rawClaims receives a verified payload unchanged.
type rawClaims []byte

func (r *rawClaims) UnmarshalJSON(b []byte) error {
	*r = append((*r)[:0], b...)
	return nil
}

func tokenID(claims map[string]any) string {
	s, ok := claims["jti"].(string)
	if !ok || len(s) > MaxTokenIDBytes || checkSubject(s) != nil {
		return ""
	}
	return s
}

func clipAll(list []string) []string {
	out := make([]string, 0, min(len(list), 8))
	for _, s := range list[:min(len(list), 8)] {
		out = append(out, clip(s))
	}
	return out
}

// Refresh fetches every issuer's keys now, whatever the intervals. It returns the
// failures joined; an issuer that failed keeps the keys it had.
func (v *Validator) Refresh(ctx context.Context) error {
	var errs []error
	for _, st := range v.issuers {
		if err := st.keys.fetch(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// refreshEvery is how often Run looks for issuers whose keys are due.
const refreshEvery = 30 * time.Second

// Run fetches each issuer's keys when they are due — at once if an issuer has none,
// then every "refresh" interval, and a failed fetch again after KeyRefetchInterval —
// until ctx is done. Failures are reported through Options.OnKeys and Status. Run it
// on its own goroutine.
func (v *Validator) Run(ctx context.Context) {
	t := time.NewTicker(refreshEvery)
	defer t.Stop()
	for {
		for _, st := range v.issuers {
			if ctx.Err() != nil {
				return
			}
			if st.keys.due(v.now()) {
				_ = st.keys.refetch(ctx) // reported through OnKeys and Status
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// IssuerStatus describes one issuer's keys, for readiness checks and the console.
type IssuerStatus struct {
	Name      string
	Issuer    string
	JWKSURI   string
	Keys      int       // keys held; 0: this issuer's tokens cannot be checked yet
	Fetched   time.Time // when the keys held were fetched; zero: never
	LastTry   time.Time // the last fetch attempt; zero: none since start
	LastError string    // the last fetch's or cache load's failure; empty after a success
}

// Status describes every issuer, in configuration order.
func (v *Validator) Status() []IssuerStatus {
	out := make([]IssuerStatus, 0, len(v.issuers))
	for _, st := range v.issuers {
		n, uri, fetched, tried, err := st.keys.status()
		s := IssuerStatus{Name: st.cfg.name, Issuer: st.cfg.url, JWKSURI: uri, Keys: n, Fetched: fetched, LastTry: tried}
		if err != nil {
			s.LastError = err.Error()
		}
		out = append(out, s)
	}
	return out
}
