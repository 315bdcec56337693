package invoke

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/backend/builtin"
	"github.com/sios-project/sios/memory"
	"github.com/sios-project/sios/policy"
)

func TestExecuteBuiltin(t *testing.T) {
	h := newHarness(t, "builtin", nil)
	s := &sink{}
	if err := h.p.Chat(context.Background(), ask("calculator", "what is (2+3)*7^2"), s); err != nil {
		t.Fatal(err)
	}
	if s.brain != "calculator" || !strings.Contains(s.result.Content, "(2+3)*7^2 = 245") || !strings.HasPrefix(s.result.Content, builtin.Notice) {
		t.Fatalf("%q", s.result.Content)
	}
}

func TestExecuteBuiltinRetrievesTheCallersMemoryOnly(t *testing.T) {
	h := newHarness(t, "builtin", nil)
	ctx := context.Background()
	for _, m := range []memory.NewMemory{
		{Tenant: "hospital", Subject: "patient-7", Classification: policy.Official, Text: "Metformin was stopped after the renal review."},
		{Tenant: "lab", Subject: "sample-1", Classification: policy.Official, Text: "Metformin assay in the lab tenant."},
	} {
		if _, _, err := h.mem.Add(ctx, oprActor, oprAllow, m); err != nil {
			t.Fatal(err)
		}
	}
	s := &sink{}
	if err := h.p.Chat(ctx, ask("pharmacology", "why was metformin stopped?"), s); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.result.Content, "renal review") || strings.Contains(s.result.Content, "lab tenant") {
		t.Fatalf("answer: %q", s.result.Content)
	}
	if got := h.rec.byAction("memory.search"); len(got) != 1 || got[0].Tenant != "hospital" {
		t.Fatalf("the retrieval is audited in the caller's tenant: %+v", got)
	}
}

func TestExecuteModelServer(t *testing.T) {
	h := newHarness(t, "http://model", nil)
	s := &sink{}
	inv := ask("legal-contracts", "summarise clause 4")
	inv.Stream = true
	if err := h.p.Chat(context.Background(), inv, s); err != nil {
		t.Fatal(err)
	}
	if strings.Join(s.deltas, "") != "hello from the model" || s.result.Content != "hello from the model" {
		t.Fatalf("deltas %q, result %q", s.deltas, s.result.Content)
	}
	sent := h.server.requests()[0]
	if sent.Model != "tiny" || sent.Messages[0].Role != "system" || sent.Messages[1].Content != "summarise clause 4" {
		t.Fatalf("sent %+v", sent)
	}
	if len(sent.Tools) == 0 {
		t.Fatal("the brain's allowlisted tools are offered to the model")
	}
	h.p.Wait()
	done := h.rec.byAction("brain.complete")
	if d := detailOf(t, done[0]); d["backend"] != "http://model" || d["finish_reason"] != "stop" {
		t.Fatalf("completion detail %v", d)
	}
}

func TestExecuteRefusesAToolOutsideTheAllowlist(t *testing.T) {
	h := newHarness(t, "http://model", nil)
	h.server.turns = []turn{
		{toolCalls: []backend.ToolCall{{ID: "c1", Type: "function", Function: backend.FunctionCall{Name: "clock", Arguments: "{}"}}}},
		{content: "done"},
	}
	s := &sink{}
	if err := h.p.Chat(context.Background(), ask("legal-contracts", "what time is it"), s); err != nil {
		t.Fatal(err)
	}
	calls := h.rec.byAction("tool.call")
	if len(calls) != 1 || calls[0].Decision.Effect != "deny" || calls[0].Decision.Policies[0] != "brain-tool-allowlist" {
		t.Fatalf("tool records %+v", calls)
	}
	second := h.server.requests()[1]
	last := second.Messages[len(second.Messages)-1]
	if last.Role != "tool" || last.ToolCallID != "c1" || !strings.Contains(last.Content, "not permitted") {
		t.Fatalf("the model is told the tool was refused: %+v", last)
	}
}

