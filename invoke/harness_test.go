package invoke

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/backend/builtin"
	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/consent"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/memory"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
	"k8s.io/klog/v2"
)

// The stage tests run a real pipeline — a real ledger, the default Cedar policies, the
// embedded brains, an encrypted memory store — with no HTTP: model servers and peers
// are in-process fakes that behave like real ones (tool calls, errors, mid-answer
// failures; signed replies).

// recorder wraps the real ledger and keeps every record appended, in order.
type recorder struct {
	l    *ledger.Ledger
	fail error // when set, every append fails with it

	mu   sync.Mutex
	recs []*oar.Record
}

func (r *recorder) Size() uint64 { return r.l.Size() }

func (r *recorder) Write(ctx context.Context, rec *oar.Record) (*ledger.Written, error) {
	if r.fail != nil {
		return nil, r.fail
	}
	w, err := r.l.Write(ctx, rec)
	if err == nil {
		r.mu.Lock()
		r.recs = append(r.recs, rec)
		r.mu.Unlock()
	}
	return w, err
}

func (r *recorder) Prepare(rec *oar.Record) (*ledger.Prepared, error) { return r.l.Prepare(rec) }

// WritePrepared keeps the record Prepare was given: the recorder holds the prepared
// entry's record by its hash.
func (r *recorder) WritePrepared(ctx context.Context, pr *ledger.Prepared) (*ledger.Written, error) {
	if r.fail != nil {
		return nil, r.fail
	}
	w, err := r.l.WritePrepared(ctx, pr)
	if err == nil {
		e, perr := oar.Parse(pr.Entry)
		if perr != nil {
			return nil, perr
		}
		r.mu.Lock()
		r.recs = append(r.recs, e.Record)
		r.mu.Unlock()
	}
	return w, err
}

func (r *recorder) Add(ctx context.Context, rec *oar.Record, then func(error)) error {
	if r.fail != nil {
		return r.fail
	}
	return r.l.Add(ctx, rec, func(err error) {
		if err == nil {
			r.mu.Lock()
			r.recs = append(r.recs, rec)
			r.mu.Unlock()
		}
		then(err)
	})
}

func (r *recorder) Append(ctx context.Context, rec *oar.Record) (*oar.Receipt, []byte, error) {
	if r.fail != nil {
		return nil, nil, r.fail
	}
	rc, e, err := r.l.Append(ctx, rec)
	if err == nil {
		r.mu.Lock()
		r.recs = append(r.recs, rec)
		r.mu.Unlock()
	}
	return rc, e, err
}

// byAction returns the records with the given action.
func (r *recorder) byAction(action string) []*oar.Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*oar.Record
	for _, rec := range r.recs {
		if rec.Action == action {
			out = append(out, rec)
		}
	}
	return out
}

// turn is one answer of a scripted model server.
type turn struct {
	content   string
	toolCalls []backend.ToolCall
	err       error // returned instead of an answer
	failAfter int   // stream this many pieces, then fail with err
	delay     time.Duration
}

// scripted is a model server that answers each chat with its next turn (the last one
// repeats), streaming word by word when asked, and records what it was sent.
type scripted struct {
	mu    sync.Mutex
	turns []turn
	sent  []backend.ChatRequest
}

func (s *scripted) Chat(ctx context.Context, req backend.ChatRequest, onDelta func(backend.Delta) error) (*backend.ChatResponse, error) {
	s.mu.Lock()
	s.sent = append(s.sent, req)
	t := s.turns[0]
	if len(s.turns) > 1 {
		s.turns = s.turns[1:]
	}
	s.mu.Unlock()
	if t.delay > 0 {
		select {
		case <-time.After(t.delay):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if t.err != nil && t.failAfter == 0 {
		return nil, t.err
	}
	if onDelta != nil {
		for i, w := range strings.SplitAfter(t.content, " ") {
			if t.err != nil && i == t.failAfter {
				return nil, t.err
			}
			if err := onDelta(backend.Delta{Content: w}); err != nil {
				return nil, err
			}
		}
	}
	fr := "stop"
	if len(t.toolCalls) > 0 {
		fr = "tool_calls"
	}
	n := len(strings.Fields(t.content))
	return &backend.ChatResponse{Content: t.content, ToolCalls: t.toolCalls, FinishReason: fr,
		Usage: backend.Usage{PromptTokens: 10, CompletionTokens: n, TotalTokens: 10 + n}}, nil
}

func (s *scripted) Embed(_ context.Context, _ string, in []string) ([][]float32, backend.Usage, error) {
	n := 0
	for _, t := range in {
		n += builtin.CountTokens(t)
	}
	return builtin.Embed(in), backend.Usage{PromptTokens: n, TotalTokens: n}, nil
}

func (s *scripted) requests() []backend.ChatRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]backend.ChatRequest(nil), s.sent...)
}

// servers resolves model-server URLs to scripted servers.
type servers map[string]backend.Backend

func (s servers) Get(url string) (backend.Backend, error) {
	if b, ok := s[url]; ok {
		return b, nil
	}
	return nil, errors.New("no such server")
}

