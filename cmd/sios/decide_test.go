package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sios-project/sios/backend/mock"
	"github.com/sios-project/sios/deliberate"
	"github.com/sios-project/sios/oar"
)

// The decision tests run every node as its own 'sios up' process on loopback, each in
// front of its own mock model server whose answers the test scripts: each brain is
// served by a model of its own name, and the mock answers a ballot's json_schema with
// the choice the test set for that model.

// panelBrains are the brains of the panel of docs/decisions.md section 8, each served
// by a model named after it.
func panelBrain(id, classification string) string {
	return fmt.Sprintf(`id: %s
kind: domain
title: %s
description: A panel member for the decision tests.
system_prompt: You decide clinical questions.
classification: %s
model: m-%s
arbitration: true
max_tokens: 256
timeout: 30s
rate_limit: {requests_per_minute: 6000, burst: 1000}
`, id, id, classification, id)
}

// script is what the mock model servers answer: a choice and a service time per model.
type script struct {
	mu      sync.Mutex
	choice  map[string]string
	latency map[string]time.Duration
	mocks   []*mock.Server
}

func newScript() *script {
	return &script{choice: map[string]string{}, latency: map[string]time.Duration{}}
}

// set scripts brain's choice (and, when positive, its model's service time).
func (s *script) set(brain, choice string, latency time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.choice["m-"+brain] = choice
	s.latency["m-"+brain] = latency
}

// received is every request body the script's mock servers answered.
func (s *script) received() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]byte
	for _, m := range s.mocks {
		out = append(out, m.Received()...)
	}
	return out
}

func (s *script) mock() *mock.Server {
	m := &mock.Server{
		Choose: func(model string, enum []any) any {
			s.mu.Lock()
			defer s.mu.Unlock()
			if c, ok := s.choice[model]; ok {
				return c
			}
			return nil
		},
		LatencyOf: func(model string) time.Duration {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.latency[model]
		},
	}
	s.mu.Lock()
	s.mocks = append(s.mocks, m)
	s.mu.Unlock()
	return m
}

// decide posts a decision to n's API and returns the result (status 200) or the error body.
func (n *runningNode) decide(t *testing.T, key string, req map[string]any) (int, deliberate.Result, string) {
	t.Helper()
	body, _ := json.Marshal(req)
	resp, out := n.post(t, key, "/v1/decisions", string(body))
	var res deliberate.Result
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("decision answer: %v\n%s", err, out)
		}
	}
	return resp.StatusCode, res, out
}

