package console_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/node"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// The handler tests run a real node on loopback — its ledger, policies, principals,
// pipeline and API — with the console mounted as 'sios up' mounts it, and talk to it
// over HTTP as a browser would (a cookie jar, forms, Origin and Sec-Fetch-Site).

type testNode struct {
	url  string
	dir  string
	id   string
	keys map[string]string // principal id → API key; "admin" is the bootstrap admin
	n    *node.Node        // nil for the real binary
}

// startNode starts a node in a fresh data directory with the principals given (their
// keys in keys), its console on the API listener. edit, if set, adjusts the config
// once the listener's address is known.
func startNode(t testing.TB, edit func(cfg *node.Config, addr string), principals ...policy.NewPrincipal) *testNode {
	t.Helper()
	return startNodeIn(t, filepath.Join(t.TempDir(), "data"), edit, principals...)
}

// startNodeIn is startNode on dir, which may already hold a node identity (then there
// is no bootstrap admin).
func startNodeIn(t testing.TB, dir string, edit func(cfg *node.Config, addr string), principals ...policy.NewPrincipal) *testNode {
	t.Helper()
	_, adminKey, err := node.Bootstrap(dir, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	id, err := identity.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	tn := &testNode{dir: dir, id: id.ID(), keys: map[string]string{"admin": adminKey}}
	ps, err := policy.OpenPrincipals(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, np := range principals {
		key, _, err := ps.Add(np, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		tn.keys[np.ID] = key
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tn.url = "http://" + ln.Addr().String()
	cfg := node.Config{Listen: ln.Addr().String()}
	if edit != nil {
		edit(&cfg, ln.Addr().String())
	}
	ctx, cancel := context.WithCancel(context.Background())
	n, err := node.Open(ctx, node.Options{DataDir: dir, Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Ledger: ledger.Options{CheckpointInterval: 100 * time.Millisecond}})
	tn.n = n
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- n.Serve(ctx, ln, 5*time.Second, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		if err := n.Close(context.Background()); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return tn
}

// browser is an HTTP client that keeps cookies and sends what a browser sends with a
// form from the console's own page.
type browser struct {
	t    testing.TB
	base string
	c    *http.Client
}

func (tn *testNode) browser(t testing.TB) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: tn.url, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{resp.StatusCode, resp.Header, string(body)}
}

func (b *browser) get(path string) page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.base+path, nil)
	return b.do(req)
}

// post sends a form as the console's own page would (same origin), with extra headers
// overriding that.
func (b *browser) post(path string, form url.Values, headers ...string) page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	for i := 0; i+1 < len(headers); i += 2 {
		if headers[i+1] == "" {
			req.Header.Del(headers[i])
		} else {
			req.Header.Set(headers[i], headers[i+1])
		}
	}
	return b.do(req)
}

var (
	tokenField = regexp.MustCompile(`name="token" value="([^"]+)"`)
	csrfField  = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
)

func field(t testing.TB, re *regexp.Regexp, body string) string {
	t.Helper()
	m := re.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no %s in the page:\n%s", re, body)
	}
	return m[1]
}

// signIn signs in with an API key through the sign-in form; it returns the session's
// synchronizer token.
func (b *browser) signIn(key string) string {
	b.t.Helper()
	p := b.get("/console/signin")
	resp := b.post("/console/signin", url.Values{"token": {field(b.t, tokenField, p.body)}, "key": {key}, "next": {"/console/node"}})
	if resp.status != http.StatusSeeOther || resp.header.Get("Location") != "/console/node" {
		b.t.Fatalf("sign-in: %d %s\n%s", resp.status, resp.header.Get("Location"), resp.body)
	}
	return field(b.t, csrfField, b.get("/console/node").body)
}

// records waits until the checkpointed log holds a record passing want, then returns
// every record in it.
func (tn *testNode) records(t testing.TB, want func(*oar.Record) bool) []*oar.Record {
	t.Helper()
	id, err := identity.Load(tn.dir)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		var out []*oar.Record
		found := false
		r, err := ledger.OpenReader(filepath.Join(tn.dir, "ledger"), tn.id, id.Public())
		if err != nil && !errors.Is(err, ledger.ErrEmpty) {
			t.Fatal(err)
		}
		if err == nil {
			entries, err := r.Entries(context.Background(), 0, r.Size())
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				p, err := oar.Parse(e)
				if err != nil {
					t.Fatal(err)
				}
				if p.Record != nil {
					out = append(out, p.Record)
					found = found || want(p.Record)
				}
			}
		}
		if found {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("no such record in the log after 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// recordIndex waits for a record passing want and returns its index.
func (tn *testNode) recordIndex(t testing.TB, want func(*oar.Record) bool) uint64 {
	t.Helper()
	id, _ := identity.Load(tn.dir)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if r, err := ledger.OpenReader(filepath.Join(tn.dir, "ledger"), tn.id, id.Public()); err == nil {
			entries, _ := r.Entries(context.Background(), 0, r.Size())
			for i, e := range entries {
				if p, err := oar.Parse(e); err == nil && p.Record != nil && want(p.Record) {
					return uint64(i)
				}
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("no such record in the log after 10 s")
	return 0
}

// api calls the node's OpenAI-compatible API with a key.
func (tn *testNode) api(t testing.TB, key, method, path, body string, headers ...string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, tn.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func action(a string) func(*oar.Record) bool {
	return func(r *oar.Record) bool { return r.Action == a }
}
