package console_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/console"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

var (
	official = policy.NewPrincipal{Tenant: "hospital", ID: "dr.official", Clearance: "OFFICIAL"}
	secret   = policy.NewPrincipal{Tenant: "hospital", ID: "dr.secret", Clearance: "SECRET"}
)

func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	tn := startNode(t, nil)
	b := tn.browser(t)
	check := func(path string, p page) {
		t.Helper()
		for h, want := range map[string]string{
			"Content-Security-Policy": console.CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
			"X-Frame-Options": "DENY", "Cross-Origin-Opener-Policy": "same-origin",
		} {
			if got := p.header.Get(h); got != want {
				t.Errorf("%s: %s is %q, want %q", path, h, got, want)
			}
		}
	}
	for _, path := range []string{"/console/", "/console/signin", "/console/static/console.css", "/console/static/progress.js",
		"/console/no-such-page", "/console/static/missing.js", "/console/oidc/callback"} {
		check(path, b.get(path))
	}
	if !strings.Contains(console.CSP, "default-src 'none'") || !strings.Contains(console.CSP, "frame-ancestors 'none'") ||
		strings.Contains(console.CSP, "unsafe-inline") || strings.Contains(console.CSP, "http") {
		t.Fatalf("the policy is not strict: %s", console.CSP)
	}
	if ct := b.get("/console/static/console.css").header.Get("Content-Type"); ct != "text/css; charset=utf-8" {
		t.Errorf("stylesheet served as %q", ct)
	}
	b.signIn(tn.keys["admin"])
	for _, path := range []string{"/console/node", "/console/brains", "/console/fleet", "/console/audit", "/console/replicas", "/console/principals"} {
		p := b.get(path)
		if p.status != http.StatusOK {
			t.Fatalf("%s: %d\n%s", path, p.status, p.body)
		}
		check(path, p)
		if p.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s may be cached", path)
		}
		// Nothing on any page comes from anywhere but the console itself: no inline
		// script or style, no absolute URL to another origin.
		for _, bad := range []string{"<script>", "style=", "http://", "https://", "//cdn", "onclick"} {
			if strings.Contains(p.body, bad) {
				t.Errorf("%s holds %q", path, bad)
			}
		}
	}
	// The API beside the console keeps its own answers.
	if code, _ := tn.api(t, tn.keys["admin"], "GET", "/v1/models", ""); code != http.StatusOK {
		t.Fatalf("the API answers %d beside the console", code)
	}
}

