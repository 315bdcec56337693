package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sios-project/sios/backend/mock"
	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/decision"
	"github.com/sios-project/sios/deliberate"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
	"github.com/sios-project/sios/trace"
)

// The panel of docs/decisions.md section 8, across three nodes of two institutions:
// O (the origin) holds clinical-triage, pharmacology and radiology-reporting; A, of
// O's institution, holds clinical-coding; B, of another institution, holds
// second-opinion, the brain of the BRAIN@* seat (the docs' evaluator@*: no other node
// offers it, so the seat is B's). The question is alice's data: it goes to B, of another
// institution, only under her consent grant for second-opinion there.

const secondOpinion = "second-opinion"

type decisionFleet struct {
	o, a, b          *runningNode
	idO, idA, idB    string
	rootB            string
	sc               *script
	modelB           *mock.Server // B's model server
	key              string       // alice at O, SECRET
	grant            string       // the file of her grant for second-opinion at B's institution
	grantID          string
	members, vetoers []string
	weights          map[string]int
}

func newDecisionFleet(t *testing.T) *decisionFleet {
	t.Helper()
	hospital := newInstitution(t, "o", "a")
	lab := newInstitution(t, "b")
	hospital.trusts(t, lab)
	lab.trusts(t, hospital)
	dirO, dirA, dirB := hospital.dirs[0], hospital.dirs[1], lab.dirs[0]
	for _, b := range []string{"clinical-triage", "pharmacology", "radiology-reporting"} {
		writeFile(t, dirO, "brains/"+b+".yaml", panelBrain(b, "OFFICIAL-SENSITIVE"))
	}
	writeFile(t, dirO, "brains/secret-triage.yaml", panelBrain("secret-triage", "SECRET"))
	writeFile(t, dirA, "brains/clinical-coding.yaml", panelBrain("clinical-coding", "OFFICIAL-SENSITIVE"))
	writeFile(t, dirB, "brains/second-opinion.yaml", panelBrain(secondOpinion, "OFFICIAL-SENSITIVE"))
	f := &decisionFleet{sc: newScript()}
	f.o = startNode(t, dirO, "--fleet-listen", "127.0.0.1:0", "--backend", modelServer(t, f.sc.mock()), "--model", "unused")
	f.a = startNode(t, dirA, "--fleet-listen", "127.0.0.1:0", "--join", f.o.fleetAddr, "--backend", modelServer(t, f.sc.mock()), "--model", "unused")
	f.modelB = f.sc.mock()
	f.b = startNode(t, dirB, "--fleet-listen", "127.0.0.1:0", "--join", f.a.fleetAddr, "--backend", modelServer(t, f.modelB), "--model", "unused")
	f.idO, f.idA, f.idB, f.rootB = nodeIDOf(t, dirO), nodeIDOf(t, dirA), nodeIDOf(t, dirB), institutionOf(t, dirB)
	seesAlive(t, dirO, f.idA, f.idB)
	eventually(t, 20*time.Second, "O routes to clinical-coding on A and second-opinion on B", func() (bool, string) {
		routes := decode[map[string][]map[string]any](t, ok(t, dirO, "fleet", "routes", "--json"))
		has := func(brain, node string) bool {
			return slices.ContainsFunc(routes[brain], func(r map[string]any) bool { return r["node_id"] == node })
		}
		return has("clinical-coding", f.idA) && has(secondOpinion, f.idB), fmt.Sprint(routes[secondOpinion])
	})
	f.key = f.o.addPrincipal(t, "default", "alice", "SECRET")
	f.grant, f.grantID = grantFile(t, f.o.url, f.key, "--to", f.rootB, "--action", "invoke", "--brain", secondOpinion,
		"--max", "OFFICIAL-SENSITIVE", "--purpose", "direct care: a second opinion on the panel's decisions", "--expires", "1d")
	f.members = []string{"clinical-triage", "pharmacology", "radiology-reporting", "clinical-coding@" + f.idA, secondOpinion + "@*"}
	f.vetoers = []string{"pharmacology", secondOpinion + "@*"}
	f.weights = map[string]int{f.members[0]: 3, f.members[1]: 1, f.members[2]: 1, f.members[3]: 2, f.members[4]: 2}
	return f
}

