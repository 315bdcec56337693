package console_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/sios-project/sios/console"
	"github.com/sios-project/sios/internal/oidctest"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/sso"
)

// The browser tests drive Debian's chromium (headless, through the DevTools protocol
// with chromedp) against the real sios binary on loopback, and assert on the pages as
// rendered. Chromium resolves no host name (every name maps to NOTFOUND), so the
// browser can reach nothing but the loopback addresses the tests give it; and every
// request it makes is checked to be to the node (or the test's identity provider).

var (
	buildOnce sync.Once
	siosBin   string
	buildErr  error
	binDir    string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// chromiumPath finds chromium, or skips the test — except under CI, which installs it
// (.ci/run), where its absence fails the test.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed; .ci/run installs it (apt-get install chromium)")
	}
	t.Skip("chromium is not installed: the browser tests need Debian's chromium (apt-get install chromium)")
	return ""
}

// binary builds the sios binary once for the browser tests.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if binDir, buildErr = os.MkdirTemp("", "sios-console-test-"); buildErr != nil {
			return
		}
		siosBin = filepath.Join(binDir, "sios")
		cmd := exec.Command("go", "build", "-o", siosBin, "github.com/sios-project/sios/cmd/sios")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return siosBin
}

var (
	servingLine = regexp.MustCompile(`serving the OpenAI-compatible API on (http://[0-9.:]+)/v1`)
	keyLine     = regexp.MustCompile(`\b(sios_[a-z0-9]+)\b`)
)

// upOptions are how a test starts 'sios up'.
type upOptions struct {
	listen string   // default 127.0.0.1:0
	config string   // config.json, if any
	env    []string // more environment
	// before, if set, prepares the data directory with the binary first; it must
	// leave a principal "admin" whose key it returns.
	before func(bin, dir string) (adminKey string)
}

// startBinary runs 'sios up' on a fresh data directory and returns the node, its
// admin key under "admin".
func startBinary(t *testing.T, o upOptions) *testNode {
	t.Helper()
	bin := binary(t)
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if o.config != "" {
		if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(o.config), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tn := &testNode{dir: dir, keys: map[string]string{}}
	if o.before != nil {
		tn.keys["admin"] = o.before(bin, dir)
	}
	if o.listen == "" {
		o.listen = "127.0.0.1:0"
	}
	cmd := exec.Command(bin, "--data", dir, "up", "--listen", o.listen)
	cmd.Env = append(os.Environ(), o.env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Errorf("sios up did not stop on an interrupt\n%s", stderr.String())
		}
	})
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(60 * time.Second)
	for tn.url == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("sios up stopped:\n%s", stderr.String())
			}
			if m := keyLine.FindStringSubmatch(l); m != nil && strings.Contains(l, "bootstrap admin") {
				tn.keys["admin"] = m[1]
			}
			if m := servingLine.FindStringSubmatch(l); m != nil {
				tn.url, tn.id = m[1], strings.Fields(l)[2]
			}
		case <-timeout:
			t.Fatalf("sios up did not start:\n%s", stderr.String())
		}
	}
	go func() {
		for range lines {
		}
	}()
	return tn
}

// addPrincipal adds a principal through the running node and keeps its key.
func (tn *testNode) addPrincipal(t *testing.T, tenant, id, clearance string, roles ...string) {
	t.Helper()
	args := []string{"--data", tn.dir, "principal", "add", "--tenant", tenant, "--id", id, "--clearance", clearance}
	for _, r := range roles {
		args = append(args, "--role", r)
	}
	out, err := exec.Command(binary(t), args...).CombinedOutput()
	m := keyLine.FindStringSubmatch(string(out))
	if err != nil || m == nil {
		t.Fatalf("principal add: %v\n%s", err, out)
	}
	tn.keys[id] = m[1]
}