func TestSignInWithAnAPIKey(t *testing.T) {
	tn := startNode(t, nil)
	b := tn.browser(t)
	// Without a session, a page sends the browser to sign in, and back after.
	if p := b.get("/console/audit?actor=x"); p.status != http.StatusSeeOther ||
		p.header.Get("Location") != "/console/signin?next=%2Fconsole%2Faudit%3Factor%3Dx" {
		t.Fatalf("a page without a session: %d %s", p.status, p.header.Get("Location"))
	}
	signin := b.get("/console/signin")
	token := field(t, tokenField, signin.body)
	// The form's token is bound to this browser's cookie.
	other := tn.browser(t)
	if p := other.post("/console/signin", url.Values{"token": {token}, "key": {tn.keys["admin"]}}); p.status != http.StatusForbidden {
		t.Fatalf("a sign-in token used by another browser: %d", p.status)
	}
	p := b.post("/console/signin", url.Values{"token": {token}, "key": {"sios_" + strings.Repeat("a", 52)}})
	if p.status != http.StatusUnauthorized || !strings.Contains(p.body, "invalid API key") {
		t.Fatalf("a wrong key: %d\n%s", p.status, p.body)
	}
	// Each form shown carries a fresh token; the one used is spent.
	if again := b.post("/console/signin", url.Values{"token": {token}, "key": {tn.keys["admin"]}}); again.status != http.StatusForbidden {
		t.Fatalf("a spent sign-in token: %d", again.status)
	}
	p = b.get("/console/signin")
	p = b.post("/console/signin", url.Values{"token": {field(t, tokenField, p.body)}, "key": {"eyJhbGciOiJSUzI1NiJ9.e30.c2ln"}})
	if p.status != http.StatusBadRequest {
		t.Fatalf("a token in the key form: %d", p.status)
	}
	resp := b.post("/console/signin", url.Values{"token": {field(t, tokenField, p.body)}, "key": {tn.keys["admin"]}, "next": {"/console/audit"}})
	if resp.status != http.StatusSeeOther || resp.header.Get("Location") != "/console/audit" {
		t.Fatalf("sign-in: %d %s", resp.status, resp.header.Get("Location"))
	}
	var cookie *http.Cookie
	for _, c := range (&http.Response{Header: resp.header}).Cookies() {
		if c.Name == "sios_console" {
			cookie = c
		}
	}
	if cookie == nil || !cookie.HttpOnly || cookie.SameSite != http.SameSiteStrictMode || cookie.Path != "/console/" ||
		cookie.MaxAge <= 0 || time.Duration(cookie.MaxAge)*time.Second > console.SessionLifetime {
		t.Fatalf("session cookie: %+v", cookie)
	}
	node := b.get("/console/node")
	if node.status != http.StatusOK || !strings.Contains(node.body, `<span id="viewer">admin</span>`) || !strings.Contains(node.body, tn.id) {
		t.Fatalf("the node page: %d\n%s", node.status, node.body)
	}
	if !strings.Contains(node.body, `<p id="ready" class="ok">Ready`) || !strings.Contains(node.body, "<td>ledger</td>") {
		t.Fatalf("the admin's node page lacks the readiness checks:\n%s", node.body)
	}
	csrf := field(t, csrfField, node.body)
	recs := tn.records(t, action(oar.ActionConsoleSignIn))
	var in *oar.Record
	for _, r := range recs {
		if r.Action == oar.ActionConsoleSignIn {
			in = r
		}
		if strings.Contains(string(r.Detail), tn.keys["admin"]) || strings.Contains(string(r.Detail), cookie.Value) ||
			strings.Contains(r.Resource, cookie.Value[:8]) {
			t.Fatalf("a record holds the key or the session id: %+v", r)
		}
	}
	if in.Actor.ID != "admin" || in.Tenant != "default" || !strings.HasPrefix(in.Resource, "console/session/") ||
		!strings.Contains(string(in.Detail), `"key":"default"`) || !strings.Contains(string(in.Detail), `"via":"api-key"`) {
		t.Fatalf("the sign-in record: %+v %s", in, in.Detail)
	}
	refusals := 0
	for _, r := range recs {
		if r.Action == oar.ActionAuthRefuse {
			refusals++
		}
	}
	if refusals == 0 {
		t.Fatal("the wrong key is not recorded as a refusal")
	}
	// Sign-out needs the session's token, ends the session and is recorded.
	if p := b.post("/console/signout", url.Values{"csrf": {"wrong"}}); p.status != http.StatusForbidden {
		t.Fatalf("sign-out without the session's token: %d", p.status)
	}
	if p := b.post("/console/signout", url.Values{"csrf": {csrf}}); p.status != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", p.status)
	}
	if p := b.get("/console/node"); p.status != http.StatusSeeOther {
		t.Fatalf("a page after sign-out: %d", p.status)
	}
	// The old cookie, replayed, opens nothing.
	replay := tn.browser(t)
	u, _ := url.Parse(tn.url + "/console/")
	replay.c.Jar.SetCookies(u, []*http.Cookie{{Name: "sios_console", Value: cookie.Value, Path: "/console/"}})
	if p := replay.get("/console/node"); p.status != http.StatusSeeOther {
		t.Fatalf("a replayed session cookie: %d", p.status)
	}
	out := tn.records(t, action(oar.ActionConsoleSignOut))
	for _, r := range out {
		if r.Action == oar.ActionConsoleSignOut && r.Resource != in.Resource {
			t.Fatalf("the sign-out names another session: %s, signed in as %s", r.Resource, in.Resource)
		}
	}
}

