package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sios-project/sios/decision"
	"github.com/sios-project/sios/deliberate"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/oar"
)

// forger is a member of the fleet, enrolled in the origin's institution, that answers
// decision calls with ballots of the test's making: a real fleet member (membership,
// mutual TLS, federation records) in this process, whose answers no honest node
// would give.
type forger struct {
	node  *identity.Node
	fleet *fleet.Fleet
	mu    sync.Mutex
	// make turns the request into the ballot to answer with.
	make func(req *decision.Request) []byte
}

func startForger(t *testing.T, dir, join string) *forger {
	t.Helper()
	n, err := identity.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := fleet.OpenPublisher(filepath.Join(dir, "feed"), n, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		kind string
		body any
	}{
		{fleet.KindPosture, &fleet.PostureBody{Classification: "SECRET"}},
		{fleet.KindBrains, &fleet.BrainsBody{Brains: []fleet.Brain{{ID: secondOpinion, Kind: "domain", Classification: "OFFICIAL-SENSITIVE"}}}},
	} {
		if _, err := pub.Publish(r.kind, r.body, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	f := &forger{node: n}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+deliberate.CallPath, func(w http.ResponseWriter, r *http.Request) {
		var rq fleet.CallRequest
		body, _ := io.ReadAll(r.Body)
		json.Unmarshal(body, &rq)
		p, err := deliberate.ParseCallPayload(rq.Payload)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		req, err := decision.ParseRequest(p.Request)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		f.mu.Lock()
		ballot := f.make(req)
		f.mu.Unlock()
		out, _ := fleet.Marshal(deliberate.CallAnswer{Ballot: ballot, Rationale: "forged"})
		w.Write(out)
	})
	own, _ := identity.LoadCertificate(filepath.Join(dir, identity.NodeCertFile))
	_, root, _ := own.Verify()
	trust := fleet.NewTrust(root)
	f.fleet, err = fleet.Start(context.Background(), fleet.Config{Node: n, Publisher: pub, Log: fleet.NewLog(),
		Trust: func() fleet.Trust { return trust }, Listen: "127.0.0.1:0", Join: []string{join}, Handler: mux,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.fleet.Publish(fleet.KindEndpoints, &fleet.EndpointsBody{API: "127.0.0.1:9", Fleet: f.fleet.Addr()}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.fleet.Close(time.Second) })
	return f
}

func (f *forger) answer(make func(req *decision.Request) []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.make = make
}

// ballot is a well-formed ballot of the forger's for req, signed by key.
func (f *forger) ballot(t *testing.T, req *decision.Request, key *identity.PrivateKey, edit func(*decision.Ballot)) []byte {
	b := decision.Answer{Choice: req.Options[1], Confidence: 900, Rationale: "forged"}.Ballot(req, f.node.ID(), secondOpinion, "forged-model", time.Now())
	if edit != nil {
		edit(&b)
	}
	raw, err := decision.SealBallot(key, b)
	if err != nil {
		t.Error(err)
	}
	return raw
}

// A ballot that does not verify, names another decision, or is replayed from an
// earlier one is rejected with its reason, not counted, and recorded in the outcome.
func TestDecisionRejectsForgedBallots(t *testing.T) {
	t.Parallel()
	hospital := newInstitution(t, "o", "forger", "other")
	dirO, dirF, dirX := hospital.dirs[0], hospital.dirs[1], hospital.dirs[2]
	writeFile(t, dirO, "brains/clinical-triage.yaml", panelBrain("clinical-triage", "OFFICIAL-SENSITIVE"))
	sc := newScript()
	sc.set("clinical-triage", "discharge", 0)
	o := startNode(t, dirO, "--fleet-listen", "127.0.0.1:0", "--backend", modelServer(t, sc.mock()), "--model", "unused")
	f := startForger(t, dirF, o.fleetAddr)
	eventually(t, 20*time.Second, "O routes to the forger's second-opinion", func() (bool, string) {
		routes := decode[map[string][]map[string]any](t, ok(t, dirO, "fleet", "routes", "--json"))
		return len(routes[secondOpinion]) == 1 && routes[secondOpinion][0]["state"] == fleet.StateAlive, ""
	})
	other, err := identity.Load(dirX)
	if err != nil {
		t.Fatal(err)
	}
	key := o.addPrincipal(t, "default", "alice", "SECRET")
	ask := func(q string) deliberate.Result {
		t.Helper()
		status, res, body := o.decide(t, key, map[string]any{"question": q, "options": []string{"discharge", "admit"},
			"members": []string{"clinical-triage", secondOpinion + "@*"}, "classification": "OFFICIAL-SENSITIVE"})
		if status != 200 {
			t.Fatalf("%d %.300s", status, body)
		}
		return res
	}

	// An honest ballot first: counted. It is replayed below.
	var earlier []byte
	f.answer(func(req *decision.Request) []byte {
		earlier = f.ballot(t, req, f.node.Key, nil)
		return earlier
	})
	if res := ask("An honest question"); len(res.Ballots) != 2 || res.Status != decision.StatusTie {
		t.Fatalf("the forger's honest ballot: %s, ballots %d, rejected %v", res.Status, len(res.Ballots), res.Rejected)
	}

	cases := []struct {
		name, reason string
		make         func(req *decision.Request) []byte
	}{
		{"a flipped byte", decision.ReasonBadSignature, func(req *decision.Request) []byte {
			b := f.ballot(t, req, f.node.Key, nil)
			i := bytes.Index(b, []byte(`"rationale_digest":"`)) + len(`"rationale_digest":"`)
			if b[i] == 'a' {
				b[i] = 'b'
			} else {
				b[i] = 'a'
			}
			return b
		}},
		{"the wrong key", decision.ReasonBadSignature, func(req *decision.Request) []byte { return f.ballot(t, req, other.Key, nil) }},
		{"another decision", decision.ReasonWrongDecision, func(req *decision.Request) []byte {
			return f.ballot(t, req, f.node.Key, func(b *decision.Ballot) { b.Decision = strings.Repeat("ab", 32) })
		}},
		{"replayed from an earlier decision", decision.ReasonWrongDecision, func(*decision.Request) []byte { return earlier }},
		{"not JSON at all", decision.ReasonMalformed, func(*decision.Request) []byte { return []byte(`"a ballot"`) }},
	}
	for _, c := range cases {
		f.answer(c.make)
		res := ask("A question answered with " + c.name)
		if len(res.Rejected) != 1 || res.Rejected[0].Reason != c.reason || res.Rejected[0].Node != f.node.ID() {
			t.Fatalf("%s: rejected %v, want one %s", c.name, res.Rejected, c.reason)
		}
		if len(res.Ballots) != 1 || res.Status != decision.StatusDecided || *res.Outcome != "discharge" ||
			len(res.Absent) != 1 || res.Absent[0].Member != secondOpinion+"@*" {
			t.Fatalf("%s: the forged ballot counted: %s %v, ballots %d, absent %v", c.name, res.Status, res.Tally, len(res.Ballots), res.Absent)
		}
	}
	o.stop(t)
	// Each rejection is in the signed outcome the origin recorded.
	var reasons []string
	for _, r := range recordsWith(ledgerRecords(t, dirO), oar.ActionDecisionOutcome) {
		out, err := decision.ParseOutcome(r.Parties[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range out.Rejected {
			reasons = append(reasons, j.Reason)
		}
	}
	if strings.Join(reasons, ",") != "bad_signature,bad_signature,wrong_decision,wrong_decision,malformed" {
		t.Fatalf("the outcome records hold the rejections %v", reasons)
	}
	ok(t, dirO, "audit", "verify")
}