// chrome is one headless chromium with one tab, recording every request it makes,
// the documents it loads, and every console message, script error and security
// report (a Content-Security-Policy violation is one).
type chrome struct {
	ctx      context.Context
	mu       sync.Mutex
	requests []string
	docs     []*network.Response
	messages []string
}

func newChrome(t *testing.T) *chrome {
	t.Helper()
	exe := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(exe), chromedp.NoSandbox,
		chromedp.UserDataDir(t.TempDir()),
		// No name resolves: nothing but the loopback addresses the tests use is reachable.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE 127.0.0.2"),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("no-pings", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc()
	})
	c := &chrome{ctx: ctx}
	if err := chromedp.Do(ctx, chromedp.Navigate("about:blank")); err != nil {
		t.Fatalf("chromium did not start: %v", err)
	}
	if err := chromedp.Listen(ctx, func(ev any) {
		c.mu.Lock()
		defer c.mu.Unlock()
		switch e := ev.(type) {
		case *network.EventRequestWillBeSent:
			c.requests = append(c.requests, e.Request.URL)
		case *network.EventResponseReceived:
			if e.Type == network.ResourceTypeDocument {
				c.docs = append(c.docs, e.Response)
			}
		case *runtime.EventConsoleAPICalled:
			c.messages = append(c.messages, fmt.Sprintf("console.%s", e.Type))
		case *runtime.EventExceptionThrown:
			c.messages = append(c.messages, "exception: "+e.ExceptionDetails.Text)
		case *cdplog.EventEntryAdded:
			if e.Entry.Source == cdplog.EntrySourceSecurity || strings.Contains(e.Entry.Text, "Content Security Policy") {
				c.messages = append(c.messages, "security: "+e.Entry.Text)
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	return c
}

// do runs actions, within a minute.
func (c *chrome) do(t *testing.T, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatal(err)
	}
}

// text is the rendered text of the element sel selects.
func (c *chrome) text(t *testing.T, sel string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(c.ctx, time.Minute)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("text of %s: %v", sel, err)
	}
	return s
}

// open navigates to u and returns the text of its main element.
func (c *chrome) open(t *testing.T, u string) string {
	t.Helper()
	c.do(t, chromedp.Navigate(u), chromedp.WaitReady(chromedp.CSS("main")))
	return c.text(t, "main")
}

// location is the page the browser is at.
func (c *chrome) location(t *testing.T) string {
	t.Helper()
	loc, err := chromedp.Run(c.ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// checkOrigins fails if the browser requested anything but the allowed origins, or
// reported a script error or a security violation.
func (c *chrome) checkOrigins(t *testing.T, allowed ...string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, u := range c.requests {
		ok := u == "about:blank"
		for _, a := range allowed {
			ok = ok || strings.HasPrefix(u, a+"/")
		}
		if !ok {
			t.Errorf("the browser requested %s: not the node", u)
		}
	}
	for _, m := range c.messages {
		t.Errorf("the browser reported: %s", m)
	}
}

// signIn signs in through the sign-in form.
func (c *chrome) signIn(t *testing.T, base, key string) {
	t.Helper()
	c.do(t, chromedp.Navigate(base+"/console/"),
		chromedp.WaitVisible(chromedp.CSS("#key")),
		chromedp.SendKeys(chromedp.CSS("#key"), key),
		chromedp.Click(chromedp.CSS("#signin")),
		chromedp.WaitVisible(chromedp.CSS("#viewer")))
}

func TestBrowserOfficialUserSeesNoSecret(t *testing.T) {
	newChrome(t) // skips now if there is no chromium
	tn := startBinary(t, upOptions{})
	tn.addPrincipal(t, "hospital", "dr.official", "OFFICIAL")
	tn.addPrincipal(t, "hospital", "dr.secret", "SECRET")
	if code, out := tn.api(t, tn.keys["dr.secret"], "POST", "/v1/chat/completions",
		`{"model":"cyber-threat","messages":[{"role":"user","content":"indicators"}]}`, "X-Sios-Classification", "SECRET"); code != http.StatusOK {
		t.Fatalf("%d %s", code, out)
	}
	if code, out := tn.api(t, tn.keys["dr.official"], "POST", "/v1/chat/completions",
		`{"model":"education","messages":[{"role":"user","content":"a reading list"}]}`); code != http.StatusOK {
		t.Fatalf("%d %s", code, out)
	}
	secretIdx := tn.recordIndex(t, func(r *oar.Record) bool { return r.Action == oar.ActionBrainComplete && r.Classification == "SECRET" })
	ownIdx := tn.recordIndex(t, func(r *oar.Record) bool { return r.Action == oar.ActionBrainComplete && r.Actor.ID == "dr.official" })

	c := newChrome(t)
	c.signIn(t, tn.url, tn.keys["dr.official"])
	if who := c.text(t, "#viewer"); who != "dr.official" {
		t.Fatalf("signed in as %q", who)
	}
	brains := c.open(t, tn.url+"/console/brains")
	if !strings.Contains(brains, "education") || !strings.Contains(brains, "formatter") {
		t.Fatalf("the brains page lacks the OFFICIAL brains:\n%s", brains)
	}
	for _, page := range []string{"/console/brains", "/console/fleet", "/console/audit", "/console/principals", "/console/node"} {
		body := c.open(t, tn.url+page)
		for _, s := range []string{"cyber-threat", "intelligence-analysis", "defence-procurement"} {
			if strings.Contains(body, s) {
				t.Errorf("%s shows %s to an OFFICIAL user", page, s)
			}
		}
	}
	audit := c.open(t, tn.url+"/console/audit?rows=500")
	if !strings.Contains(audit, "brain/education") {
		t.Fatalf("the audit page lacks the user's own records:\n%s", audit)
	}
	if strings.Contains(audit, "SECRET") {
		t.Fatalf("the audit page shows a SECRET record:\n%s", audit)
	}
	hidden := c.open(t, tn.url+"/console/audit/record/"+strconv.FormatUint(secretIdx, 10))
	if !strings.Contains(hidden, fmt.Sprintf("there is no record %d that you may read", secretIdx)) || strings.Contains(hidden, "cyber") {
		t.Fatalf("the SECRET record's page:\n%s", hidden)
	}
	own := c.open(t, tn.url+"/console/audit/record/"+strconv.FormatUint(ownIdx, 10))
	if !strings.Contains(own, "brain.complete") || !strings.Contains(own, "admission: record") {
		t.Fatalf("the user's own completion record with its link:\n%s", own)
	}
	// Following the link reaches the admission record, and its receipt.
	c.do(t, chromedp.Click(chromedp.CSS(`#links a`)), chromedp.WaitVisible(chromedp.CSS("#receipt")))
	if rec := c.text(t, "#record h2"); rec != "brain.invoke" {
		t.Fatalf("the link led to %q", rec)
	}
	// Every page the browser loaded carried the policy; it loaded nothing elsewhere
	// and reported no violation.
	c.mu.Lock()
	if len(c.docs) < 8 {
		t.Errorf("only %d documents loaded", len(c.docs))
	}
	for _, d := range c.docs {
		if csp, _ := d.Headers["Content-Security-Policy"].(string); csp != console.CSP {
			t.Errorf("%s: Content-Security-Policy %q", d.URL, csp)
		}
		if xcto, _ := d.Headers["X-Content-Type-Options"].(string); xcto != "nosniff" {
			t.Errorf("%s: X-Content-Type-Options %q", d.URL, xcto)
		}
	}
	c.mu.Unlock()
	c.checkOrigins(t, tn.url)
	// Signing out ends the session.
	c.do(t, chromedp.Click(chromedp.CSS("#signout")), chromedp.WaitVisible(chromedp.CSS("#message")))
	if msg := c.text(t, "#message"); !strings.Contains(msg, "You are signed out") {
		t.Fatalf("after sign-out: %q", msg)
	}
	c.do(t, chromedp.Navigate(tn.url+"/console/audit"), chromedp.WaitVisible(chromedp.CSS("#key")))
}

// A form on another site that posts to the console is refused; the console's own form
// does the same change.
func TestBrowserRefusesCrossSitePost(t *testing.T) {
	newChrome(t)
	tn := startBinary(t, upOptions{})
	tn.addPrincipal(t, "hospital", "dr.official", "OFFICIAL")
	attack := `<!doctype html><form id="f" method="post" action="` + tn.url + `/console/principals/change">
<input name="csrf" value="guessed"><input name="tenant" value="hospital"><input name="id" value="dr.official"><input name="op" value="disable">
<button id="go" type="submit">Win a prize</button></form>`
	serve := func(addr string) string {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Skipf("cannot listen on %s: %v", addr, err)
		}
		s := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, attack)
		})}}
		s.Start()
		t.Cleanup(s.Close)
		return s.URL
	}
	crossSite := serve("127.0.0.2:0") // another site
	sameSite := serve("127.0.0.1:0")  // the same site, another origin: the session cookie goes along

	c := newChrome(t)
	c.signIn(t, tn.url, tn.keys["admin"])
	for _, from := range []string{crossSite, sameSite} {
		c.do(t, chromedp.Navigate(from+"/"), chromedp.WaitVisible(chromedp.CSS("#go")),
			chromedp.Click(chromedp.CSS("#go")), chromedp.WaitVisible(chromedp.CSS("#error")))
		if msg := c.text(t, "#error"); !strings.Contains(msg, "cross-site request refused") {
			t.Fatalf("a form from %s: %q", from, msg)
		}
		if code, _ := tn.api(t, tn.keys["dr.official"], "GET", "/v1/models", ""); code != http.StatusOK {
			t.Fatalf("a form from %s changed the principal: its key answers %d", from, code)
		}
	}
	// The console's own form, in the same browser, makes the change.
	row := `tr[id="p-hospital-dr.official"]`
	c.do(t, chromedp.Navigate(tn.url+"/console/principals"), chromedp.WaitVisible(chromedp.CSS(row)),
		chromedp.SetValue(chromedp.CSS(row+` select[name="op"]`), "disable"),
		chromedp.Click(chromedp.CSS(row+` button`)), chromedp.WaitVisible(chromedp.CSS("#message")))
	if msg := c.text(t, "#message"); !strings.Contains(msg, "hospital/dr.official: disable done and recorded") {
		t.Fatalf("the console's own form: %q", msg)
	}
	if code, _ := tn.api(t, tn.keys["dr.official"], "GET", "/v1/models", ""); code != http.StatusUnauthorized {
		t.Fatalf("after the console disabled it the key answers %d", code)
	}
}