// brains are the panel's brains in the order of f.members.
var panelBrains = []string{"clinical-triage", "pharmacology", "radiology-reporting", "clinical-coding", secondOpinion}

// docExample is one row of the worked examples of docs/decisions.md section 8.
type docExample struct {
	name            string
	rule            decision.Rule
	minNodes, minIn int
	choices         []string // "" for an absent member
	tally           map[string]int
	vetoed          []string
	status          string
	unmet           []string
	outcome         string // "" for null
}

// docExamples reads the worked examples' table, as decision's TestDocsExamples does.
func docExamples(t *testing.T) []docExample {
	t.Helper()
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "decisions.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(doc)
	begin, end := strings.Index(s, "<!-- BEGIN EXAMPLES"), strings.Index(s, "<!-- END EXAMPLES -->")
	var out []docExample
	for _, line := range strings.Split(s[begin:end], "\n") {
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		if len(cells) != 10 || !regexp.MustCompile(`^[A-Z]\d$`).MatchString(cells[0]) {
			continue
		}
		ex := docExample{name: cells[0], tally: map[string]int{}, status: cells[8], outcome: cells[9]}
		if ex.outcome == "null" {
			ex.outcome = ""
		}
		for i, c := range strings.Split(cells[1], ", ") {
			word, arg, _ := strings.Cut(c, " ")
			switch {
			case i == 0 && word == decision.RuleVeto:
				ex.rule = decision.Rule{Name: word, Vetoers: []string{arg}}
			case i == 0 && word == decision.RuleQuorum:
				k, _ := strconv.Atoi(arg)
				ex.rule = decision.Rule{Name: word, Quorum: k}
			case i == 0:
				ex.rule = decision.Rule{Name: word}
			case word == "min_nodes":
				ex.minNodes, _ = strconv.Atoi(arg)
			case word == "min_institutions":
				ex.minIn, _ = strconv.Atoi(arg)
			default: // a further vetoer
				ex.rule.Vetoers = append(ex.rule.Vetoers, c)
			}
		}
		for _, c := range cells[2:7] {
			if c == "—" {
				c = ""
			}
			ex.choices = append(ex.choices, c)
		}
		tally, vetoed, _ := strings.Cut(cells[7], "; vetoed ")
		for _, p := range strings.Split(tally, ", ") {
			opt, n, _ := strings.Cut(p, " ")
			ex.tally[opt], _ = strconv.Atoi(n)
		}
		if vetoed != "" {
			ex.vetoed = strings.Split(vetoed, ", ")
		}
		if st, why, ok := strings.Cut(ex.status, " ("); ok {
			ex.status, ex.unmet = st, []string{strings.TrimSuffix(why, ")")}
		}
		out = append(out, ex)
	}
	if len(out) < 20 {
		t.Fatalf("read %d worked examples from docs/decisions.md", len(out))
	}
	return out
}

// request is the decision request of a worked example over the fleet's panel.
func (f *decisionFleet) request(ex docExample, question string, deadline time.Duration) map[string]any {
	panel := map[string]any{"members": f.members}
	if ex.minNodes > 0 {
		panel["min_nodes"] = ex.minNodes
	}
	if ex.minIn > 0 {
		panel["min_institutions"] = ex.minIn
	}
	rule := map[string]any{"name": ex.rule.Name}
	switch ex.rule.Name {
	case decision.RuleQuorum:
		rule["quorum"] = ex.rule.Quorum
	case decision.RuleVeto:
		var vs []string
		for _, v := range ex.rule.Vetoers {
			vs = append(vs, f.members[slices.Index([]string{"clinical-triage", "pharmacology", "radiology-reporting", "clinical-coding@A", "evaluator@*"}, v)])
		}
		rule["vetoers"] = vs
	case decision.RuleWeighted:
		panel["weights"] = f.weights
	}
	return map[string]any{"question": question, "options": []string{"discharge", "admit", "refer"}, "panel": panel, "rule": rule,
		"deadline": deadline.String(), "classification": "OFFICIAL-SENSITIVE"}
}

// script sets every member's choice; an absent member answers after the deadline.
func (f *decisionFleet) script(choices []string, latencies []time.Duration) {
	for i, b := range panelBrains {
		lat := time.Duration(0)
		if latencies != nil {
			lat = latencies[i]
		}
		if choices[i] == "" {
			f.sc.set(b, "abstain", time.Minute)
			continue
		}
		f.sc.set(b, choices[i], lat)
	}
}