// Every state-changing request must carry the session's token and come from the
// console's own origin; otherwise nothing changes.
func TestCrossSitePostsAreRefused(t *testing.T) {
	tn := startNode(t, nil, official)
	b := tn.browser(t)
	csrf := b.signIn(tn.keys["admin"])
	disable := url.Values{"csrf": {csrf}, "tenant": {"hospital"}, "id": {"dr.official"}, "op": {"disable"}}
	for name, h := range map[string][]string{
		"another origin":           {"Origin", "http://evil.example", "Sec-Fetch-Site", ""},
		"a cross-site fetch":       {"Sec-Fetch-Site", "cross-site"},
		"a same-site other origin": {"Sec-Fetch-Site", "same-site", "Origin", "http://127.0.0.1:1"},
	} {
		if p := b.post("/console/principals/change", disable, h...); p.status != http.StatusForbidden || !strings.Contains(p.body, "cross-site request refused") {
			t.Errorf("%s: %d\n%s", name, p.status, p.body)
		}
	}
	noToken := url.Values{"tenant": {"hospital"}, "id": {"dr.official"}, "op": {"disable"}}
	if p := b.post("/console/principals/change", noToken); p.status != http.StatusForbidden || !strings.Contains(p.body, "not from your session") {
		t.Fatalf("no token: %d\n%s", p.status, p.body)
	}
	other := tn.browser(t)
	otherCSRF := other.signIn(tn.keys["admin"])
	if otherCSRF == csrf {
		t.Fatal("two sessions share a token")
	}
	wrong := url.Values{"csrf": {otherCSRF}, "tenant": {"hospital"}, "id": {"dr.official"}, "op": {"disable"}}
	if p := b.post("/console/principals/change", wrong); p.status != http.StatusForbidden {
		t.Fatalf("another session's token: %d", p.status)
	}
	if p := tn.browser(t).post("/console/principals/change", disable); p.status != http.StatusUnauthorized {
		t.Fatalf("no session: %d", p.status)
	}
	if code, _ := tn.api(t, tn.keys["dr.official"], "GET", "/v1/models", ""); code != http.StatusOK {
		t.Fatalf("a refused request changed something: the key answers %d", code)
	}
	// The same request from the console's own page, with its token, is made.
	if p := b.post("/console/principals/change", disable); p.status != http.StatusOK || !strings.Contains(p.body, "disable done and recorded") {
		t.Fatalf("the console's own form: %d\n%s", p.status, p.body)
	}
	if code, _ := tn.api(t, tn.keys["dr.official"], "GET", "/v1/models", ""); code != http.StatusUnauthorized {
		t.Fatalf("after disable the key answers %d", code)
	}
}

var brainIDs = regexp.MustCompile(`<code class="brain">([^<]+)</code>`)

