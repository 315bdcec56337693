package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/backend/mock"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/oar"
)

// The security tests attack a real node from outside, as a hostile user, model server,
// peer or local user would, and check what the node did — in its answers, in what the
// model server received, and in its audit log.

// writeFile writes a file under dir, creating its directory.
func writeFile(t *testing.T, dir, name, text string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}

// post sends a JSON body to the node's API with key and extra headers.
func (n *runningNode) post(t *testing.T, key, path, body string, headers ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", n.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Add(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

// get sends an authenticated GET to the node's API.
func (n *runningNode) get(t *testing.T, key, path string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", n.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func recordsWith(recs []*oar.Record, action string) []*oar.Record {
	var out []*oar.Record
	for _, r := range recs {
		if r.Action == action {
			out = append(out, r)
		}
	}
	return out
}

// A model that answers with a tool call named by 70 kB of text cannot erase its own
// trail: the call and the completion are recorded, the name bounded with its digest.
func TestSecurityOversizedToolNameIsRecorded(t *testing.T) {
	t.Parallel()
	huge := strings.Repeat("x", 70_000)
	m := &mock.Server{ToolCall: &backend.ToolCall{Function: backend.FunctionCall{Name: huge, Arguments: "{}"}}, ToolCallOnce: true, Reply: "done"}
	ts := httptest.NewServer(m)
	defer ts.Close()
	dir := initNode(t)
	n := startNode(t, dir, "--backend", ts.URL+"/v1", "--model", "mock")
	admin := n.addPrincipal(t, "default", "chief", "TOP-SECRET")
	if _, err := n.client(admin).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "legal-contracts",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("x")}}); err != nil {
		t.Fatal(err)
	}
	n.stop(t)
	recs := ledgerRecords(t, dir)
	calls := recordsWith(recs, oar.ActionToolCall)
	if len(calls) != 1 || len(calls[0].Resource) > 300 || !strings.Contains(calls[0].Resource, "sha256:") {
		t.Fatalf("tool.call records: %d %v", len(calls), calls)
	}
	if len(recordsWith(recs, oar.ActionBrainComplete)) != 1 {
		t.Fatal("no completion record")
	}
	ok(t, dir, "audit", "verify")
}