func checkExample(t *testing.T, ex docExample, res deliberate.Result) {
	t.Helper()
	out := ""
	if res.Outcome != nil {
		out = *res.Outcome
	}
	if res.Status != ex.status || out != ex.outcome || fmt.Sprint(res.Tally) != fmt.Sprint(ex.tally) ||
		!slices.Equal(res.Vetoed, ex.vetoed) || !slices.Equal(res.Unmet, ex.unmet) {
		t.Fatalf("%s: got %s %q tally %v vetoed %v unmet %v; the docs say %s %q tally %v vetoed %v unmet %v (rejected %v, absent %v)",
			ex.name, res.Status, out, res.Tally, res.Vetoed, res.Unmet, ex.status, ex.outcome, ex.tally, ex.vetoed, ex.unmet, res.Rejected, res.Absent)
	}
	absent := 0
	for _, c := range ex.choices {
		if c == "" {
			absent++
		}
	}
	if len(res.Absent) != absent || len(res.Ballots) != 5-absent {
		t.Fatalf("%s: %d ballots, %d absent (%v); want %d absent", ex.name, len(res.Ballots), len(res.Absent), res.Absent, absent)
	}
}

func TestDecisionsAcrossTheFleet(t *testing.T) {
	f := newDecisionFleet(t)
	// A keeps a replica of its log on O, for the trace once A is gone.
	ok(t, f.a.dir, "audit", "replicas", "add", f.idO, "--cadence", "200ms")

	t.Run("every worked example of the docs", func(t *testing.T) {
		for _, ex := range docExamples(t) {
			f.script(ex.choices, nil)
			deadline := 20 * time.Second
			if slices.Contains(ex.choices, "") {
				deadline = 1500 * time.Millisecond
			}
			status, res, body := f.o.decide(t, f.key, f.request(ex, "Example "+ex.name+": discharge the patient?", deadline))
			if status != 200 {
				t.Fatalf("%s: %d %.300s", ex.name, status, body)
			}
			checkExample(t, ex, res)
		}
	})

	t.Run("the order of arrival changes nothing", func(t *testing.T) {
		ex := docExamples(t)[14] // V1: a veto, three nodes
		var results []deliberate.Result
		for _, order := range [][]time.Duration{
			{0, 80 * time.Millisecond, 160 * time.Millisecond, 240 * time.Millisecond, 320 * time.Millisecond},
			{320 * time.Millisecond, 240 * time.Millisecond, 160 * time.Millisecond, 80 * time.Millisecond, 0},
			{160 * time.Millisecond, 0, 320 * time.Millisecond, 80 * time.Millisecond, 240 * time.Millisecond},
		} {
			f.script(ex.choices, order)
			status, res, body := f.o.decide(t, f.key, f.request(ex, "The same question, answered in another order", 20*time.Second))
			if status != 200 {
				t.Fatalf("%d %.300s", status, body)
			}
			checkExample(t, ex, res)
			results = append(results, res)
		}
		same := func(r deliberate.Result) string {
			var bs []string
			for _, b := range r.Ballots {
				bs = append(bs, b.Node+"/"+b.Brain+"="+b.Choice)
			}
			return fmt.Sprint(r.Status, r.Outcome != nil && *r.Outcome == "admit", r.Tally, r.Vetoed, bs, r.Absent, r.Rejected)
		}
		for _, r := range results[1:] {
			if same(r) != same(results[0]) {
				t.Fatalf("another order of arrival gave another outcome:\n%s\n%s", same(results[0]), same(r))
			}
		}
	})

	t.Run("members policy forbids are never asked", func(t *testing.T) {
		f.script([]string{"admit", "admit", "admit", "admit", "admit"}, nil)
		f.sc.set("secret-triage", "refer", 0)
		q := "SECRET: the patient is a protected witness. Discharge?"
		status, res, body := f.o.decide(t, f.key, map[string]any{"question": q, "options": []string{"discharge", "admit", "refer"},
			"members": []string{"secret-triage", "clinical-triage", "clinical-coding@" + f.idA}, "classification": "SECRET"})
		if status != 200 {
			t.Fatalf("%d %.300s", status, body)
		}
		if *res.Outcome != "refer" || len(res.Ballots) != 1 || len(res.Absent) != 2 {
			t.Fatalf("only secret-triage may hear SECRET data: %v %v", res.Ballots, res.Absent)
		}
		for _, a := range res.Absent {
			if !strings.Contains(a.Reason, "not asked") || !strings.Contains(a.Reason, "forbid-flow-down") {
				t.Fatalf("absent %s: %q", a.Member, a.Reason)
			}
		}
		// A principal below a brain's classification may not use it.
		junior := f.o.addPrincipal(t, "default", "junior", "OFFICIAL")
		q2 := "Junior doctor asks: discharge?"
		status, res, body = f.o.decide(t, junior, map[string]any{"question": q2, "options": []string{"discharge", "admit"},
			"members": []string{"clinical-triage", "education@" + f.idA}}) // education is OFFICIAL
		if status != 200 {
			t.Fatalf("%d %.300s", status, body)
		}
		if len(res.Ballots) != 1 || res.Ballots[0].Node != f.idA || len(res.Absent) != 1 || !strings.Contains(res.Absent[0].Reason, "forbid-read-up") {
			t.Fatalf("junior's decision: %d ballots, absent %v", len(res.Ballots), res.Absent)
		}
		// Nothing about either question reached a member that was refused.
		for _, body := range f.sc.received() {
			s := string(body)
			if strings.Contains(s, "protected witness") && !strings.Contains(s, `"m-secret-triage"`) {
				t.Fatalf("SECRET question reached a model other than secret-triage's: %.200s", s)
			}
			if strings.Contains(s, "Junior doctor") && strings.Contains(s, `"m-clinical-triage"`) {
				t.Fatalf("junior's question reached clinical-triage's model")
			}
		}
		// Everything refused at once is a 403 with the record of the refusal.
		status, _, body = f.o.decide(t, junior, map[string]any{"question": q2, "options": []string{"discharge", "admit"},
			"members": []string{"clinical-triage", "pharmacology"}})
		if status != 403 || !strings.Contains(body, "policy_denied") {
			t.Fatalf("a panel none of which may be asked: %d %.300s", status, body)
		}
	})

	t.Run("a member at another institution is asked only under a grant", func(t *testing.T) {
		f.script([]string{"admit", "admit", "admit", "admit", "refer"}, nil)
		// Under alice's grant B's ballot counts: the request record names the grant for
		// B's member and links to the grant's use, recorded before anything was sent,
		// and B's record of its ballot names the grant too.
		status, res, body := f.o.decide(t, f.key, map[string]any{"question": "Under her grant: discharge?", "options": []string{"discharge", "admit", "refer"},
			"members": []string{"clinical-triage", secondOpinion + "@" + f.idB}, "classification": "OFFICIAL-SENSITIVE"})
		if status != 200 || len(res.Ballots) != 2 || len(res.Absent) != 0 {
			t.Fatalf("under the grant: %d %.500s", status, body)
		}
		reqRec := f.decisionRecord(t, f.o.dir, oar.ActionDecisionRequest, res.DecisionID)
		m := memberOf(t, reqRec, secondOpinion+"@"+f.idB)
		if m["effect"] != "allow" || m["consent"] == nil || m["consent"].(map[string]any)["grant"] != f.grantID {
			t.Fatalf("the request record's member: %v", m)
		}
		use := slices.IndexFunc(reqRec.Links, func(l oar.Link) bool { return l.Rel == "consent" })
		if use < 0 {
			t.Fatalf("the request record links to no consent.use: %+v", reqRec.Links)
		}
		used := slices.IndexFunc(recordsWith(ledgerRecords(t, f.o.dir), oar.ActionConsentUse), func(r *oar.Record) bool {
			d := detailMap(t, r)
			return recordHash(r) == reqRec.Links[use].RecordHash && d["decision"] == res.DecisionID && d["grant"] == f.grantID && d["peer"] == f.idB
		})
		if used < 0 {
			t.Fatal("the consent.use record the request links to is not O's record of this decision's use of the grant")
		}
		waitRecord(t, f.b.dir, func(r *oar.Record) bool {
			return r.Action == oar.ActionDecisionBallot && r.Resource == "decision/"+res.DecisionID && strings.Contains(string(r.Detail), f.grantID)
		})

		// bob has made no grant: B's member is absent, consent_required, never asked.
		bob := f.o.addPrincipal(t, "default", "bob", "SECRET")
		chats := f.modelB.Chats()
		for _, member := range []string{secondOpinion + "@*", secondOpinion + "@" + f.idB} {
			q := "Without a grant, asking " + member + ": discharge?"
			status, res, body := f.o.decide(t, bob, map[string]any{"question": q, "options": []string{"discharge", "admit", "refer"},
				"members": []string{"clinical-triage", member}, "classification": "OFFICIAL-SENSITIVE"})
			if status != 200 || len(res.Ballots) != 1 || len(res.Absent) != 1 || res.Absent[0].Member != member ||
				!strings.Contains(res.Absent[0].Reason, "not asked: consent_required") || !strings.Contains(res.Absent[0].Reason, secondOpinion) {
				t.Fatalf("%s without a grant: %d %.500s", member, status, body)
			}
			m := memberOf(t, f.decisionRecord(t, f.o.dir, oar.ActionDecisionRequest, res.DecisionID), member)
			if m["effect"] != "deny" || m["code"] != "consent_required" || fmt.Sprint(m["policies"]) != "[consent]" || m["consent"] != nil {
				t.Fatalf("the request record's member %s: %v", member, m)
			}
			for _, b := range f.modelB.Received() {
				if bytes.Contains(b, []byte(q)) {
					t.Fatalf("the question reached B's model without a grant")
				}
			}
		}
		// A panel all of whose members want a grant is refused as a remote call is.
		status, _, body = f.o.decide(t, bob, map[string]any{"question": "Nobody may be asked", "options": []string{"discharge", "admit"},
			"members": []string{secondOpinion + "@*", secondOpinion + "@" + f.idB}, "classification": "OFFICIAL-SENSITIVE"})
		if status != 403 || !strings.Contains(body, `"consent_required"`) {
			t.Fatalf("a panel of members without a grant: %d %.300s", status, body)
		}
		if n := f.modelB.Chats(); n != chats {
			t.Fatalf("B's model server answered %d requests while only members without a grant were at B", n-chats)
		}

		// Sent straight to B by O's node, a decision call is refused at B's door without
		// the grant, with an altered one, or with one made for another institution, and
		// B records each refusal with its code; with alice's own grant it is served.
		_, rootB := publicKeyOf(t, f.b.dir)
		pc := newPeerClient(t, f.o.dir, f.b.fleetAddr, fleet.NewTrust(rootB))
		real := grantBytes(t, f.grant)
		altered := bytes.Replace(real, []byte(`"purpose":"direct care:`), []byte(`"purpose":"research:`), 1)
		elsewhere, err := consent.Sign(pc.node.Key, consent.Grant{ID: consent.NewID(),
			Grantor:  consent.Grantor{Principal: "alice", Tenant: "default", Clearance: policy.Secret},
			Origin:   consent.Origin{Node: f.idO, Institution: pc.node.Cert.RootID},
			Audience: consent.Audience{Institution: pc.node.Cert.RootID},
			Scope:    consent.Scope{Action: consent.ActionInvoke, Brain: secondOpinion, Max: policy.Secret},
			Purpose:  "made for another institution", Issued: oar.FormatTime(time.Now().Truncate(time.Second)),
			Expires: oar.FormatTime(time.Now().Truncate(time.Second).Add(time.Hour))})
		if err != nil {
			t.Fatal(err)
		}
		chats = f.modelB.Chats()
		for _, c := range []struct {
			name  string
			grant []byte
			code  string
		}{
			{"no grant", nil, "consent_required"},
			{"an altered grant", altered, "consent_forged"},
			{"a grant for another institution", elsewhere, "consent_wrong_audience"},
		} {
			env, out := f.decisionCall(t, pc, "Sent straight to B with "+c.name+": discharge?", c.grant)
			if !refusedWith(out, c.code) {
				t.Fatalf("%s: %v", c.name, out)
			}
			digest := oar.DigestOf("envelope", env).SHA256
			waitRecord(t, f.b.dir, func(r *oar.Record) bool {
				return r.Action == oar.ActionFleetRefuseCall && len(r.Inputs) == 1 && r.Inputs[0].SHA256 == digest &&
					detailMap(t, r)["code"] == c.code && slices.Equal(r.Decision.Policies, []string{"consent"})
			})
		}
		if n := f.modelB.Chats(); n != chats {
			t.Fatalf("B's model answered %d refused decision calls", n-chats)
		}
		if _, out := f.decisionCall(t, pc, "Sent straight to B under her grant: discharge?", real); out["ballot"] == nil {
			t.Fatalf("under her grant: %v", out)
		}
	})

	// A decision every member answers, to trace.
	ex := docExamples(t)[0] // P1
	f.script(ex.choices, nil)
	_, traced, body := f.o.decide(t, f.key, f.request(ex, "The decision a regulator will walk", 20*time.Second))
	if len(traced.Ballots) != 5 {
		t.Fatalf("the decision to trace: %.500s", body)
	}
	whole := filepath.Join(t.TempDir(), "whole.json")
	ok(t, f.o.dir, "audit", "trace", "--record", fmt.Sprint(traced.Record.Index), "--out", whole)

	// A plain remote call: O's completion record and B's record of serving it.
	chat, _ := json.Marshal(map[string]any{"model": secondOpinion, "messages": []map[string]string{{"role": "user", "content": "A second opinion, please."}}})
	if resp, out := f.o.post(t, f.key, "/v1/chat/completions", string(chat)); resp.StatusCode != 200 {
		t.Fatalf("remote call: %d %s", resp.StatusCode, out)
	}
	callRecord := waitRecord(t, f.o.dir, func(r *oar.Record) bool {
		return r.Action == oar.ActionBrainComplete && r.Resource == "brain/"+secondOpinion && len(r.Parties) == 2
	})
	callTrace := filepath.Join(t.TempDir(), "call.json")
	ok(t, f.o.dir, "audit", "trace", "--record", fmt.Sprint(callRecord), "--out", callTrace)

	// With A gone, A's part comes from the replica O keeps.
	eventually(t, 20*time.Second, "O's replica of A catches up", func() (bool, string) {
		for _, s := range replicaStatuses(t, f.o.dir) {
			if s.NodeID == f.idA && s.Role == "source" {
				return s.Size >= logSize(t, f.a.dir), fmt.Sprintf("%d of %d", s.Size, logSize(t, f.a.dir))
			}
		}
		return false, "no copy"
	})
	f.a.stop(t)
	fromReplica := filepath.Join(t.TempDir(), "replica.json")
	ok(t, f.o.dir, "audit", "trace", "--record", fmt.Sprint(traced.Record.Index), "--out", fromReplica)
	if tr := readTrace(t, fromReplica); !slices.ContainsFunc(tr.Logs, func(l trace.Log) bool { return l.Node == f.idA && l.Source == trace.SourceReplica }) {
		t.Fatalf("A's part did not come from the replica: %+v", tr.Logs)
	}

	t.Run("a contributor killed during a decision is absent", func(t *testing.T) {
		f.script([]string{"discharge", "discharge", "discharge", "admit", "refer"}, nil)
		f.sc.set(secondOpinion, "refer", 3*time.Second)
		q4 := docExample{name: "Q4", rule: decision.Rule{Name: decision.RuleQuorum, Quorum: 3}}
		req := f.request(q4, "Decide while B dies", 6*time.Second)
		delete(req, "panel")
		req["members"] = []string{f.members[0], f.members[1], f.members[2], secondOpinion + "@*"}
		done := make(chan deliberate.Result, 1)
		go func() {
			_, res, _ := f.o.decide(t, f.key, req)
			done <- res
		}()
		time.Sleep(time.Second)
		f.b.cmd.Process.Signal(syscall.SIGKILL)
		f.b.cmd.Wait()
		res := <-done
		if res.Status != decision.StatusDecided || *res.Outcome != "discharge" || len(res.Absent) != 1 || res.Absent[0].Member != secondOpinion+"@*" {
			t.Fatalf("with B killed: %s %v %v absent %v", res.Status, res.Outcome, res.Tally, res.Absent)
		}
	})

	f.o.stop(t)
	t.Run("the trace verifies offline, nodes stopped", func(t *testing.T) {
		for _, file := range []string{whole, fromReplica, callTrace} {
			out := decode[map[string]any](t, ok(t, "", "audit", "verify", "--trace", file, "--json"))
			if out["verified"] != true {
				t.Fatalf("%s: %v", file, out)
			}
		}
		human := ok(t, "", "audit", "verify", "--trace", whole)
		for _, want := range []string{"decided, outcome discharge", f.idA, f.idB, "clinical-coding", secondOpinion, "institution root"} {
			if !strings.Contains(human, want) {
				t.Fatalf("the chain does not name %q:\n%s", want, human)
			}
		}
		call := ok(t, "", "audit", "verify", "--trace", callTrace)
		if !strings.Contains(call, "remote call of brain "+secondOpinion) || !strings.Contains(call, "served by "+f.idB) {
			t.Fatalf("the call's chain:\n%s", call)
		}
	})

	t.Run("one byte changed anywhere fails and names the part", func(t *testing.T) {
		tr := readTrace(t, whole)
		contributor := slices.IndexFunc(tr.Records, func(r trace.Record) bool {
			return r.Node == f.idB && bytes.Contains(r.Entry, []byte(`"action":"decision.ballot"`))
		})
		cases := []struct {
			name, part string
			mutate     func(t *trace.Trace)
		}{
			{"subject", "subject", func(t *trace.Trace) { t.Subject.Index++ }},
			{"a root", "roots[0]", func(t *trace.Trace) { t.Roots[0].Key.Ed25519 = flipB64(t.Roots[0].Key.Ed25519) }},
			{"a certificate", "nodes[1]", func(t *trace.Trace) { t.Nodes[1].Certificate.Name += "x" }},
			{"a checkpoint", "logs[0]", func(t *trace.Trace) { t.Logs[0].Checkpoint = flipText(t.Logs[0].Checkpoint) }},
			{"the contributor's own record", fmt.Sprintf("records[%d]", contributor), func(t *trace.Trace) {
				t.Records[contributor].Entry = bytes.Replace(t.Records[contributor].Entry, []byte(`"choice":"`), []byte(`"choice":"X`), 1)
			}},
			{"an inclusion proof", "records[2]", func(t *trace.Trace) { t.Records[2].InclusionProof[0] = flipHex(t.Records[2].InclusionProof[0]) }},
		}
		for _, c := range cases {
			m := readTrace(t, whole)
			c.mutate(m)
			b, err := trace.Encode(m)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(t.TempDir(), "bad.json")
			os.WriteFile(file, b, 0o600)
			r := fails(t, 1, "", []string{"audit", "verify", "--trace", file}, c.part)
			if !strings.Contains(r.stderr, "failed verification") {
				t.Fatalf("%s: %s", c.name, r.stderr)
			}
		}
		// A byte of the file itself.
		raw, _ := os.ReadFile(whole)
		for _, at := range []int{len(raw) / 3, len(raw) / 2, 2 * len(raw) / 3} {
			bad := slices.Clone(raw)
			bad[at] ^= 0x01
			file := filepath.Join(t.TempDir(), "flipped.json")
			os.WriteFile(file, bad, 0o600)
			fails(t, 1, "", []string{"audit", "verify", "--trace", file}, "failed verification")
		}
	})

	// Every node recorded its own part.
	for _, d := range []string{f.o.dir, f.a.dir} {
		ok(t, d, "audit", "verify")
	}
	refusals := 0
	for _, r := range recordsWith(ledgerRecords(t, f.o.dir), oar.ActionDecisionRequest) {
		if strings.Contains(string(r.Detail), "forbid-flow-down") || strings.Contains(string(r.Detail), "forbid-read-up") {
			refusals++
		}
	}
	if refusals < 3 {
		t.Fatalf("%d decision.request records name the members refused", refusals)
	}
	if n := len(recordsWith(ledgerRecords(t, f.a.dir), oar.ActionDecisionBallot)); n < 20 {
		t.Fatalf("A recorded %d ballots", n)
	}
}