// An OFFICIAL user's console never names a SECRET brain nor shows a SECRET record.
func TestOfficialUserSeesNoSecret(t *testing.T) {
	tn := startNode(t, nil, official, secret)
	code, out := tn.api(t, tn.keys["dr.secret"], "POST", "/v1/chat/completions",
		`{"model":"cyber-threat","messages":[{"role":"user","content":"indicators for the ward network"}]}`, "X-Sios-Classification", "SECRET")
	if code != http.StatusOK {
		t.Fatalf("the SECRET user's request: %d %s", code, out)
	}
	if code, out := tn.api(t, tn.keys["dr.official"], "POST", "/v1/chat/completions",
		`{"model":"education","messages":[{"role":"user","content":"a reading list"}]}`); code != http.StatusOK {
		t.Fatalf("the OFFICIAL user's request: %d %s", code, out)
	}
	secretIdx := tn.recordIndex(t, func(r *oar.Record) bool { return r.Action == oar.ActionBrainInvoke && r.Classification == "SECRET" })
	officialIdx := tn.recordIndex(t, func(r *oar.Record) bool {
		return r.Action == oar.ActionBrainInvoke && r.Actor.ID == "dr.official" && r.Resource == "brain/education"
	})

	b := tn.browser(t)
	b.signIn(tn.keys["dr.official"])
	// The brains page lists exactly what /v1/models lists for them.
	_, models := tn.api(t, tn.keys["dr.official"], "GET", "/v1/models", "")
	var list struct{ Data []struct{ ID string } }
	if err := json.Unmarshal([]byte(models), &list); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, m := range list.Data {
		want = append(want, m.ID)
	}
	brains := b.get("/console/brains").body
	var got []string
	for _, m := range brainIDs.FindAllStringSubmatch(brains, -1) {
		got = append(got, m[1])
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) || !slices.Contains(got, "education") {
		t.Fatalf("the brains page lists %v; /v1/models lists %v", got, want)
	}
	for _, page := range []string{"/console/brains", "/console/fleet", "/console/audit", "/console/node", "/console/principals"} {
		body := b.get(page).body
		for _, s := range []string{"cyber-threat", "intelligence-analysis", ">SECRET<", "indicators"} {
			if strings.Contains(body, s) {
				t.Errorf("%s shows %q to an OFFICIAL user", page, s)
			}
		}
	}
	audit := b.get("/console/audit").body
	if !strings.Contains(audit, fmt.Sprintf(`/console/audit/record/%d"`, officialIdx)) {
		t.Fatalf("the audit page lacks the user's own record %d:\n%s", officialIdx, audit)
	}
	if strings.Contains(audit, fmt.Sprintf(`/console/audit/record/%d"`, secretIdx)) {
		t.Fatalf("the audit page lists the SECRET record %d", secretIdx)
	}
	// A SECRET record is answered exactly as one that does not exist.
	hidden := b.get("/console/audit/record/" + strconv.FormatUint(secretIdx, 10))
	missing := b.get("/console/audit/record/99999999")
	errorOf := func(body, idx string) string {
		m := regexp.MustCompile(`<p class="error" id="error">([^<]*)</p>`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no error in:\n%s", body)
		}
		return strings.Replace(m[1], " "+idx+" ", " N ", 1)
	}
	if hidden.status != http.StatusNotFound || missing.status != http.StatusNotFound || strings.Contains(hidden.body, "cyber") ||
		errorOf(hidden.body, strconv.FormatUint(secretIdx, 10)) != errorOf(missing.body, "99999999") {
		t.Fatalf("the SECRET record: %d %q, a missing one: %d %q", hidden.status, errorOf(hidden.body, strconv.FormatUint(secretIdx, 10)),
			missing.status, errorOf(missing.body, "99999999"))
	}
	if p := b.get("/console/audit/receipt/" + strconv.FormatUint(secretIdx, 10)); p.status != http.StatusNotFound {
		t.Fatalf("the SECRET record's receipt: %d", p.status)
	}
	if p := b.get("/console/audit?action=brain.invoke&rows=500"); strings.Contains(p.body, "cyber-threat") {
		t.Fatal("a filter shows the SECRET record")
	}
	// Their own record, with its receipt.
	own := b.get("/console/audit/record/" + strconv.FormatUint(officialIdx, 10))
	if own.status != http.StatusOK || !strings.Contains(own.body, "brain/education") || !strings.Contains(own.body, `id="receipt"`) {
		t.Fatalf("their own record: %d\n%s", own.status, own.body)
	}
	// The node's health and addresses, the replicas page and verification are not theirs.
	if body := b.get("/console/node").body; strings.Contains(body, `id="health"`) || strings.Contains(body, tn.url[len("http://"):]) ||
		!strings.Contains(body, `id="posture"`) {
		t.Fatalf("the node page of an OFFICIAL user:\n%s", body)
	}
	if p := b.get("/console/replicas"); p.status != http.StatusForbidden || strings.Contains(b.get("/console/node").body, `href="/console/replicas"`) {
		t.Fatalf("the replicas page for an OFFICIAL user: %d", p.status)
	}

	// The SECRET user of the same tenant does see it: the test above can fail.
	s := tn.browser(t)
	s.signIn(tn.keys["dr.secret"])
	if body := s.get("/console/brains").body; !strings.Contains(body, ">cyber-threat<") {
		t.Fatal("the SECRET user's brains page lacks cyber-threat")
	}
	rec := s.get("/console/audit/record/" + strconv.FormatUint(secretIdx, 10))
	if rec.status != http.StatusOK || !strings.Contains(rec.body, `<span class="lvl" id="classification">SECRET</span>`) {
		t.Fatalf("the SECRET user's view of the record: %d\n%s", rec.status, rec.body)
	}
}