// Refusals at the door are recorded: a wrong key (aggregated per address), an unknown
// or repeated X-Sios-Classification.
func TestSecurityRefusalsLeaveRecords(t *testing.T) {
	t.Parallel()
	dir := initNode(t)
	n := startNode(t, dir)
	admin := n.addPrincipal(t, "default", "chief", "TOP-SECRET")
	for range 20 {
		if resp, _ := n.post(t, "sios_wrongwrongwrong", "/v1/chat/completions", `{}`); resp.StatusCode != 401 {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	body := `{"model":"summariser","messages":[{"role":"user","content":"x"}]}`
	resp, out := n.post(t, admin, "/v1/chat/completions", body, "X-Sios-Classification", "CONFIDENTIAL")
	if resp.StatusCode != 400 || resp.Header.Get("X-Sios-Receipt") == "" {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
	// Two markings: a proxy that appends the true one must not be bypassed.
	resp, out = n.post(t, admin, "/v1/chat/completions", body, "X-Sios-Classification", "OFFICIAL", "X-Sios-Classification", "TOP-SECRET")
	if resp.StatusCode != 400 || !strings.Contains(out, "more than once") {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
	n.stop(t)
	recs := ledgerRecords(t, dir)
	auth := recordsWith(recs, oar.ActionAuthRefuse)
	if len(auth) == 0 || len(auth) > 2 {
		t.Fatalf("%d auth.refuse records for 20 wrong keys from one address, want 1 or 2", len(auth))
	}
	total := 0
	for _, r := range auth {
		var d struct{ Refusals int }
		json.Unmarshal(r.Detail, &d)
		total += d.Refusals
		if bytes.Contains(r.Detail, []byte("wrongwrong")) {
			t.Fatal("a record holds the key")
		}
	}
	if total != 20 {
		t.Fatalf("the records count %d refusals, want 20", total)
	}
	denied := 0
	for _, r := range recordsWith(recs, oar.ActionBrainInvoke) {
		if r.Decision.Effect == "deny" && strings.Contains(fmt.Sprint(r.Decision.Policies), "input-validation") {
			denied++
		}
	}
	if denied != 2 {
		t.Fatalf("%d refusals of bad classification headers recorded, want 2", denied)
	}
}

// Data above a destination's accreditation never reaches it: not through a
// memory.search tool result, not through the texts embedded to re-rank a search, and
// not through a retrieval brain's answer.
func TestSecurityFlowDownToBackendsAndBrains(t *testing.T) {
	t.Parallel()
	m := &mock.Server{ToolCall: &backend.ToolCall{Function: backend.FunctionCall{Name: "memory.search", Arguments: `{"query":"metformin"}`}},
		ToolCallOnce: true, Reply: "answered"}
	ts := httptest.NewServer(m)
	defer ts.Close()
	dir := initNode(t)
	writeFile(t, dir, "config.json", `{"backend_accreditation":"OFFICIAL-SENSITIVE","embedding_model":"mock-embed"}`)
	ok(t, dir, "memory", "add", "--tenant", "default", "--subject", "formulary", "--classification", "OFFICIAL", "Metformin: review when eGFR falls.")
	ok(t, dir, "memory", "add", "--tenant", "default", "--subject", "formulary", "--classification", "SECRET", "Metformin CANARYSECRET trial arm.")
	n := startNode(t, dir, "--backend", ts.URL+"/v1", "--model", "mock")
	admin := n.addPrincipal(t, "default", "chief", "TOP-SECRET")
	// The admin is TOP-SECRET; pharmacology (OFFICIAL-SENSITIVE) runs on a backend
	// accredited OFFICIAL-SENSITIVE.
	if _, err := n.client(admin).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "pharmacology",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("metformin and the kidneys")}}); err != nil {
		t.Fatal(err)
	}
	// A memory search at TOP-SECRET: its texts must not be embedded by that backend.
	if resp, out := n.post(t, admin, "/v1/memory/search", `{"query":"metformin"}`); resp.StatusCode != 200 || !strings.Contains(out, "CANARYSECRET") {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
	sawTool := false
	for _, b := range m.Received() {
		if bytes.Contains(b, []byte("CANARYSECRET")) {
			t.Fatalf("SECRET memory reached a backend accredited OFFICIAL-SENSITIVE: %.300s", b)
		}
		sawTool = sawTool || bytes.Contains(b, []byte("review when eGFR"))
	}
	if !sawTool {
		t.Fatal("the memory.search tool's permitted result never reached the model")
	}
	n.stop(t)

	// A retrieval brain classified OFFICIAL quotes nothing above OFFICIAL, whoever asks.
	dir2 := initNode(t)
	ok(t, dir2, "memory", "add", "--tenant", "default", "--subject", "lessons", "--classification", "SECRET", "Phonics CANARYSECRET lesson plan.")
	ok(t, dir2, "memory", "add", "--tenant", "default", "--subject", "lessons", "--classification", "OFFICIAL", "Phonics lesson plan for year one.")
	n2 := startNode(t, dir2)
	chat, err := n2.client(n2.addPrincipal(t, "default", "chief", "TOP-SECRET")).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "education",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("phonics lesson plan")}})
	if err != nil {
		t.Fatal(err)
	}
	if a := chat.Choices[0].Message.Content; strings.Contains(a, "CANARYSECRET") || !strings.Contains(a, "year one") {
		t.Fatalf("education (OFFICIAL) answered: %s", a)
	}
}