// decisionRecord is dir's record of action for decision id, once it is checkpointed.
func (f *decisionFleet) decisionRecord(t *testing.T, dir, action, id string) *oar.Record {
	t.Helper()
	is := func(r *oar.Record) bool { return r.Action == action && r.Resource == "decision/"+id }
	waitRecord(t, dir, is)
	recs := ledgerRecords(t, dir)
	return recs[slices.IndexFunc(recs, is)]
}

// memberOf is the member of a decision.request record's detail.
func memberOf(t *testing.T, rec *oar.Record, member string) map[string]any {
	t.Helper()
	var d struct {
		Members []map[string]any `json:"members"`
	}
	if err := json.Unmarshal(rec.Detail, &d); err != nil {
		t.Fatal(err)
	}
	for _, m := range d.Members {
		if m["member"] == member {
			return m
		}
	}
	t.Fatalf("the request record names no member %s: %s", member, rec.Detail)
	return nil
}

func detailMap(t *testing.T, rec *oar.Record) map[string]any {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal(rec.Detail, &d); err != nil {
		t.Fatal(err)
	}
	return d
}

// decisionCall sends B a decision call as O's node would, for alice, with question to a
// panel of O's clinical-triage and B's second-opinion, carrying grant (fed-call/2)
// unless it is nil. It returns the envelope and B's answer.
func (f *decisionFleet) decisionCall(t *testing.T, pc *peerClient, question string, grant []byte) ([]byte, map[string]any) {
	t.Helper()
	now := time.Now()
	req, err := decision.SealRequest(pc.node.Key, decision.Request{Origin: f.idO, Issued: oar.FormatTime(now), Deadline: oar.FormatTime(now.Add(time.Minute)),
		Classification: "OFFICIAL-SENSITIVE", QuestionDigest: decision.QuestionDigest(question), Options: []string{"discharge", "admit", "refer"},
		Rule: decision.Rule{Name: decision.RulePlurality}, Panel: decision.Panel{Members: []string{"clinical-triage", secondOpinion + "@" + f.idB}}})
	if err != nil {
		t.Fatal(err)
	}
	payload, err := jcs.Marshal(deliberate.CallPayload{Question: question, Request: req})
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(payload)
	env, err := fleet.SealEnvelope(pc.node.Key, fleet.Envelope{Origin: f.idO, Target: f.idB, Issued: oar.FormatTime(now), Expires: oar.FormatTime(now.Add(time.Minute)),
		Principal: "alice", Tenant: "default", Clearance: "SECRET", Classification: "OFFICIAL-SENSITIVE", Brain: secondOpinion,
		PayloadDigest: hex.EncodeToString(sum[:]), Consent: grant})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(map[string]json.RawMessage{"envelope": env, "payload": payload})
	_, _, b := pc.post(t, deliberate.CallPath, body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("decision call answer: %s", b)
	}
	return env, out
}