// Admins change principals through the console: decided by Cedar, made by the admin
// API's function, recorded first; a revoked key ends its sessions at once.
func TestAdminChangesPrincipals(t *testing.T) {
	tn := startNode(t, nil, official, secret)
	victim := tn.browser(t)
	victim.signIn(tn.keys["dr.official"])
	admin := tn.browser(t)
	csrf := admin.signIn(tn.keys["admin"])
	page := admin.get("/console/principals").body
	if !strings.Contains(page, `id="p-hospital-dr.official"`) || !strings.Contains(page, "allowed by permit-admins") {
		t.Fatalf("the admin's principals page:\n%s", page)
	}
	// A principal without the role admin may change nothing, not even by posting.
	other := tn.browser(t)
	otherCSRF := other.signIn(tn.keys["dr.secret"])
	if body := other.get("/console/principals").body; strings.Contains(body, `action="/console/principals/change"`) {
		t.Fatal("a non-admin is offered changes")
	}
	if p := other.post("/console/principals/change", url.Values{"csrf": {otherCSRF}, "tenant": {"hospital"}, "id": {"dr.official"}, "op": {"disable"}}); p.status != http.StatusForbidden ||
		!strings.Contains(p.body, "may not administer hospital/dr.official") {
		t.Fatalf("a non-admin's change: %d\n%s", p.status, p.body)
	}
	// Rotating a key shows the new key once; the old one stops, the new one works.
	p := admin.post("/console/principals/change", url.Values{"csrf": {csrf}, "tenant": {"hospital"}, "id": {"dr.official"}, "op": {"rotate-key"}})
	newKey := regexp.MustCompile(`<pre id="secret">(sios_[^<]+)</pre>`).FindStringSubmatch(p.body)
	if p.status != http.StatusOK || newKey == nil || p.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("rotate-key: %d\n%s", p.status, p.body)
	}
	if code, _ := tn.api(t, tn.keys["dr.official"], "GET", "/v1/models", ""); code != http.StatusUnauthorized {
		t.Fatalf("the rotated-out key answers %d", code)
	}
	if code, _ := tn.api(t, newKey[1], "GET", "/v1/models", ""); code != http.StatusOK {
		t.Fatalf("the new key answers %d", code)
	}
	// The victim's console session was made with the old key: it ended at once.
	if p := victim.get("/console/audit"); p.status != http.StatusSeeOther || !strings.Contains(p.header.Get("Location"), "why=revoked") {
		t.Fatalf("a session of a rotated-out key: %d %s", p.status, p.header.Get("Location"))
	}
	// Removal needs confirming.
	if p := admin.post("/console/principals/change", url.Values{"csrf": {csrf}, "tenant": {"hospital"}, "id": {"dr.secret"}, "op": {"remove"}}); p.status != http.StatusBadRequest {
		t.Fatalf("an unconfirmed removal: %d", p.status)
	}
	if p := admin.post("/console/principals/change", url.Values{"csrf": {csrf}, "tenant": {"hospital"}, "id": {"dr.secret"}, "op": {"set"}, "clearance": {"TOP-SECRET"}, "roles": {"clinician, auditor"}}); p.status != http.StatusOK {
		t.Fatalf("set: %d\n%s", p.status, p.body)
	}
	// The other session sees its new clearance at once.
	if body := other.get("/console/principals").body; !strings.Contains(body, "TOP-SECRET") || !strings.Contains(body, "clinician, auditor") {
		t.Fatalf("the changed principal's own page:\n%s", body)
	}
	recs := tn.records(t, action(oar.ActionPrincipalSet))
	var rotate, set *oar.Record
	for _, r := range recs {
		switch r.Action {
		case oar.ActionPrincipalRotateKey:
			rotate = r
		case oar.ActionPrincipalSet:
			set = r
		case oar.ActionPrincipalDisable, oar.ActionPrincipalRemove:
			t.Fatalf("a refused change was recorded: %+v", r)
		}
	}
	if rotate == nil || rotate.Actor.ID != "admin" || rotate.Actor.Clearance != "TOP-SECRET" || rotate.Tenant != "hospital" ||
		!slices.Equal(rotate.Decision.Policies, []string{"permit-admins"}) || strings.Contains(string(rotate.Detail), newKey[1]) {
		t.Fatalf("the rotate-key record: %+v %s", rotate, rotate.Detail)
	}
	if set == nil || !strings.Contains(string(set.Detail), `"clearance":"TOP-SECRET"`) {
		t.Fatalf("the set record: %+v", set)
	}
}

