package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/backend/mock"
	"github.com/sios-project/sios/oar"
)

// runningNode is a 'sios up' process serving on loopback.
type runningNode struct {
	dir, url, adminKey string
	fleetAddr          string // with --fleet-listen
	metricsURL         string // with --metrics-listen: http://ADDR/metrics
	cmd                *exec.Cmd
	stderr             *syncBuffer
}

var (
	keyLine    = regexp.MustCompile(`bootstrap admin API key \(shown once; store it now\): (sios_[a-z0-9]+)`)
	serveLine  = regexp.MustCompile(`serving the OpenAI-compatible API on (http://\S+)/v1`)
	fleetLine  = regexp.MustCompile(`fleet: listening on (\S+) \(mutual TLS\)`)
	metricLine = regexp.MustCompile(`metrics: (http://\S+/metrics)`)
)

// syncBuffer is a process's output, safe to read while the process writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startNode runs 'sios --data dir up --listen 127.0.0.1:0 args...' and waits until it serves.
func startNode(t *testing.T, dir string, args ...string) *runningNode {
	t.Helper()
	cmd := exec.Command(siosBin, append([]string{"--data", dir, "up", "--listen", "127.0.0.1:0", "--grace", "5s"}, args...)...)
	stdout, _ := cmd.StdoutPipe()
	n := &runningNode{dir: dir, cmd: cmd, stderr: &syncBuffer{}}
	cmd.Stderr = n.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(30 * time.Second)
	wantFleet := slices.Contains(args, "--fleet-listen")
	wantMetrics := slices.Contains(args, "--metrics-listen")
	for n.url == "" || wantFleet && n.fleetAddr == "" || wantMetrics && n.metricsURL == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				cmd.Wait()
				t.Fatalf("sios up exited before serving: %s", n.stderr)
			}
			if m := keyLine.FindStringSubmatch(l); m != nil {
				n.adminKey = m[1]
			}
			if m := serveLine.FindStringSubmatch(l); m != nil {
				n.url = m[1]
			}
			if m := fleetLine.FindStringSubmatch(l); m != nil {
				n.fleetAddr = m[1]
			}
			if m := metricLine.FindStringSubmatch(l); m != nil {
				n.metricsURL = m[1]
			}
		case <-deadline:
			cmd.Process.Kill()
			t.Fatalf("sios up did not start serving within 30s: %s", n.stderr)
		}
	}
	go func() {
		for range lines {
		}
	}()
	t.Cleanup(func() { n.stop(t) })
	return n
}

// stop sends SIGTERM and requires a clean exit.
func (n *runningNode) stop(t *testing.T) {
	if n.cmd.ProcessState != nil {
		return
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- n.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("sios up exited with %v: %s", err, n.stderr)
		}
	case <-time.After(30 * time.Second):
		n.cmd.Process.Kill()
		t.Errorf("sios up did not stop within 30s of SIGTERM")
	}
}

func (n *runningNode) client(key string) *openai.Client {
	c := openai.NewClient(option.WithBaseURL(n.url+"/v1"), option.WithAPIKey(key), option.WithMaxRetries(0))
	return &c
}

// addPrincipal adds a principal through the CLI while the node runs, returning its key.
func (n *runningNode) addPrincipal(t *testing.T, tenant, id, clearance string) string {
	t.Helper()
	out := decode[map[string]any](t, ok(t, n.dir, "principal", "add", "--tenant", tenant, "--id", id, "--clearance", clearance, "--json"))
	key, _ := out["api_key"].(string)
	if !strings.HasPrefix(key, "sios_") {
		t.Fatalf("principal add returned no key: %v", out)
	}
	return key
}

func apiError(t *testing.T, err error, status int) *openai.Error {
	t.Helper()
	var ae *openai.Error
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want an API error %d", err, status)
	}
	if ae.StatusCode != status {
		t.Fatalf("got status %d (%s), want %d", ae.StatusCode, ae.Message, status)
	}
	return ae
}

