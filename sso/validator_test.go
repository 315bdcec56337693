package sso_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sios-project/sios/egress"
	"github.com/sios-project/sios/internal/oidctest"
	"github.com/sios-project/sios/policy"
	"github.com/sios-project/sios/sso"
)

// users at the test provider: alice is a clinician (and staff), bob only a visitor,
// carol an auditor by a Keycloak-style realm role with her tenant in "org".
var users = map[string]map[string]any{
	"alice": {"groups": []string{"staff", "clinicians"}, "org": "hospital"},
	"bob":   {"groups": []string{"visitors"}, "org": "hospital"},
	"carol": {"realm_access": map[string]any{"roles": []string{"offline_access", "auditor"}}, "org": "lab"},
}

// configFor is the operator's "oidc" section for the provider, as written in
// config.json.
func configFor(t testing.TB, issuer string, extra string) []sso.Issuer {
	t.Helper()
	list, err := sso.ParseConfig([]byte(`[{
		"name": "corp",
		"issuer": "` + issuer + `",
		"audience": "sios-console",` + extra + `
		"claims": {
			"tenant": {"claim": "org"},
			"rules": [
				{"when": {"groups": "clinicians"}, "tenant": "hospital", "clearance": "OFFICIAL-SENSITIVE", "roles": ["clinician"]},
				{"when": {"realm_access.roles": ["auditor", "inspector"]}, "clearance": "OFFICIAL", "roles": ["auditor"]}
			]
		}
	}]`))
	if err != nil {
		t.Fatal(err)
	}
	return list
}

// clock is a settable clock for the validator: real time plus an offset.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// events records the KeyEvents a validator reports.
type events struct {
	mu   sync.Mutex
	list []sso.KeyEvent
}

func (e *events) add(ev sso.KeyEvent) {
	e.mu.Lock()
	e.list = append(e.list, ev)
	e.mu.Unlock()
}

func (e *events) last() sso.KeyEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.list) == 0 {
		return sso.KeyEvent{}
	}
	return e.list[len(e.list)-1]
}

type fixture struct {
	p      *oidctest.Provider
	v      *sso.Validator
	dir    string
	clock  *clock
	events *events
}

// newFixture starts a provider and a validator for it whose keys have been fetched.
func newFixture(t testing.TB) *fixture {
	t.Helper()
	f := &fixture{p: oidctest.Start(t, users), dir: t.TempDir(), clock: &clock{}, events: &events{}}
	f.v = f.validator(t)
	if err := f.v.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	return f
}