func TestExportAndVerifyFromTheConsole(t *testing.T) {
	tn := startNode(t, nil, official)
	admin := tn.browser(t)
	csrf := admin.signIn(tn.keys["admin"])
	// Wait until the admin's sign-in is checkpointed, then export the whole log: the
	// node's own records and the default tenant's, all the admin's to read.
	tn.records(t, action(oar.ActionConsoleSignIn))
	p := admin.post("/console/audit/export", url.Values{"csrf": {csrf}, "from": {"0"}})
	if p.status != http.StatusOK || !strings.Contains(p.header.Get("Content-Disposition"), "attachment; filename=sios-evidence-0-") {
		t.Fatalf("export: %d %v\n%s", p.status, p.header, p.body)
	}
	b, err := ledger.ParseBundle([]byte(p.body))
	if err != nil {
		t.Fatal(err)
	}
	res, err := b.Verify()
	if err != nil || res.NodeID != tn.id || res.Records == 0 {
		t.Fatalf("the bundle: %+v %v", res, err)
	}
	recs := tn.records(t, action(oar.ActionAuditExport))
	for _, r := range recs {
		if r.Action == oar.ActionAuditExport && (r.Actor.ID != "admin" || !strings.Contains(string(r.Detail), `"via":"console"`)) {
			t.Fatalf("the export record: %+v", r)
		}
	}
	// A range holding records the viewer may not read is not handed out.
	o := tn.browser(t)
	ocsrf := o.signIn(tn.keys["dr.official"])
	if p := o.post("/console/audit/export", url.Values{"csrf": {ocsrf}, "from": {"0"}}); p.status != http.StatusForbidden || !strings.Contains(p.body, "which you may not read") {
		t.Fatalf("an OFFICIAL user's export of the node's records: %d\n%s", p.status, p.body)
	}
	if p := admin.post("/console/audit/export", url.Values{"csrf": {csrf}, "from": {"0"}, "to": {strconv.Itoa(console.MaxExportEntries + 1)}}); p.status != http.StatusOK {
		// The log is smaller than the cap: 'to' is clipped to its end.
		t.Fatalf("an export past the end: %d", p.status)
	}
	if p := admin.post("/console/audit/export", url.Values{"csrf": {csrf}, "from": {"x"}}); p.status != http.StatusBadRequest {
		t.Fatalf("a bad index: %d", p.status)
	}

	// Verification: only for those who may read the node's own records.
	if p := o.post("/console/audit/verify", url.Values{"csrf": {ocsrf}}); p.status != http.StatusForbidden {
		t.Fatalf("an OFFICIAL user's verification: %d", p.status)
	}
	p = admin.post("/console/audit/verify", url.Values{"csrf": {csrf}})
	loc := p.header.Get("Location")
	if p.status != http.StatusSeeOther || !strings.HasPrefix(loc, "/console/audit/verify/") {
		t.Fatalf("verify: %d %s", p.status, loc)
	}
	if page := admin.get(loc); page.status != http.StatusOK || !strings.Contains(page.body, `<progress id="progress"`) ||
		!strings.Contains(page.body, `src="/console/static/progress.js"`) {
		t.Fatalf("the verification page: %d\n%s", page.status, page.body)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		st := admin.get(loc + "/status")
		var s struct {
			Finished, OK bool
			Done, Total  uint64
			Failure      string
			Result       *ledger.VerifyResult
		}
		if err := json.Unmarshal([]byte(st.body), &s); err != nil {
			t.Fatalf("status: %v %s", err, st.body)
		}
		if s.Finished {
			if !s.OK || s.Result == nil || s.Result.Records == 0 || s.Done != s.Total || s.Total != s.Result.Entries {
				t.Fatalf("verification: %+v", s)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the verification did not finish")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if body := admin.get(loc).body; !strings.Contains(body, "The log verifies") {
		t.Fatalf("the finished verification page:\n%s", body)
	}
	if p := o.get(loc + "/status"); p.status != http.StatusForbidden {
		t.Fatalf("another user's view of the verification: %d", p.status)
	}
}