func TestOpenAISDKAgainstARunningNode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	n := startNode(t, dir)
	if n.adminKey == "" {
		t.Fatal("a fresh node printed no bootstrap admin key")
	}
	ctx := context.Background()
	admin := n.client(n.adminKey)

	models, err := admin.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, m := range models.Data {
		ids[m.ID] = true
	}
	if !ids["auto"] || !ids["calculator"] || len(ids) < 40 {
		t.Fatalf("admin sees %d models: %v", len(ids), ids)
	}

	var resp *http.Response
	chat, err := admin.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:    "calculator",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("what is 6*7")},
	}, option.WithResponseInto(&resp))
	if err != nil {
		t.Fatal(err)
	}
	if got := chat.Choices[0].Message.Content; !strings.Contains(got, "= 42") || !strings.Contains(got, "not a language model") {
		t.Fatalf("calculator answered %q", got)
	}
	// The answer names its record compactly; the full receipt is fetched by index, by
	// a principal who may read the record, and by nobody else.
	var idx, seal uint64
	var hash string
	if _, err := fmt.Sscanf(resp.Header.Get("X-Sios-Receipt"), "index=%d, seal=%d, record=%q", &idx, &seal, &hash); err != nil || len(hash) != 64 || seal <= idx {
		t.Fatalf("the receipt header %q does not name a record: %v", resp.Header.Get("X-Sios-Receipt"), err)
	}
	if resp.Header.Get("X-Sios-Receipt-Full") != "" {
		t.Fatal("a full receipt came inline unasked")
	}
	r, body := n.get(t, n.adminKey, fmt.Sprintf("/v1/receipts/%d", idx))
	full := decode[oar.Receipt](t, body)
	if r.StatusCode != 200 || full.RecordHash != hash || full.SealIndex != seal || full.Index != idx || len(full.Seal) == 0 || len(full.InclusionProof) == 0 && seal != idx+1 {
		t.Fatalf("GET /v1/receipts/%d: %d %s", idx, r.StatusCode, body)
	}
	other := n.addPrincipal(t, "elsewhere", "visitor", "OFFICIAL")
	if r, body := n.get(t, other, fmt.Sprintf("/v1/receipts/%d", idx)); r.StatusCode != 404 || !strings.Contains(body, "unknown_record") {
		t.Fatalf("another tenant's principal fetched the receipt: %d %s", r.StatusCode, body)
	}
	if r, _ := n.get(t, n.adminKey, "/v1/receipts/99999999"); r.StatusCode != 404 {
		t.Fatalf("a receipt beyond the log: %d", r.StatusCode)
	}

	stream := admin.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model:    "summariser",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("The ledger is signed. It is sealed in batches. Verification is offline. Nothing else.")},
	})
	var acc openai.ChatCompletionAccumulator
	chunks := 0
	for stream.Next() {
		acc.AddChunk(stream.Current())
		chunks++
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if chunks < 3 || !strings.Contains(acc.Choices[0].Message.Content, "Summary") {
		t.Fatalf("stream of %d chunks gave %q", chunks, acc.Choices[0].Message.Content)
	}

	// Error cases, each in OpenAI's shape with the right status.
	_, err = n.client("sios_notakey").Models.List(ctx)
	apiError(t, err, 401)
	_, err = admin.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "no-such-brain",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}})
	if ae := apiError(t, err, 404); ae.Code != "model_not_found" {
		t.Fatalf("unknown brain: code %q", ae.Code)
	}
	_, err = admin.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "calculator"})
	apiError(t, err, 400)
}

func TestClearanceGovernsBrains(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	n := startNode(t, dir)
	ctx := context.Background()
	official := n.client(n.addPrincipal(t, "hospital", "clerk", "OFFICIAL"))
	secret := n.client(n.addPrincipal(t, "hospital", "analyst", "SECRET"))
	const secretBrain = "anti-money-laundering" // SECRET in the embedded catalogue
	msg := []openai.ChatCompletionMessageParamUnion{openai.UserMessage("review this transaction pattern")}

	var resp *http.Response
	_, err := official.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: secretBrain, Messages: msg}, option.WithResponseInto(&resp),
		option.WithHeader("X-Sios-Receipt", "full"))
	ae := apiError(t, err, 403)
	if !strings.Contains(ae.Message, "forbid-read-up") {
		t.Fatalf("403 does not name the forbid policy: %q", ae.Message)
	}
	deny := decodeReceiptHeader(resp.Header.Get("X-Sios-Receipt-Full"))
	if deny == nil {
		t.Fatal("a denied request carried no receipt")
	}
	if _, err := secret.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: secretBrain, Messages: msg}); err != nil {
		t.Fatalf("SECRET principal: %v", err)
	}
	// The OFFICIAL principal does not even see the SECRET brain.
	models, err := official.Models.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range models.Data {
		if m.ID == secretBrain {
			t.Fatal("an OFFICIAL principal is offered a SECRET brain")
		}
	}
	n.stop(t)
	// The deny is durable and names the forbid policy.
	shown := decode[map[string]any](t, ok(t, dir, "audit", "show", fmt.Sprint(deny.Index), "--json"))
	entry := shown["entry"].(map[string]any)
	d := entry["decision"].(map[string]any)
	if d["effect"] != "deny" || !strings.Contains(fmt.Sprint(d["policies"]), "forbid-read-up") {
		t.Fatalf("deny record: %v", entry)
	}
	ok(t, dir, "audit", "verify")
}