// Explaining a record is a read of it: another tenant's record is not explained, and
// no explanation carries a digest to confirm a guessed text against.
func TestSecurityAuditExplainerIsGoverned(t *testing.T) {
	t.Parallel()
	dir := initNode(t)
	n := startNode(t, dir)
	k1 := n.addPrincipal(t, "t1", "alice", "SECRET")
	k2 := n.addPrincipal(t, "t2", "mallory", "SECRET")
	if resp, out := n.post(t, k1, "/v1/memory", `{"subject":"case-9","classification":"OFFICIAL","text":"t1's private note"}`); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
	// Find the index of t1's memory.write record, once a checkpoint covers it.
	var idx int64 = -1
	for deadline := time.Now().Add(15 * time.Second); idx < 0 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		tail := decode[[]map[string]any](t, ok(t, dir, "audit", "tail", "-n", "50", "--json"))
		for _, e := range tail {
			entry, _ := e["entry"].(map[string]any)
			if entry["action"] == "memory.write" {
				idx = int64(e["index"].(float64))
			}
		}
	}
	if idx < 0 {
		t.Fatal("no memory.write record")
	}
	ask := func(key string) string {
		chat, err := n.client(key).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "audit-explainer",
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(fmt.Sprintf("explain record %d", idx))}})
		if err != nil {
			t.Fatal(err)
		}
		return chat.Choices[0].Message.Content
	}
	// The record may not be in a checkpoint yet: wait until its owner gets it explained.
	var own string
	for deadline := time.Now().Add(10 * time.Second); ; {
		own = ask(k1)
		if strings.Contains(own, "memory.write") || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(own, "alice") || strings.Contains(own, "SHA-256") {
		t.Fatalf("the owner's tenant gets its record explained, without digests: %s", own)
	}
	other := ask(k2)
	for _, leak := range []string{"alice", "t1", "case-9", "memory/"} {
		if strings.Contains(other, leak) {
			t.Fatalf("tenant t2 learned %q about t1's record: %s", leak, other)
		}
	}
	if !strings.Contains(other, "may not read") {
		t.Fatalf("%s", other)
	}
}

// An operator's forbid on memory.read holds for every reader: the API's search, a
// retrieval brain and the memory.search tool.
func TestSecurityMemoryReadForbidHoldsEverywhere(t *testing.T) {
	t.Parallel()
	dir := initNode(t)
	writeFile(t, dir, "policies/site.cedar", `@id("forbid-memory-read")
forbid (principal, action == Sios::Action::"memory.read", resource);
`)
	ok(t, dir, "memory", "add", "--tenant", "default", "--subject", "p", "--classification", "OFFICIAL", "Forbidden CANARYREAD text.")
	n := startNode(t, dir)
	admin := n.addPrincipal(t, "default", "chief", "TOP-SECRET")
	if resp, out := n.post(t, admin, "/v1/memory/search", `{"query":"forbidden"}`); resp.StatusCode != 403 || !strings.Contains(out, "forbid-memory-read") {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
	chat, err := n.client(admin).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "legal-contracts",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("forbidden text")}})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(chat.Choices[0].Message.Content, "CANARYREAD") {
		t.Fatalf("a retrieval brain read memory an operator forbade: %s", chat.Choices[0].Message.Content)
	}
}

// After forget, nothing in the data directory names the subject or confirms its texts.
func TestSecurityForgetLeavesTheSubjectUnlinkable(t *testing.T) {
	t.Parallel()
	dir := initNode(t)
	n := startNode(t, dir)
	admin := n.addPrincipal(t, "default", "chief", "TOP-SECRET")
	text := "Patient Zebulon Quartermaine was discharged on Tuesday."
	if resp, out := n.post(t, admin, "/v1/memory", `{"subject":"zebulon-quartermaine","classification":"OFFICIAL","text":"`+text+`"}`); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
	if resp, out := n.post(t, admin, "/v1/memory/search", `{"query":"discharged","subject":"zebulon-quartermaine"}`); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
	if resp, out := n.post(t, admin, "/v1/memory/forget", `{"subject":"zebulon-quartermaine"}`); resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, out)
	}
	n.stop(t)
	sum := oar.DigestOf("text", []byte(text)).SHA256
	for _, leak := range []string{"zebulon-quartermaine", sum} {
		if runs := plaintextRuns(t, dir, leak); len(runs) > 0 && leak != sum {
			t.Fatalf("%q is still in the data directory: %v", leak, runs)
		}
		filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return nil
			}
			if b, _ := os.ReadFile(path); bytes.Contains(b, []byte(leak)) {
				t.Errorf("%s holds %q after forget", path, leak)
			}
			return nil
		})
	}
	ok(t, dir, "audit", "verify")
}

