package console_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/api"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/oar"
)

var grantRows = regexp.MustCompile(`<tr id="g-([0-9a-f]+)">`)

// grantsOn are the grants a consents page lists.
func grantsOn(body string) []string {
	var out []string
	for _, m := range grantRows.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	slices.Sort(out)
	return out
}

// apiGrants are the grants GET /v1/consents lists for a key.
func (tn *testNode) apiGrants(t testing.TB, key string) []string {
	t.Helper()
	code, out := tn.api(t, key, "GET", "/v1/consents", "")
	var list struct{ Data []struct{ ID string } }
	if code != http.StatusOK || json.Unmarshal([]byte(out), &list) != nil {
		t.Fatalf("GET /v1/consents: %d %s", code, out)
	}
	var ids []string
	for _, g := range list.Data {
		ids = append(ids, g.ID)
	}
	slices.Sort(ids)
	return ids
}

// apiGrant is grant id as GET /v1/consents lists it for a key.
func (tn *testNode) apiGrant(t testing.TB, key, id string) api.ConsentSummary {
	t.Helper()
	code, out := tn.api(t, key, "GET", "/v1/consents", "")
	var list struct{ Data []api.ConsentSummary }
	if code != http.StatusOK || json.Unmarshal([]byte(out), &list) != nil {
		t.Fatalf("GET /v1/consents: %d %s", code, out)
	}
	for _, g := range list.Data {
		if g.ID == id {
			return g
		}
	}
	t.Fatalf("GET /v1/consents does not list grant %s: %s", id, out)
	return api.ConsentSummary{}
}