// validator builds a validator over the fixture's cache directory, as a restarted
// node would.
func (f *fixture) validator(t testing.TB) *sso.Validator {
	t.Helper()
	v, err := sso.New(configFor(t, f.p.Issuer, ""), sso.Options{
		Client: f.p.EgressClient(t), CacheDir: f.dir, Now: f.clock.now, OnKeys: f.events.add})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestClinicianGetsMappedTenantClearanceAndRoles(t *testing.T) {
	f := newFixture(t)
	idToken, accessToken := f.p.SignIn(t, "sios-console", "alice")
	for name, tok := range map[string]string{"ID token": idToken, "access token": accessToken} {
		t.Run(name, func(t *testing.T) {
			id, err := f.v.Authenticate(context.Background(), tok)
			if err != nil {
				t.Fatal(err)
			}
			want := policy.Principal{ID: "oidc:corp:alice", Tenant: "hospital", Clearance: policy.OfficialSensitive, Roles: []string{"clinician"}}
			if id.Principal.ID != want.ID || id.Principal.Tenant != want.Tenant || id.Principal.Clearance != want.Clearance || !slices.Equal(id.Principal.Roles, want.Roles) {
				t.Fatalf("principal %+v, want %+v (the staff group grants nothing)", id.Principal, want)
			}
			if id.Issuer != "corp" || id.IssuerURL != f.p.Issuer || id.Subject != "alice" || id.Rule != 0 {
				t.Fatalf("audit fields %+v", id)
			}
			if until := time.Until(id.Expires); until <= 0 || until > time.Hour+time.Minute {
				t.Fatalf("expires in %v", until)
			}
		})
	}
}

func TestNestedRealmRoleAndTenantFromClaim(t *testing.T) {
	f := newFixture(t)
	_, accessToken := f.p.SignIn(t, "sios-console", "carol")
	id, err := f.v.Authenticate(context.Background(), accessToken)
	if err != nil {
		t.Fatal(err)
	}
	if id.Principal.Tenant != "lab" || id.Principal.Clearance != policy.Official || !slices.Equal(id.Principal.Roles, []string{"auditor"}) || id.Rule != 1 {
		t.Fatalf("carol mapped to %+v by rule %d", id.Principal, id.Rule)
	}
	if id.TokenID == "" {
		t.Fatal("the access token's jti was not passed on for the audit record")
	}
}

func TestUnmappedUserGetsNothing(t *testing.T) {
	f := newFixture(t)
	idToken, _ := f.p.SignIn(t, "sios-console", "bob")
	id, err := f.v.Authenticate(context.Background(), idToken)
	if id != nil || !errors.Is(err, sso.ErrUnmapped) || errors.Is(err, sso.ErrInvalidToken) {
		t.Fatalf("bob: identity %v, error %v; want only ErrUnmapped", id, err)
	}
	var ue *sso.UnmappedError
	if !errors.As(err, &ue) || ue.Issuer != "corp" || ue.Subject != "bob" || ue.Reason != "no rule matched" {
		t.Fatalf("error %#v does not say who was refused and why", err)
	}
	if strings.Contains(err.Error(), idToken) {
		t.Fatal("the error holds the token")
	}
}

func TestTokenFromUnconfiguredIssuerIsInvalid(t *testing.T) {
	f := newFixture(t)
	other := oidctest.Start(t, users)
	idToken, _ := other.SignIn(t, "sios-console", "alice")
	_, err := f.v.Authenticate(context.Background(), idToken)
	if !errors.Is(err, sso.ErrInvalidToken) || errors.Is(err, sso.ErrUnmapped) || !strings.Contains(err.Error(), "is not configured") {
		t.Fatalf("token of another issuer: %v", err)
	}
	if n := other.JWKSGET.Load(); n != 0 {
		t.Fatalf("the unconfigured issuer's keys were fetched %d times", n)
	}
}

func TestRefusedTokens(t *testing.T) {
	f := newFixture(t)
	idToken, accessToken := f.p.SignIn(t, "sios-console", "alice")
	otherAudience, _ := f.p.SignIn(t, "other-app", "alice")
	parts := strings.Split(idToken, ".")

	flipSig := []byte(parts[2])
	flipSig[10] = 'A'
	if parts[2][10] == 'A' {
		flipSig[10] = 'B'
	}
	// The payload rewritten to another subject, signature kept.
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	claims["sub"] = "mallory"
	forged, _ := json.Marshal(claims)
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","kid":"key-1"}`))
	hsHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","kid":"key-1","typ":"JWT"}`))

	cases := []struct {
		name, token, want string
		v                 *sso.Validator
	}{
		{"wrong audience", otherAudience, "audience", f.v},
		{"expired", idToken, "expired", nil},
		{"tampered signature", parts[0] + "." + parts[1] + "." + string(flipSig), "signature", f.v},
		{"tampered payload", parts[0] + "." + base64.RawURLEncoding.EncodeToString(forged) + "." + parts[2], "signature", f.v},
		{"alg none", noneHeader + "." + parts[1] + ".", "", f.v},
		{"alg HS256", hsHeader + "." + parts[1] + "." + parts[2], "HS256", f.v},
		{"RS256 not allowed", accessToken, "RS256", nil},
		{"not a JWT", "sios_abcdef", "three", f.v},
		{"empty", "", "", f.v},
	}
	// Past KeyRefetchInterval, so that only the validator's judgement — a held key id
	// does not verify: a forgery — keeps these tokens from causing a fetch.
	f.clock.advance(sso.KeyRefetchInterval)
	expired := sso.Options{Client: f.p.EgressClient(t), CacheDir: f.dir, Now: func() time.Time { return time.Now().Add(2 * time.Hour) }}
	esOnly := sso.Options{Client: f.p.EgressClient(t), CacheDir: t.TempDir()}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := c.v
			switch c.name {
			case "expired":
				v = mustNew(t, configFor(t, f.p.Issuer, ""), expired)
			case "RS256 not allowed":
				v = mustNew(t, configFor(t, f.p.Issuer, `"algorithms": ["ES256"],`), esOnly)
			}
			before := f.p.JWKSGET.Load()
			id, err := v.Authenticate(context.Background(), c.token)
			if id != nil || !errors.Is(err, sso.ErrInvalidToken) {
				t.Fatalf("identity %v, error %v; want ErrInvalidToken", id, err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %q does not mention %q", err, c.want)
			}
			if c.token != "" && strings.Contains(err.Error(), c.token) {
				t.Fatal("the error holds the token")
			}
			if n := f.p.JWKSGET.Load(); n != before {
				t.Fatalf("a refused token made the validator fetch keys (%d fetches)", n-before)
			}
		})
	}
}