// An under-cleared caller learns nothing of memories it may not see: forgetting or
// exporting a subject that holds only those answers as for a subject that does not
// exist, and destroys nothing.
func TestSecurityNoOraclesAboutMemoryAbove(t *testing.T) {
	t.Parallel()
	dir := initNode(t)
	ok(t, dir, "memory", "add", "--tenant", "default", "--subject", "secret-case", "--classification", "SECRET", "Only above.")
	n := startNode(t, dir)
	admin := n.addPrincipal(t, "default", "chief", "TOP-SECRET")
	low := n.addPrincipal(t, "default", "low", "OFFICIAL")
	for _, path := range []string{"/v1/memory/forget", "/v1/memory/export"} {
		r1, b1 := n.post(t, low, path, `{"subject":"secret-case"}`)
		r2, b2 := n.post(t, low, path, `{"subject":"no-such-case"}`)
		var e1, e2 struct {
			Error struct{ Code, Message string }
		}
		json.Unmarshal([]byte(b1), &e1)
		json.Unmarshal([]byte(b2), &e2)
		if r1.StatusCode != 404 || r1.StatusCode != r2.StatusCode || e1.Error != e2.Error {
			t.Fatalf("%s: existing-but-above %d %s; missing %d %s", path, r1.StatusCode, b1, r2.StatusCode, b2)
		}
	}
	if resp, out := n.post(t, admin, "/v1/memory/export", `{"subject":"secret-case"}`); resp.StatusCode != 200 || !strings.Contains(out, "Only above") {
		t.Fatalf("an under-cleared forget destroyed memories: %d %s", resp.StatusCode, out)
	}
}

// The admin socket lives in the data directory however long its path, never where
// another local user could create it first.
func TestSecurityAdminSocketStaysInTheDataDirectory(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 70), strings.Repeat("e", 50), "data")
	ok(t, dir, "init", "--name", "long")
	before, _ := filepath.Glob(filepath.Join(os.TempDir(), "sios-admin-*.sock"))
	n := startNode(t, dir)
	if fi, err := os.Stat(filepath.Join(dir, "admin.sock")); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("no socket in the data directory: %v", err)
	}
	after, _ := filepath.Glob(filepath.Join(os.TempDir(), "sios-admin-*.sock"))
	if len(after) > len(before) {
		t.Fatalf("a socket was made in %s: %v", os.TempDir(), after)
	}
	// The CLI works through it while the node runs (it holds the ledger).
	key := n.addPrincipal(t, "default", "bob", "OFFICIAL")
	if resp, _ := n.post(t, key, "/v1/memory/search", `{"query":"x"}`); resp.StatusCode != 200 {
		t.Fatalf("%d", resp.StatusCode)
	}
}

// A client that sends its headers and then stalls in its body is cut off, key or no
// key; a reader that stops reading a stream is abandoned.
func TestSecuritySlowClientsAreCutOff(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits for the body timeout")
	}
	dir := initNode(t)
	n := startNode(t, dir)
	admin := n.addPrincipal(t, "default", "chief", "TOP-SECRET")
	addr := strings.TrimPrefix(n.url, "http://")
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: 1000\r\n\r\n{\"model\":", admin)
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(2 * time.Minute))
	io.ReadAll(c) // returns when the node closes the connection
	if took := time.Since(start); took > 45*time.Second {
		t.Fatalf("a stalled body held the connection for %v", took)
	}
}

// Embeddings pass the perimeter: the classification header, policy and rate limits.
func TestSecurityEmbeddingsPassThePerimeter(t *testing.T) {
	t.Parallel()
	dir := initNode(t)
	writeFile(t, dir, "config.json", `{"principal_requests_per_minute":60,"principal_burst":5}`)
	n := startNode(t, dir)
	key := n.addPrincipal(t, "default", "eve", "TOP-SECRET")
	resp, out := n.post(t, key, "/v1/embeddings", `{"model":"education","input":"x"}`, "X-Sios-Classification", "TOP-SECRET")
	if resp.StatusCode != 403 || !strings.Contains(out, "forbid-flow-down") {
		t.Fatalf("TOP-SECRET data to an OFFICIAL brain: %d %s", resp.StatusCode, out)
	}
	limited := false
	for range 10 {
		if resp, _ := n.post(t, key, "/v1/memory/search", `{"query":"x"}`); resp.StatusCode == 429 {
			limited = true
		}
	}
	if !limited {
		t.Fatal("memory search is not rate-limited")
	}
}