// The consents page lists exactly what GET /v1/consents lists for the viewer; a grant
// is made and revoked through the API's functions, recorded, and only by its grantor
// (or an admin).
func TestConsentsPage(t *testing.T) {
	tn := startNode(t, nil, official, secret, eve)
	other, err := identity.Init(t.TempDir(), "elsewhere", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	root := other.Node.Cert.RootID
	code, out := tn.api(t, tn.keys["dr.secret"], "POST", "/v1/consents", `{"to":"`+root+`","action":"invoke","brain":"cyber-threat",
		"max_classification":"SECRET","purpose":"joint incident response","expires_in":86400}`)
	var secretGrant struct{ ID string }
	if code != http.StatusCreated || json.Unmarshal([]byte(out), &secretGrant) != nil {
		t.Fatalf("the SECRET user's grant: %d %s", code, out)
	}

	o := tn.browser(t)
	csrf := o.signIn(tn.keys["dr.official"])
	grant := url.Values{"to": {"gp.okafor@" + root}, "action": {"invoke"}, "brain": {"education"}, "max_classification": {"OFFICIAL"},
		"purpose": {"a shared reading list"}, "expires": {"7d"}, "uses": {"2"}}
	if p := o.post("/console/consents/grant", grant); p.status != http.StatusForbidden {
		t.Fatalf("a grant without the session's token: %d", p.status)
	}
	grant.Set("csrf", csrf)
	p := o.post("/console/consents/grant", grant)
	m := regexp.MustCompile(`<a id="download" href="/console/consents/grant/([0-9a-f]+)">`).FindStringSubmatch(p.body)
	if p.status != http.StatusOK || m == nil || !strings.Contains(p.body, "made and recorded") {
		t.Fatalf("the console's grant: %d\n%s", p.status, p.body)
	}
	own := m[1]
	// The grant downloaded is the grant the node signed, as the API holds it.
	file := o.get("/console/consents/grant/" + own)
	var signed struct {
		ID       string
		Grantor  struct{ Principal, Tenant string }
		Audience struct{ Principal string }
		Uses     int
	}
	if file.status != http.StatusOK || json.Unmarshal([]byte(file.body), &signed) != nil || signed.ID != own ||
		signed.Grantor.Principal != "dr.official" || signed.Audience.Principal != "gp.okafor@"+root || signed.Uses != 2 {
		t.Fatalf("the grant's file: %d %s", file.status, file.body)
	}

	// Each viewer sees what the API lists for them: their own; the admin all; another
	// tenant's user none.
	views := map[string]*browser{"dr.official": o}
	for _, who := range []string{"dr.secret", "eve", "admin"} {
		views[who] = tn.browser(t)
		views[who].signIn(tn.keys[who])
	}
	all := []string{own, secretGrant.ID}
	slices.Sort(all)
	want := map[string][]string{"dr.official": {own}, "dr.secret": {secretGrant.ID}, "eve": nil, "admin": all}
	for who, b := range views {
		page := b.get("/console/consents")
		if got := grantsOn(page.body); page.status != http.StatusOK || !slices.Equal(got, want[who]) || !slices.Equal(got, tn.apiGrants(t, tn.keys[who])) {
			t.Errorf("%s's consents page lists %v; want %v, as GET /v1/consents", who, got, want[who])
		}
	}
	page := o.get("/console/consents").body
	for _, s := range []string{secretGrant.ID, "cyber-threat", "incident"} {
		if strings.Contains(page, s) {
			t.Errorf("the OFFICIAL user's consents page shows %q", s)
		}
	}
	row := regexp.MustCompile(`(?s)<tr id="g-` + own + `">.*?</tr>`).FindString(page)
	for _, s := range []string{`class="consent-active">active`, "a shared reading list", "<strong>education</strong>", "0 of 2", "gp.okafor@"} {
		if !strings.Contains(row, s) {
			t.Errorf("the grant's row lacks %q:\n%s", s, row)
		}
	}
	// Another principal's grant can be neither downloaded nor revoked: it does not exist for them.
	if p := o.get("/console/consents/grant/" + secretGrant.ID); p.status != http.StatusNotFound {
		t.Fatalf("another's grant's file: %d", p.status)
	}
	if p := o.post("/console/consents/revoke", url.Values{"csrf": {csrf}, "id": {secretGrant.ID}}); p.status != http.StatusNotFound ||
		!strings.Contains(p.body, "holds no grant") {
		t.Fatalf("revoking another's grant: %d\n%s", p.status, p.body)
	}
	// Revocation needs the session's token and the console's own origin.
	revoke := url.Values{"csrf": {"wrong"}, "id": {own}}
	if p := o.post("/console/consents/revoke", revoke); p.status != http.StatusForbidden {
		t.Fatalf("a revocation with a wrong token: %d", p.status)
	}
	revoke.Set("csrf", csrf)
	if p := o.post("/console/consents/revoke", revoke, "Origin", "http://evil.example", "Sec-Fetch-Site", ""); p.status != http.StatusForbidden {
		t.Fatalf("a revocation from another origin: %d", p.status)
	}
	if got := tn.apiGrants(t, tn.keys["dr.official"]); len(got) != 1 {
		t.Fatal("the grant is gone")
	}
	p = o.post("/console/consents/revoke", revoke)
	if p.status != http.StatusOK || !strings.Contains(p.body, "revoked and recorded") {
		t.Fatalf("revoke: %d\n%s", p.status, p.body)
	}
	if p := o.post("/console/consents/revoke", revoke); p.status != http.StatusOK || !strings.Contains(p.body, "already revoked") {
		t.Fatalf("revoking again: %d\n%s", p.status, p.body)
	}
	if row := regexp.MustCompile(`(?s)<tr id="g-` + own + `">.*?</tr>`).FindString(o.get("/console/consents").body); !strings.Contains(row, `class="consent-revoked">revoked`) ||
		strings.Contains(row, "Revoke") {
		t.Fatalf("the revoked grant's row:\n%s", row)
	}
	recs := tn.records(t, action(oar.ActionConsentRevoke))
	revokes, grants := 0, 0
	for _, r := range recs {
		switch r.Action {
		case oar.ActionConsentRevoke:
			revokes++
			if r.Actor.ID != "dr.official" || r.Resource != "consent/"+own || r.Tenant != "hospital" {
				t.Fatalf("the revocation record: %+v", r)
			}
		case oar.ActionConsentGrant:
			grants++
			if r.Resource == "consent/"+own && (r.Actor.ID != "dr.official" || r.Decision.Effect != "allow") {
				t.Fatalf("the grant record: %+v", r)
			}
		}
	}
	if revokes != 1 || grants != 2 {
		t.Fatalf("%d revocations and %d grants recorded, want 1 and 2", revokes, grants)
	}

	// A grant beyond the user's clearance (the form offers none; a crafted one may ask)
	// is refused by policy as POST /v1/consents refuses it, and the refusal recorded.
	grant.Set("max_classification", "SECRET")
	grant.Set("purpose", "beyond clearance")
	p = o.post("/console/consents/grant", grant)
	refusal := regexp.MustCompile(`<a id="refusal" href="/console/audit/record/(\d+)">`).FindStringSubmatch(p.body)
	if p.status != http.StatusForbidden || refusal == nil || !strings.Contains(p.body, "may not grant invoke over SECRET data of tenant hospital") {
		t.Fatalf("a SECRET grant by an OFFICIAL user: %d\n%s", p.status, p.body)
	}
	code, out = tn.api(t, tn.keys["dr.official"], "POST", "/v1/consents", `{"to":"gp.okafor@`+root+`","action":"invoke","brain":"education",
		"max_classification":"SECRET","purpose":"beyond clearance","expires_in":604800}`)
	if code != http.StatusForbidden || !strings.Contains(out, "may not grant invoke over SECRET data of tenant hospital") {
		t.Fatalf("the API's answer to the same grant: %d %s", code, out)
	}
	// The refusal the page links to is the first consent.grant refusal in the log: the
	// console's, recorded as the API records its own.
	first := tn.recordIndex(t, func(r *oar.Record) bool {
		return r.Action == oar.ActionConsentGrant && r.Decision.Effect == "deny" && r.Actor.ID == "dr.official" &&
			r.Classification == "SECRET" && len(r.Parties) == 0
	})
	if refusal[1] != strconv.FormatUint(first, 10) {
		t.Fatalf("the page links to record %s as the refusal; the log's first refusal is record %d", refusal[1], first)
	}
	if got := tn.apiGrants(t, tn.keys["dr.official"]); len(got) != 1 {
		t.Fatalf("after the refusals the user's grants are %v", got)
	}
}