func TestExecuteBackendFailures(t *testing.T) {
	for _, c := range []struct {
		name string
		turn turn
		code Code
	}{
		{"unreachable", turn{err: errors.New("connection refused")}, CodeBackendUnavailable},
		{"server error", turn{err: &backend.Error{Status: 500, Message: "out of memory"}}, CodeBackendError},
		{"mid-stream", turn{content: "one two three four", failAfter: 2, err: &backend.Error{Message: "lost"}}, CodeBackendClosed},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, "http://model", nil)
			h.server.turns = []turn{c.turn}
			inv := ask("legal-contracts", "x")
			inv.Stream = true
			s := &sink{}
			outcome(t, h.p.Chat(context.Background(), inv, s), c.code)
			h.p.Wait()
			done := h.rec.byAction("brain.complete")
			if len(done) != 1 || detailOf(t, done[0])["error"] != string(c.code) {
				t.Fatalf("the completion record names the failure: %+v", done)
			}
		})
	}
}

func TestExecuteTimeBudget(t *testing.T) {
	h := newHarness(t, "http://model", nil)
	h.server.turns = []turn{{content: "late", delay: time.Minute}}
	b, _ := h.p.cfg.Brains.Get("quick")
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(b.Timeout)+5*time.Second)
	defer cancel()
	start := time.Now()
	e := outcome(t, h.p.Chat(ctx, ask("quick", "x"), &sink{}), CodeTimeBudget)
	if took := time.Since(start); took < time.Duration(b.Timeout) || !strings.Contains(e.Message, b.Timeout.String()) {
		t.Fatalf("took %v; %s", took, e.Message)
	}
	if e.Receipt == nil {
		t.Fatal("a failure after admission carries the admission's receipt")
	}
}

var (
	oprActor = actorOf(&policy.Principal{ID: "operator", Clearance: policy.TopSecret})
	oprAllow = decisionOf(policy.Decision{Allow: true, Reasons: []string{"operator"}})
)

// The tools a brain allows run against a model server that asks for them: the
// calculator computes, and memory.search returns the tenant's memory to the model, no
// higher than where the brain's data flows.
func TestExecuteRunsAllowedTools(t *testing.T) {
	h := newHarness(t, "http://model", func(c *Config) { c.BackendAccreditation = policy.OfficialSensitive })
	ctx := context.Background()
	for _, m := range []memory.NewMemory{
		{Tenant: "hospital", Subject: "formulary", Classification: policy.Official, Text: "Metformin: stop if eGFR below 30."},
		{Tenant: "hospital", Subject: "formulary", Classification: policy.Secret, Text: "Metformin CANARY secret trial arm."},
	} {
		if _, _, err := h.mem.Add(ctx, oprActor, oprAllow, m); err != nil {
			t.Fatal(err)
		}
	}
	h.server.turns = []turn{
		{toolCalls: []backend.ToolCall{
			{ID: "c1", Type: "function", Function: backend.FunctionCall{Name: "calculator", Arguments: `{"expression":"2*(3+4)"}`}},
			{ID: "c2", Type: "function", Function: backend.FunctionCall{Name: "memory.search", Arguments: `{"query":"metformin"}`}},
		}},
		{content: "done"},
	}
	s := &sink{}
	if err := h.p.Chat(ctx, ask("pharmacology", "metformin and the kidneys"), s); err != nil {
		t.Fatal(err)
	}
	sent := h.server.requests()[1].Messages
	calc, mem := sent[len(sent)-2], sent[len(sent)-1]
	if calc.ToolCallID != "c1" || calc.Content != "14" {
		t.Fatalf("calculator result %+v", calc)
	}
	if mem.ToolCallID != "c2" || !strings.Contains(mem.Content, "eGFR below 30") {
		t.Fatalf("memory.search did not reach the model: %+v", mem)
	}
	if strings.Contains(mem.Content, "CANARY") {
		t.Fatal("SECRET memory reached a backend accredited OFFICIAL-SENSITIVE through a tool result")
	}
	if calls := h.rec.byAction("tool.call"); len(calls) != 2 || calls[0].Decision.Effect != "allow" || calls[1].Decision.Effect != "allow" {
		t.Fatalf("tool records %+v", calls)
	}
	if res := h.rec.byAction("tool.result"); len(res) != 2 || res[0].Links[0].Rel != "call" {
		t.Fatalf("result records %+v", res)
	}
}