// A user of the organisation's identity provider signs in through it, in the browser.
func TestBrowserOIDCSignIn(t *testing.T) {
	newChrome(t)
	idp := oidctest.Start(t, map[string]map[string]any{"alice": {"groups": []string{"clinicians"}}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // the node listens here; its callback URL must be known before it starts
	redirect := "http://" + addr + sso.ConsoleCallbackPath
	idp.AllowRedirect(redirect)
	config := fmt.Sprintf(`{"oidc":[{"name":"corp","issuer":%q,"audience":["sios-console"],
  "claims":{"rules":[{"when":{"groups":"clinicians"},"tenant":"hospital","clearance":"OFFICIAL-SENSITIVE","roles":["clinician"]}]},
  "console":{"client_id":"sios-console","client_secret_env":"SIOS_CONSOLE_SECRET","redirect_url":%q}}]}`, idp.Issuer, redirect)
	tn := startBinary(t, upOptions{listen: addr, config: config, env: []string{"SIOS_CONSOLE_SECRET=secret"}})

	c := newChrome(t)
	c.do(t, chromedp.Navigate(tn.url+"/console/brains"),
		chromedp.WaitVisible(chromedp.CSS("#oidc-corp")),
		chromedp.Click(chromedp.CSS("#oidc-corp")),
		chromedp.WaitVisible(chromedp.CSS("#username")), // the provider's own page
		chromedp.SendKeys(chromedp.CSS("#username"), "alice"),
		chromedp.Click(chromedp.CSS("#login")),
		chromedp.WaitVisible(chromedp.CSS("#viewer"))) // back, and on to the brains page
	if who := c.text(t, "#viewer"); who != "oidc:corp:alice" {
		t.Fatalf("signed in as %q", who)
	}
	if loc := c.location(t); loc != tn.url+"/console/brains" {
		t.Fatalf("after sign-in the browser is at %s, not the page it asked for", c.location(t))
	}
	if body := c.text(t, "main"); !strings.Contains(body, "education") || strings.Contains(body, "cyber-threat") {
		t.Fatalf("the brains page of an OFFICIAL-SENSITIVE user:\n%s", body)
	}
	c.checkOrigins(t, tn.url, idp.Issuer)
	recs := tn.records(t, action(oar.ActionConsoleSignIn))
	for _, r := range recs {
		if r.Action == oar.ActionConsoleSignIn && r.Actor.ID != "oidc:corp:alice" {
			t.Fatalf("console sign-in record of %s", r.Actor.ID)
		}
	}
}

// Verifying the log from the audit page: the page follows the verification with its
// one script, and shows the outcome. The log holds 30,000 records, so that the
// verification is still running when the page loads.
func TestBrowserVerifiesTheLog(t *testing.T) {
	newChrome(t)
	tn := startBinary(t, upOptions{before: func(bin, dir string) string {
		run := func(stdin string, args ...string) string {
			cmd := exec.Command(bin, append([]string{"--data", dir}, args...)...)
			cmd.Stdin = strings.NewReader(stdin)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("sios %v: %v\n%s", args, err, out)
			}
			return string(out)
		}
		run("", "init", "--name", "verify")
		run(strings.Repeat(`{"actor":{"id":"load"},"action":"load.test"}`+"\n", 30_000), "audit", "append", "--stdin")
		out := run("", "principal", "add", "--tenant", "default", "--id", "admin", "--clearance", "TOP-SECRET", "--role", "admin")
		return keyLine.FindStringSubmatch(out)[1]
	}})
	c := newChrome(t)
	c.signIn(t, tn.url, tn.keys["admin"])
	c.do(t, chromedp.Navigate(tn.url+"/console/audit"), chromedp.Click(chromedp.CSS("#verify")),
		chromedp.WaitVisible(chromedp.CSS("#outcome.ok")))
	outcome := c.text(t, "#outcome")
	if !strings.Contains(outcome, "The log verifies") || !strings.Contains(outcome, "records") {
		t.Fatalf("the outcome: %q", outcome)
	}
	value, err := chromedp.Run(c.ctx, chromedp.AttributeValue(chromedp.CSS("#progress"), "value"))
	if err != nil {
		t.Fatal(err)
	}
	max, _ := chromedp.Run(c.ctx, chromedp.AttributeValue(chromedp.CSS("#progress"), "max"))
	if n, _ := strconv.Atoi(value.Value); n < 30_000 || value.Value != max.Value {
		t.Fatalf("the progress bar ends at %q of %q", value.Value, max.Value)
	}
	// The script followed it: the page asked for its status.
	polled := false
	c.mu.Lock()
	for _, u := range c.requests {
		polled = polled || strings.HasSuffix(u, "/status")
	}
	c.mu.Unlock()
	if !polled {
		t.Fatal("the verification finished before its page loaded, or the page's script did not follow it")
	}
	c.checkOrigins(t, tn.url)
}