// quickBrain is a brain with a short time budget and two tools, for the tests.
const quickBrain = `id: quick
kind: operational
title: Quick
description: A brain with a one-second budget for the pipeline's tests.
system_prompt: Answer quickly.
classification: OFFICIAL
tools: [calculator, memory.search]
max_tokens: 256
timeout: 1s
rate_limit: {requests_per_minute: 6000, burst: 1000}
---
id: agent
kind: operational
title: Agent
description: A brain that takes the caller's tools, images and options, for the pipeline's tests.
system_prompt: Help.
classification: OFFICIAL
tools: [calculator, memory.search]
client_tools: [get_weather]
images: true
parameters: [temperature, stop, seed, response_format, options]
pin: {top_p: 0.9}
options: {num_ctx: 4096}
max_tokens: 256
timeout: 5s
rate_limit: {requests_per_minute: 6000, burst: 1000}
---
id: narrow
kind: operational
title: Narrow
description: A brain with a burst of three, for the pipeline's tests.
system_prompt: Answer.
classification: OFFICIAL
builtin: summarise
max_tokens: 256
timeout: 5s
rate_limit: {requests_per_minute: 60, burst: 3}
`

type harness struct {
	p      *Pipeline
	rec    *recorder
	id     *identity.Node
	dir    string
	server *scripted
	mem    *memory.Ops
	ps     *policy.Principals
}

// newHarness builds a pipeline on a fresh data directory. Brains whose backend is the
// node default run on the builtin backend unless model is "http://model".
func newHarness(t testing.TB, defaultBackend string, cfg func(*Config)) *harness {
	t.Helper()
	dir := t.TempDir()
	res, err := identity.Init(dir, "test", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := policy.WriteDefaults(dir); err != nil {
		t.Fatal(err)
	}
	eng, err := policy.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "brains"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "brains", "quick.yaml"), []byte(quickBrain), 0o600); err != nil {
		t.Fatal(err)
	}
	brains, err := brain.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	ps, err := policy.OpenPrincipals(dir)
	if err != nil {
		t.Fatal(err)
	}
	l, err := ledger.Open(context.Background(), filepath.Join(dir, "ledger"), res.Node, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	store, err := memory.Open(dir, memory.Options{})
	if err != nil {
		t.Fatal(err)
	}
	grants, err := consent.OpenStore(dir, consent.Signer{Key: res.Node.Public(), Institution: res.Node.Cert.RootID})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{l: l}
	h := &harness{rec: rec, id: res.Node, dir: dir, server: &scripted{turns: []turn{{content: "hello from the model"}}}, ps: ps}
	h.mem = &memory.Ops{Store: store, Append: rec.Append}
	c := Config{
		Identity: res.Node, Ledger: rec, Policy: policy.NewLive(eng, nil), Principals: ps, Brains: brain.NewLive(brains), Memory: h.mem,
		Backends: servers{"http://model": h.server}, Builtin: &builtin.Backend{Brains: brain.NewLive(brains), Policies: eng.Len},
		OpenLog: func() (*ledger.Reader, error) {
			return ledger.OpenReader(filepath.Join(dir, "ledger"), res.Node.ID(), res.Node.Public())
		},
		FleetLog: fleet.NewLog(), Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Consent: grants,
		DefaultBackend: defaultBackend, DefaultModel: "tiny", BackendAccreditation: policy.Secret, Posture: policy.Secret,
		PrincipalPerMinute: 600, PrincipalBurst: 100,
	}
	if cfg != nil {
		cfg(&c)
	}
	h.p = New(c)
	t.Cleanup(func() {
		h.p.Wait()
		store.Close()
		l.Close(context.Background())
	})
	return h
}

func principal(id string, clearance policy.Level) *policy.Principal {
	return &policy.Principal{ID: id, Tenant: "hospital", Clearance: clearance}
}

func ask(model, text string) *Invocation {
	return &Invocation{Principal: principal("dr.okafor", policy.Secret), Model: model,
		Messages: []Message{{Role: "user", Content: text}}}
}

// sink collects an answer.
type sink struct {
	brain   string
	receipt *oar.Receipt
	deltas  []string
	result  *Result
}

func (s *sink) Start(b string, rc *oar.Receipt) error {
	s.brain, s.receipt = b, rc
	return nil
}
func (s *sink) Delta(c string) error { s.deltas = append(s.deltas, c); return nil }
func (s *sink) Finish(r *Result) error {
	s.result = r
	return nil
}

// outcome asserts err is a pipeline outcome with the given code and returns it.
func outcome(t *testing.T, err error, code Code) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v, want outcome %s", err, code)
	}
	if e.Code != code {
		t.Fatalf("got %s (%s), want %s", e.Code, e.Message, code)
	}
	return e
}

func detailOf(t *testing.T, rec *oar.Record) map[string]any {
	t.Helper()
	var m map[string]any
	if len(rec.Detail) > 0 {
		if err := json.Unmarshal(rec.Detail, &m); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

// TestMain keeps Tessera's logging (klog) off the test output.
func TestMain(m *testing.M) {
	fs := flag.NewFlagSet("klog", flag.ContinueOnError)
	klog.InitFlags(fs)
	_ = fs.Set("logtostderr", "false")
	_ = fs.Set("stderrthreshold", "FATAL")
	klog.SetOutput(io.Discard)
	os.Exit(m.Run())
}