// waitRecord waits until a stopped or running node's checkpointed log holds a record
// cond accepts, and returns its index.
func waitRecord(t *testing.T, dir string, cond func(*oar.Record) bool) uint64 {
	t.Helper()
	var idx uint64
	eventually(t, 10*time.Second, "the record is checkpointed", func() (bool, string) {
		rd := openTestReader(t, dir)
		raws, err := rd.Entries(context.Background(), 0, rd.Size())
		if err != nil {
			return false, err.Error()
		}
		for i := len(raws) - 1; i >= 0; i-- {
			if e, err := oar.Parse(raws[i]); err == nil && e.Record != nil && cond(e.Record) {
				idx = uint64(i)
				return true, ""
			}
		}
		return false, fmt.Sprintf("%d entries", len(raws))
	})
	return idx
}

func readTrace(t *testing.T, file string) *trace.Trace {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := trace.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func flipB64(s string) string {
	b, _ := base64.StdEncoding.DecodeString(s)
	b[len(b)/2] ^= 1
	return base64.StdEncoding.EncodeToString(b)
}

func flipHex(s string) string {
	c := "0"
	if s[10] == '0' {
		c = "1"
	}
	return s[:10] + c + s[11:]
}

// flipText changes the first character of a checkpoint's root hash (its third line).
func flipText(s string) string {
	lines := strings.SplitN(s, "\n", 3)
	b := []byte(lines[2])
	if b[0] == 'A' {
		b[0] = 'B'
	} else {
		b[0] = 'A'
	}
	return lines[0] + "\n" + lines[1] + "\n" + string(b)
}