// A peer's payload passes this node's own API rules; a restarted node refuses the
// envelopes it may have accepted before; an unpinned institution's open connection is
// refused on every fleet route, the witness's too.
func TestSecurityPeerCalls(t *testing.T) {
	t.Parallel()
	hospital, lab := newInstitution(t, "p"), newInstitution(t, "q")
	hospital.trusts(t, lab)
	c, x := hospital.dirs[0], lab.dirs[0]
	nc := startNode(t, c, "--fleet-listen", "127.0.0.1:0")
	idC := nodeIDOf(t, c)
	certC, _ := identity.LoadCertificate(filepath.Join(c, identity.NodeCertFile))
	_, rootPub, _ := certC.Verify()
	px := newPeerClient(t, x, nc.fleetAddr, fleet.NewTrust(rootPub))
	msgs := make([]map[string]string, 300)
	for i := range msgs {
		msgs[i] = map[string]string{"role": "user", "content": "x"}
	}
	for name, payload := range map[string]any{
		"300 messages":  map[string]any{"messages": msgs},
		"a hacker role": map[string]any{"messages": []map[string]string{{"role": "hacker", "content": "x"}}},
	} {
		b, _ := json.Marshal(payload)
		now := time.Now()
		ans := px.call(t, px.envelope(t, px.node.Key, px.node.ID(), idC, now, now.Add(time.Minute), b), b)
		e, _ := ans["error"].(map[string]any)
		if e == nil || e["code"] != "invalid_payload" {
			t.Fatalf("%s: %v", name, ans)
		}
	}
	// An envelope accepted before a restart is refused after it. x is of another
	// institution: its calls carry its principal's grant for C.
	payload := []byte(`{"messages":[{"role":"user","content":"Summarise: all quiet."}]}`)
	now := time.Now()
	good := px.envelopeWith(t, px.node.Key, px.node.ID(), idC, now, now.Add(time.Minute), payload,
		px.grant(t, institutionOf(t, c), "summariser", now))
	if out := px.call(t, good, payload); out["reply"] == nil {
		t.Fatalf("a valid envelope was refused: %v", out)
	}
	nc.stop(t)
	nc = startNode(t, c, "--fleet-listen", nc.fleetAddr)
	px = newPeerClient(t, x, nc.fleetAddr, fleet.NewTrust(rootPub))
	if out := px.call(t, good, payload); out["reply"] != nil || !strings.Contains(fmt.Sprint(out["error"]), "before this node started") {
		t.Fatalf("a replay after a restart: %v", out)
	}
	// The root is unpinned while the peer's connection stays open: every route refuses.
	if st, _ := px.get(t, "/fleet/v1/audit/checkpoint"); st != http.StatusOK {
		t.Fatalf("checkpoint before unpinning: %d", st)
	}
	roots, _ := filepath.Glob(filepath.Join(c, "trust", "roots", "*.json"))
	if len(roots) != 1 {
		t.Fatalf("pinned roots: %v", roots)
	}
	os.Remove(roots[0])                 // unpinned: 'sios trust remove' does this
	time.Sleep(1500 * time.Millisecond) // the trust store is re-read at most once a second
	for _, route := range []string{"/fleet/v1/audit/checkpoint"} {
		if st, _ := px.get(t, route); st != http.StatusForbidden {
			t.Fatalf("GET %s after unpinning: %d", route, st)
		}
	}
	if st, _, body := px.post(t, "/fleet/v1/witness/add-checkpoint", []byte("old 0\n\nx\n")); st != http.StatusForbidden {
		t.Fatalf("add-checkpoint after unpinning: %d %s", st, body)
	}
}