func TestDecisionOnOneNode(t *testing.T) {
	t.Parallel()
	sc := newScript()
	dir := initNode(t)
	for _, b := range []string{"clinical-triage", "pharmacology", "radiology-reporting"} {
		writeFile(t, dir, "brains/"+b+".yaml", panelBrain(b, "OFFICIAL-SENSITIVE"))
	}
	writeFile(t, dir, "panels/ward.yaml", `id: ward
members: [clinical-triage, pharmacology, radiology-reporting]
rule: {name: quorum, quorum: 2}
`)
	n := startNode(t, dir, "--backend", modelServer(t, sc.mock()), "--model", "unused")
	key := n.addPrincipal(t, "default", "dr", "SECRET")
	sc.set("clinical-triage", "admit", 0)
	sc.set("pharmacology", "admit", 0)
	sc.set("radiology-reporting", "refer", 0)

	out := ok(t, dir, "decide", "--node", n.url, "--api-key", key, "--panel", "ward", "--options", "discharge,admit,refer",
		"--classification", "OFFICIAL-SENSITIVE", "--json", "Discharge the patient in bed 4?")
	var res map[string]any
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"decision_id", "status", "outcome", "rule", "tally", "ballots", "rejected", "absent", "record"} {
		if _, ok := res[m]; !ok {
			t.Fatalf("sios decide --json has no %q: %s", m, out)
		}
	}
	if res["status"] != "decided" || res["outcome"] != "admit" || res["rule"] != "quorum" {
		t.Fatalf("quorum 2 of admit, admit, refer: %s", out)
	}
	ballots := res["ballots"].([]any)
	if len(ballots) != 3 {
		t.Fatalf("%d ballots: %s", len(ballots), out)
	}
	for _, b := range ballots {
		bm := b.(map[string]any)
		for _, m := range []string{"node", "institution", "brain", "model", "choice", "confidence", "rationale", "record_hash", "receipt"} {
			if _, ok := bm[m]; !ok {
				t.Fatalf("ballot has no %q: %v", m, bm)
			}
		}
	}
	id := res["decision_id"].(string)
	shown := decode[deliberate.Result](t, ok(t, dir, "decisions", "show", "--node", n.url, "--api-key", key, "--json", id))
	if shown.DecisionID != id || *shown.Outcome != "admit" || len(shown.Ballots) != 3 {
		t.Fatalf("decisions show: %+v", shown)
	}
	human := ok(t, dir, "decisions", "show", "--node", n.url, "--api-key", key, id)
	if !strings.Contains(human, "decided, outcome admit") {
		t.Fatalf("decisions show: %s", human)
	}
	// Another tenant's principal may not read it: it does not exist for them.
	other := n.addPrincipal(t, "other", "eve", "TOP-SECRET")
	fails(t, 1, dir, []string{"decisions", "show", "--node", n.url, "--api-key", other, id}, "decision_not_found")

	rec := res["record"].(map[string]any)
	traceFile := filepath.Join(t.TempDir(), "trace.json")
	ok(t, dir, "audit", "trace", "--record", fmt.Sprint(rec["index"]), "--out", traceFile)
	n.stop(t)
	chain := ok(t, dir, "audit", "verify", "--trace", traceFile)
	if !strings.Contains(chain, "decided, outcome admit") || !strings.Contains(chain, "pharmacology") {
		t.Fatalf("audit verify --trace:\n%s", chain)
	}
	// Offline, by hash, with the node stopped.
	offline := filepath.Join(t.TempDir(), "trace2.json")
	ok(t, dir, "audit", "trace", "--record", rec["record_hash"].(string), "--out", offline)
	ok(t, dir, "audit", "verify", "--trace", offline, "--json")
	// After a restart the decision is read back from the audit log, without rationales.
	n = startNode(t, dir, "--backend", modelServer(t, sc.mock()), "--model", "unused")
	again := decode[deliberate.Result](t, ok(t, dir, "decisions", "show", "--node", n.url, "--api-key", key, "--json", id))
	if *again.Outcome != "admit" || len(again.Ballots) != 3 || again.Ballots[0].Rationale != "" || again.Ballots[0].Receipt == nil ||
		again.Record.RecordHash != rec["record_hash"] {
		t.Fatalf("read back from the log: %+v", again)
	}
	fails(t, 1, dir, []string{"decisions", "show", "--node", n.url, "--api-key", other, id}, "decision_not_found")
	n.stop(t)
	recs := ledgerRecords(t, dir)
	for action, want := range map[string]int{oar.ActionDecisionRequest: 1, oar.ActionDecisionBallot: 3, oar.ActionDecisionOutcome: 1} {
		if got := len(recordsWith(recs, action)); got != want {
			t.Fatalf("%d %s records, want %d", got, action, want)
		}
	}
	ok(t, dir, "audit", "verify")
}

// A panel file that does not load stops the node's start-up, naming the file and line.
func TestInvalidPanelFileStopsStartUp(t *testing.T) {
	t.Parallel()
	dir := initNode(t)
	writeFile(t, dir, "panels/ward.yaml", "id: ward\nmembers: [clinical-triage, router]\n")
	r := fails(t, 1, dir, []string{"up", "--listen", "127.0.0.1:0"}, "panels/ward.yaml:2", "router", "arbitration: true")
	if strings.Contains(r.stdout, "serving") {
		t.Fatalf("the node served with a bad panel file: %s", r.stdout)
	}
}