func mustNew(t testing.TB, list []sso.Issuer, opts sso.Options) *sso.Validator {
	t.Helper()
	v, err := sso.New(list, opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCachedKeysOutliveTheIssuer(t *testing.T) {
	f := newFixture(t)
	idToken, accessToken := f.p.SignIn(t, "sios-console", "alice")
	f.p.Stop()

	// The running validator holds the keys.
	if _, err := f.v.Authenticate(context.Background(), idToken); err != nil {
		t.Fatalf("after the issuer went away: %v", err)
	}
	// A refresh fails and keeps them.
	if err := f.v.Refresh(context.Background()); err == nil {
		t.Fatal("a refresh with the issuer gone succeeded")
	}
	if _, err := f.v.Authenticate(context.Background(), accessToken); err != nil {
		t.Fatalf("after a failed refresh: %v", err)
	}
	st := f.v.Status()[0]
	if st.Keys != 1 || st.LastError == "" || st.Fetched.IsZero() {
		t.Fatalf("status %+v: want the key kept and the failure shown", st)
	}

	// A node restarted while the issuer is down reads the disk cache.
	restarted := f.validator(t)
	if ev := f.events.last(); !ev.Cached || !slices.Equal(ev.KeyIDs, []string{"key-1"}) || ev.Err != nil {
		t.Fatalf("cache load reported %+v", ev)
	}
	id, err := restarted.Authenticate(context.Background(), idToken)
	if err != nil {
		t.Fatalf("restarted from the cache: %v", err)
	}
	if id.Principal.Tenant != "hospital" || id.Principal.Clearance != policy.OfficialSensitive {
		t.Fatalf("restarted validator mapped %+v", id.Principal)
	}
}

func TestKeyRotationIsPickedUpOnUnknownKeyID(t *testing.T) {
	f := newFixture(t)
	fetches := f.p.JWKSGET.Load()
	old, _ := f.p.SignIn(t, "sios-console", "alice")

	kid := f.p.RotateKey(t, true)
	rotated, _ := f.p.SignIn(t, "sios-console", "alice")
	if header(t, rotated)["kid"] != kid {
		t.Fatalf("the provider did not sign with the new key %s", kid)
	}

	// Within KeyRefetchInterval of the last fetch, an unknown key id fetches nothing.
	_, err := f.v.Authenticate(context.Background(), rotated)
	if !errors.Is(err, sso.ErrInvalidToken) || !strings.Contains(err.Error(), "KeyRefetchInterval") {
		t.Fatalf("unknown key id right after a fetch: %v", err)
	}
	if n := f.p.JWKSGET.Load(); n != fetches {
		t.Fatalf("fetched keys %d times within KeyRefetchInterval", n-fetches)
	}

	// Later, the unknown key id fetches the key set once and the new key verifies.
	f.clock.advance(sso.KeyRefetchInterval)
	if _, err := f.v.Authenticate(context.Background(), rotated); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if n := f.p.JWKSGET.Load(); n != fetches+1 {
		t.Fatalf("%d key fetches for one rotation, want 1", n-fetches)
	}
	if ev := f.events.last(); !slices.Equal(ev.Added, []string{kid}) || len(ev.Removed) != 0 || ev.Err != nil {
		t.Fatalf("rotation reported %+v", ev)
	}
	if _, err := f.v.Authenticate(context.Background(), old); err != nil {
		t.Fatalf("a token of the still-published old key: %v", err)
	}

	// The issuer retires the old keys: after the next refresh their tokens fail.
	current := f.p.RotateKey(t, false)
	if err := f.v.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ev := f.events.last(); !slices.Equal(ev.KeyIDs, []string{current}) || !slices.Equal(ev.Removed, []string{"key-1", kid}) {
		t.Fatalf("retirement reported %+v", ev)
	}
	if _, err := f.v.Authenticate(context.Background(), old); !errors.Is(err, sso.ErrInvalidToken) {
		t.Fatalf("a token of a retired key: %v", err)
	}
	fresh, _ := f.p.SignIn(t, "sios-console", "alice")

	// The cache holds the rotated key set: a node restarted with the issuer gone
	// checks the current key's tokens and refuses the retired key's.
	f.p.Stop()
	restarted := f.validator(t)
	if _, err := restarted.Authenticate(context.Background(), fresh); err != nil {
		t.Fatalf("restarted node, current key: %v", err)
	}
	if _, err := restarted.Authenticate(context.Background(), rotated); !errors.Is(err, sso.ErrInvalidToken) {
		t.Fatalf("restarted node accepted a retired key: %v", err)
	}
}

func header(t testing.TB, tok string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h map[string]any
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestRunFetchesMissingKeys(t *testing.T) {
	p := oidctest.Start(t, users)
	dir := t.TempDir()
	v := mustNew(t, configFor(t, p.Issuer, ""), sso.Options{Client: p.EgressClient(t), CacheDir: dir})
	if st := v.Status()[0]; st.Keys != 0 || !st.Fetched.IsZero() {
		t.Fatalf("New fetched or found keys: %+v", st)
	}
	if p.JWKSGET.Load() != 0 {
		t.Fatal("New made a network request")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { v.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for v.Status()[0].Keys == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	<-done
	st := v.Status()[0]
	if st.Keys != 1 || st.JWKSURI != p.Issuer+"/keys" || st.LastError != "" {
		t.Fatalf("after Run: %+v", st)
	}
	info, err := os.Stat(filepath.Join(dir, "corp.jwks.json"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("cache file: %v %v", info, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("cache directory holds %d entries (a temporary file left behind?)", len(entries))
	}
}

func TestFetchesOnlyThroughTheCallersClient(t *testing.T) {
	p := oidctest.Start(t, users)
	// A guard that allows nothing: the fetch is refused before any connection.
	var refused []egress.Refusal
	var mu sync.Mutex
	g, err := egress.New(nil, func(r egress.Refusal) { mu.Lock(); refused = append(refused, r); mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	v := mustNew(t, configFor(t, p.Issuer, ""), sso.Options{Client: &http.Client{Transport: g.HTTPTransport()}, CacheDir: t.TempDir()})
	err = v.Refresh(context.Background())
	var re *egress.RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("refresh through a closed guard: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(refused) != 1 || !strings.HasPrefix(p.Issuer, "http://"+refused[0].Address) {
		t.Fatalf("guard saw %+v", refused)
	}
	if p.JWKSGET.Load() != 0 {
		t.Fatal("the provider was reached")
	}
}

func TestDamagedCacheIsReportedAndReplaced(t *testing.T) {
	p := oidctest.Start(t, users)
	dir := t.TempDir()
	path := filepath.Join(dir, "corp.jwks.json")
	if err := os.WriteFile(path, []byte(`{"v":"sios-oidc-keys/1","issuer":"`+p.Issuer+`","jwks":{"keys":[]}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	v := mustNew(t, configFor(t, p.Issuer, ""), sso.Options{Client: p.EgressClient(t), CacheDir: dir})
	if st := v.Status()[0]; st.Keys != 0 || !strings.Contains(st.LastError, path) {
		t.Fatalf("damaged cache: %+v", st)
	}
	if err := v.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := v.Status()[0]; st.Keys != 1 || st.LastError != "" {
		t.Fatalf("after refresh: %+v", st)
	}
	// A cache of another issuer URL (the operator changed it) is not used.
	moved := mustNew(t, configFor(t, "https://idp.example/realms/x", ""), sso.Options{Client: p.EgressClient(t), CacheDir: dir})
	if st := moved.Status()[0]; st.Keys != 0 || st.LastError != "" {
		t.Fatalf("cache of another issuer was used: %+v", st)
	}
}

func TestLooksLikeJWT(t *testing.T) {
	p := oidctest.Start(t, users)
	idToken, accessToken := p.SignIn(t, "sios-console", "alice")
	for _, tok := range []string{idToken, accessToken} {
		if !sso.LooksLikeJWT(tok) {
			t.Fatalf("a real token is not taken for a JWT: %s", tok[:20])
		}
	}
	for _, s := range []string{"sios_" + strings.Repeat("a", 52), "", "a.b.c", "eyJ9.x.y", "x..y", strings.Repeat("a", sso.MaxTokenBytes+1)} {
		if sso.LooksLikeJWT(s) {
			t.Fatalf("%q taken for a JWT", s)
		}
	}
}
