package console_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/sios-project/sios/deliberate"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

var eve = policy.NewPrincipal{Tenant: "other", ID: "eve", Clearance: "TOP-SECRET"}

// decide asks a decision through the API and returns its result.
func (tn *testNode) decide(t testing.TB, key, body string) deliberate.Result {
	t.Helper()
	code, out := tn.api(t, key, "POST", "/v1/decisions", body)
	if code != http.StatusOK {
		t.Fatalf("POST /v1/decisions: %d %s", code, out)
	}
	var res deliberate.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	return res
}

var decisionLinks = regexp.MustCompile(`href="/console/decisions/([0-9a-f]{64})"`)

// listed are the decisions the decisions page links to.
func listed(body string) []string {
	var out []string
	for _, m := range decisionLinks.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

// The decisions page lists exactly the decisions whose outcome record the viewer may
// read, and shows one as GET /v1/decisions/ID does; a SECRET decision, or another
// tenant's, is answered as one that does not exist.
func TestDecisionsPage(t *testing.T) {
	tn := startNode(t, nil, official, secret, eve)
	sec := tn.decide(t, tn.keys["dr.secret"], `{"question":"isolate the ward network?","options":["isolate","monitor"],
		"members":["cyber-threat","defence-procurement"],"classification":"SECRET","deadline":"20s"}`)
	off := tn.decide(t, tn.keys["dr.official"], `{"question":"which reading list?","options":["short","long"],
		"members":["education","public-policy"],"deadline":"20s"}`)
	secIdx := tn.recordIndex(t, func(r *oar.Record) bool {
		return r.Resource == "decision/"+sec.DecisionID && r.Action == oar.ActionDecisionOutcome
	})
	offIdx := tn.recordIndex(t, func(r *oar.Record) bool {
		return r.Resource == "decision/"+off.DecisionID && r.Action == oar.ActionDecisionOutcome
	})
	if secIdx != sec.Record.Index || offIdx != off.Record.Index {
		t.Fatalf("outcome records at %d and %d; the results say %d and %d", secIdx, offIdx, sec.Record.Index, off.Record.Index)
	}

	o := tn.browser(t)
	o.signIn(tn.keys["dr.official"])
	page := o.get("/console/decisions")
	if page.status != http.StatusOK || strings.Join(listed(page.body), ",") != off.DecisionID {
		t.Fatalf("the OFFICIAL user's decisions: %d %v\n%s", page.status, listed(page.body), page.body)
	}
	for _, s := range []string{sec.DecisionID[:16], "cyber-threat", ">SECRET<", "isolate"} {
		if strings.Contains(page.body, s) {
			t.Errorf("the OFFICIAL user's decisions page shows %q", s)
		}
	}
	// The list row: question digest, status, outcome, rule, time, and the record.
	row := regexp.MustCompile(`(?s)<tr id="d-` + off.DecisionID + `">.*?</tr>`).FindString(page.body)
	if row == "" || !strings.Contains(row, ">"+off.Status+"<") || !strings.Contains(row, ">"+off.Rule+"<") ||
		!strings.Contains(row, fmt.Sprintf(`/console/audit/record/%d"`, offIdx)) || !regexp.MustCompile(`<code>[0-9a-f]{16}…</code>`).MatchString(row) {
		t.Fatalf("the decision's row:\n%s", row)
	}
	// One decision, as the API shows it.
	one := o.get("/console/decisions/" + off.DecisionID)
	if one.status != http.StatusOK {
		t.Fatalf("the decision page: %d\n%s", one.status, one.body)
	}
	for _, s := range []string{`id="status" class="status-` + off.Status, `<td>education</td>`, `<td>public-policy</td>`,
		fmt.Sprintf(`id="outcome-record" href="/console/audit/record/%d"`, offIdx), `id="request-record" href="/console/audit/record/`} {
		if !strings.Contains(one.body, s) {
			t.Errorf("the decision page lacks %q", s)
		}
	}
	t.Logf("the OFFICIAL decision: %s, %d ballots, %d absent", off.Status, len(off.Ballots), len(off.Absent))
	if len(off.Ballots)+len(off.Absent) != 2 {
		t.Fatalf("the decision: %+v", off)
	}
	for _, b := range off.Ballots {
		if !strings.Contains(one.body, fmt.Sprintf(`<td>%.2f</td>`, b.Confidence)) || !strings.Contains(one.body, fmt.Sprintf(`/console/audit/record/%d"`, b.Receipt.Index)) {
			t.Errorf("the decision page lacks ballot %+v", b)
		}
	}
	for _, a := range off.Absent {
		if !strings.Contains(one.body, "<td>"+a.Member+"</td>") {
			t.Errorf("the decision page lacks absent member %+v", a)
		}
	}
	// The SECRET decision is answered as one that does not exist, to the OFFICIAL user
	// and to another tenant's TOP-SECRET user.
	e := tn.browser(t)
	e.signIn(tn.keys["eve"])
	missing := strings.Repeat("0", 64)
	for who, b := range map[string]*browser{"dr.official": o, "eve": e} {
		hidden, none := b.get("/console/decisions/"+sec.DecisionID), b.get("/console/decisions/"+missing)
		if hidden.status != http.StatusNotFound || none.status != http.StatusNotFound ||
			strings.Replace(hidden.body, sec.DecisionID, "ID", -1) != strings.Replace(none.body, missing, "ID", -1) {
			t.Errorf("%s: the SECRET decision answers %d, a missing one %d:\n%s", who, hidden.status, none.status, hidden.body)
		}
	}
	if got := listed(e.get("/console/decisions").body); len(got) != 0 {
		t.Errorf("another tenant's user sees decisions %v", got)
	}
	// The SECRET user of the tenant sees both: the test can fail.
	s := tn.browser(t)
	s.signIn(tn.keys["dr.secret"])
	if got := listed(s.get("/console/decisions").body); strings.Join(got, ",") != off.DecisionID+","+sec.DecisionID {
		t.Fatalf("the SECRET user's decisions: %v, want %s then %s", got, off.DecisionID, sec.DecisionID)
	}
	if p := s.get("/console/decisions/" + sec.DecisionID); p.status != http.StatusOK || !strings.Contains(p.body, "<td>cyber-threat</td>") ||
		!strings.Contains(p.body, `<span class="lvl" id="classification">SECRET</span>`) {
		t.Fatalf("the SECRET user's decision page: %d\n%s", p.status, p.body)
	}
}

// A decision asked from the console is made and recorded as the API's; the form needs
// the session's token, and what the API refuses the console refuses alike.
func TestAskADecision(t *testing.T) {
	tn := startNode(t, nil, official)
	b := tn.browser(t)
	csrf := b.signIn(tn.keys["dr.official"])
	ask := url.Values{"question": {"which reading list?"}, "options": {"short, long"}, "members": {"education, public-policy"},
		"rule": {"quorum"}, "quorum": {"1"}, "deadline": {"20s"}, "classification": {"OFFICIAL"}}
	noToken := b.post("/console/decisions/ask", ask)
	ask.Set("csrf", "wrong")
	wrongToken := b.post("/console/decisions/ask", ask)
	ask.Set("csrf", csrf)
	crossSite := b.post("/console/decisions/ask", ask, "Sec-Fetch-Site", "cross-site")
	for name, p := range map[string]page{"no token": noToken, "a wrong token": wrongToken, "a cross-site form": crossSite} {
		if p.status != http.StatusForbidden {
			t.Errorf("%s: %d", name, p.status)
		}
	}
	p := b.post("/console/decisions/ask", ask)
	loc := p.header.Get("Location")
	if p.status != http.StatusSeeOther || !decisionLinks.MatchString(`href="`+loc+`"`) {
		t.Fatalf("ask: %d %s\n%s", p.status, loc, p.body)
	}
	id := strings.TrimPrefix(loc, "/console/decisions/")
	recs := tn.records(t, func(r *oar.Record) bool { return r.Action == oar.ActionDecisionOutcome && r.Resource == "decision/"+id })
	requests, outcomes := 0, 0
	for _, r := range recs {
		switch r.Action {
		case oar.ActionDecisionRequest:
			requests++
			if r.Actor.ID != "dr.official" || r.Tenant != "hospital" || r.Resource != "decision/"+id {
				t.Fatalf("the request record: %+v", r)
			}
		case oar.ActionDecisionOutcome:
			outcomes++
		}
	}
	if requests != 1 || outcomes != 1 {
		t.Fatalf("%d request and %d outcome records, want one each (and none for the refused forms)", requests, outcomes)
	}
	// The API shows the same decision to its asker.
	code, out := tn.api(t, tn.keys["dr.official"], "GET", "/v1/decisions/"+id, "")
	var res deliberate.Result
	if code != http.StatusOK || json.Unmarshal([]byte(out), &res) != nil || res.Rule != "quorum" {
		t.Fatalf("GET /v1/decisions/%s: %d %s", id, code, out)
	}
	if page := b.get(loc); page.status != http.StatusOK || !strings.Contains(page.body, `<dd id="rule">quorum</dd>`) {
		t.Fatalf("the decision asked: %d\n%s", page.status, page.body)
	}
	// What the API's request check refuses, the console refuses with its message.
	bad := url.Values{"csrf": {csrf}, "question": {"q"}, "options": {"a,b"}, "members": {"education"}, "panel": {"ward"}}
	if p := b.post("/console/decisions/ask", bad); p.status != http.StatusBadRequest || !strings.Contains(p.body, "give panel or members, not both") {
		t.Fatalf("panel and members: %d\n%s", p.status, p.body)
	}
	// A member the user may not use is refused by policy, recorded.
	denied := url.Values{"csrf": {csrf}, "question": {"q"}, "options": {"a,b"}, "members": {"cyber-threat, defence-procurement"}, "classification": {"SECRET"}}
	p = b.post("/console/decisions/ask", denied)
	refusal := regexp.MustCompile(`<a id="refusal" href="/console/audit/record/(\d+)">`).FindStringSubmatch(p.body)
	if p.status != http.StatusForbidden || refusal == nil {
		t.Fatalf("a SECRET decision by an OFFICIAL user: %d\n%s", p.status, p.body)
	}
	tn.records(t, func(r *oar.Record) bool {
		return r.Action == oar.ActionDecisionRequest && r.Classification == "SECRET" && r.Decision.Effect == "deny" && r.Actor.ID == "dr.official"
	})
}