// countingListener accepts and counts connections, serving nothing.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) serve() {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		l.accepted.Add(1)
		c.Close()
	}
}

func TestEgressGuardRefusesAnUnlistedBackend(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	go cl.serve()
	defer ln.Close()
	dir := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(filepath.Join(dir, "brains"), 0o700)
	os.WriteFile(filepath.Join(dir, "brains", "rogue.yaml"), []byte(fmt.Sprintf(`id: rogue
kind: domain
title: Rogue
system_prompt: You are a test brain whose backend is not on the egress allowlist.
backend: http://%s/v1
model: any
classification: OFFICIAL
max_tokens: 100
timeout: 10s
rate_limit: {requests_per_minute: 60, burst: 10}
`, ln.Addr())), 0o600)
	n := startNode(t, dir)
	_, err = n.client(n.adminKey).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "rogue",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hello")}})
	ae := apiError(t, err, 502)
	if ae.Code != "egress_refused" || !strings.Contains(ae.Message, "allowlist") {
		t.Fatalf("egress refusal: %q %q", ae.Code, ae.Message)
	}
	if got := cl.accepted.Load(); got != 0 {
		t.Fatalf("the unlisted backend saw %d connections", got)
	}
	n.stop(t)
	tail := decode[[]map[string]any](t, ok(t, dir, "audit", "tail", "-n", "20", "--json"))
	found := false
	for _, e := range tail {
		if entry, _ := e["entry"].(map[string]any); entry["action"] == "egress.refuse" && entry["resource"] == ln.Addr().String() {
			found = true
		}
	}
	if !found {
		t.Fatalf("no egress.refuse record for %s in %v", ln.Addr(), tail)
	}
}

func TestToolCallOutsideTheAllowlistIsNotRun(t *testing.T) {
	m := &mock.Server{ToolCall: &backend.ToolCall{Function: backend.FunctionCall{Name: "shell.exec", Arguments: `{"cmd":"rm -rf /"}`}}}
	ts := httptest.NewServer(m)
	defer ts.Close()
	dir := filepath.Join(t.TempDir(), "data")
	os.MkdirAll(filepath.Join(dir, "brains"), 0o700)
	os.WriteFile(filepath.Join(dir, "brains", "agent.yaml"), []byte(`id: agent
kind: domain
title: Agent
system_prompt: A test brain that may only use the calculator.
model: mock
classification: OFFICIAL
tools: [calculator]
max_tokens: 200
timeout: 10s
rate_limit: {requests_per_minute: 600, burst: 100}
`), 0o600)
	n := startNode(t, dir, "--backend", ts.URL+"/v1")
	chat, err := n.client(n.adminKey).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "agent",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("clean up the disk")}})
	if err != nil {
		t.Fatal(err)
	}
	if chat.Choices[0].FinishReason != "length" {
		t.Fatalf("finish reason %q, want length (the tool rounds ran out)", chat.Choices[0].FinishReason)
	}
	n.stop(t)
	tail := decode[[]map[string]any](t, ok(t, dir, "audit", "tail", "-n", "40", "--json"))
	denied := 0
	for _, e := range tail {
		entry, _ := e["entry"].(map[string]any)
		if entry["action"] == "tool.call" && entry["resource"] == "tool/shell.exec" {
			d := entry["decision"].(map[string]any)
			if d["effect"] != "deny" || !strings.Contains(fmt.Sprint(d["policies"]), "brain-tool-allowlist") {
				t.Fatalf("tool call record: %v", entry)
			}
			if entry["outputs"] != nil {
				t.Fatalf("a refused tool call has outputs: %v", entry)
			}
			denied++
		}
	}
	if denied == 0 {
		t.Fatal("no tool.call deny record")
	}
}

func TestBadRequestsAndBadFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	n := startNode(t, dir)
	post := func(body io.Reader, ctype string) *http.Response {
		req, _ := http.NewRequest("POST", n.url+"/v1/chat/completions", body)
		req.Header.Set("Authorization", "Bearer "+n.adminKey)
		req.Header.Set("Content-Type", ctype)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	if r := post(strings.NewReader(`{"model":`), "application/json"); r.StatusCode != 400 {
		t.Fatalf("malformed body: %d", r.StatusCode)
	}
	if r := post(strings.NewReader(`{"model":"x","messages":"`+strings.Repeat("a", 2<<20)+`"}`), "application/json"); r.StatusCode != 413 {
		t.Fatalf("oversized body: %d", r.StatusCode)
	}
	// Still serving.
	if _, err := n.client(n.adminKey).Models.List(context.Background()); err != nil {
		t.Fatal(err)
	}
	n.stop(t)

	bad := filepath.Join(dir, "policies", "zz-bad.cedar")
	os.WriteFile(bad, []byte("permit (principal, action, resource)\nwhen { principal.clearance >>> 1 };\n"), 0o600)
	fails(t, 1, dir, []string{"up", "--listen", "127.0.0.1:0"}, "zz-bad.cedar")
	os.Remove(bad)
	os.MkdirAll(filepath.Join(dir, "brains"), 0o700)
	os.WriteFile(filepath.Join(dir, "brains", "broken.yaml"), []byte("id: broken\nkind: domain\nclassification: PUBLIC\n"), 0o600)
	fails(t, 1, dir, []string{"up", "--listen", "127.0.0.1:0"}, "broken.yaml")
}

var _ = oar.Version

func TestSIGTERMLetsInFlightRequestsFinish(t *testing.T) {
	m := &mock.Server{Latency: 1500 * time.Millisecond, Reply: "finished after shutdown began"}
	ts := httptest.NewServer(m)
	defer ts.Close()
	dir := filepath.Join(t.TempDir(), "data")
	n := startNode(t, dir, "--backend", ts.URL+"/v1", "--model", "mock")
	c := n.client(n.adminKey)
	type result struct {
		content string
		err     error
	}
	done := make(chan result, 1)
	go func() {
		chat, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "legal-contracts",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("review clause 4")}})
		if err != nil {
			done <- result{err: err}
			return
		}
		done <- result{content: chat.Choices[0].Message.Content}
	}()
	for m.Chats() == 0 && m.Requests() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	n.stop(t) // SIGTERM while the backend is still working
	r := <-done
	if r.err != nil || r.content != "finished after shutdown began" {
		t.Fatalf("in-flight request: %q, %v", r.content, r.err)
	}
	out := ok(t, dir, "audit", "verify")
	if !strings.HasPrefix(out, "verified ") {
		t.Fatal(out)
	}
	// Both the admission and the completion records were written before exit.
	tail := decode[[]map[string]any](t, ok(t, dir, "audit", "tail", "-n", "10", "--json"))
	actions := ""
	for _, e := range tail {
		if entry, _ := e["entry"].(map[string]any); entry != nil {
			actions += fmt.Sprint(entry["action"], " ")
		}
	}
	if !strings.Contains(actions, "brain.invoke") || !strings.Contains(actions, "brain.complete") {
		t.Fatalf("records after shutdown: %s", actions)
	}
}

func TestUpPublishesTheNodesFederationFeed(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	n := startNode(t, dir)
	n.stop(t)
	recs := decode[[]map[string]any](t, ok(t, dir, "fleet", "records", "--json"))
	kinds := []string{}
	for _, r := range recs {
		kinds = append(kinds, r["kind"].(string))
	}
	if strings.Join(kinds, ",") != "identity,posture,brains,audit,limits,kem" { // kem: the role keeper states its KEM key
		t.Fatalf("feed kinds: %v", kinds)
	}
	// A restart with nothing changed appends nothing.
	n = startNode(t, dir)
	n.stop(t)
	if again := decode[[]map[string]any](t, ok(t, dir, "fleet", "records", "--json")); len(again) != len(recs) {
		t.Fatalf("restart grew the feed from %d to %d records", len(recs), len(again))
	}
}
