package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/sios-project/sios/backend/mock"
)

// plaintextRuns reports which 8-byte runs of text appear in any file under dir.
func plaintextRuns(t *testing.T, dir, text string) []string {
	t.Helper()
	var found []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		for i := 0; i+8 <= len(text); i++ {
			if bytes.Contains(data, []byte(text[i:i+8])) {
				found = append(found, path+": "+text[i:i+8])
				break
			}
		}
		return nil
	})
	return found
}

func TestForgetThroughTheCLILeavesNoPlaintext(t *testing.T) {
	dir := initNode(t)
	secret := "Zephyrine Quillfeather-Oduya was treated for xanthogranulomatous pyelonephritis at ward 7Q."
	ok(t, dir, "memory", "add", "--tenant", "hospital", "--subject", "patient-42", "--classification", "OFFICIAL-SENSITIVE", secret)
	ok(t, dir, "memory", "add", "--tenant", "hospital", "--subject", "patient-43", "--classification", "OFFICIAL", "An unrelated note about the car park barrier.")
	res := decode[[]map[string]any](t, ok(t, dir, "memory", "search", "--tenant", "hospital", "--clearance", "SECRET", "pyelonephritis", "--json"))
	if len(res) != 1 || res[0]["subject"] != "patient-42" {
		t.Fatalf("search before forget: %v", res)
	}
	ok(t, dir, "memory", "forget", "--tenant", "hospital", "--subject", "patient-42")
	if runs := plaintextRuns(t, dir, secret); len(runs) > 0 {
		t.Fatalf("forgotten text survives: %v", runs)
	}
	if runs := plaintextRuns(t, dir, strings.ToLower(secret)); len(runs) > 0 {
		t.Fatalf("forgotten text survives (lowercase): %v", runs)
	}
	res = decode[[]map[string]any](t, ok(t, dir, "memory", "search", "--tenant", "hospital", "--clearance", "SECRET", "car park", "--json"))
	if len(res) != 1 {
		t.Fatalf("the other subject's memory is gone: %v", res)
	}
	fails(t, 1, dir, []string{"memory", "forget", "--tenant", "hospital", "--subject", "patient-42"}, "unknown subject")
	// The log records the forget and still verifies: it held digests, never the text.
	ok(t, dir, "audit", "verify")
}

func TestMemoryThroughTheAPIRespectsClearance(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	n := startNode(t, dir)
	clerk := n.addPrincipal(t, "bank", "clerk", "OFFICIAL")
	mlro := n.addPrincipal(t, "bank", "mlro", "SECRET")
	call := func(key, path string, body any) (int, map[string]any) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest("POST", n.url+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		data, _ := io.ReadAll(resp.Body)
		var out map[string]any
		json.Unmarshal(data, &out)
		if resp.StatusCode == 200 && resp.Header.Get("X-Sios-Receipt") == "" {
			t.Fatalf("%s answered without a receipt", path)
		}
		return resp.StatusCode, out
	}
	if code, _ := call(mlro, "/v1/memory", map[string]string{"subject": "case-9", "classification": "SECRET",
		"text": "Suspicious structuring through the Kestrelbury account."}); code != 200 {
		t.Fatalf("SECRET principal adding SECRET memory: %d", code)
	}
	if code, _ := call(clerk, "/v1/memory", map[string]string{"subject": "case-9", "classification": "SECRET", "text": "x"}); code != 403 {
		t.Fatalf("OFFICIAL principal adding SECRET memory: %d, want 403", code)
	}
	if code, _ := call(clerk, "/v1/memory", map[string]string{"subject": "case-9", "classification": "OFFICIAL",
		"text": "Customer called about the Kestrelbury account statement."}); code != 200 {
		t.Fatalf("OFFICIAL memory: %d", code)
	}
	_, found := call(clerk, "/v1/memory/search", map[string]string{"query": "Kestrelbury structuring"})
	for _, r := range found["data"].([]any) {
		if r.(map[string]any)["classification"] != "OFFICIAL" {
			t.Fatalf("an OFFICIAL principal's search returned %v", r)
		}
	}
	_, ex := call(clerk, "/v1/memory/export", map[string]string{"subject": "case-9"})
	if strings.Contains(mustMarshal(ex), "structuring") {
		t.Fatal("an OFFICIAL principal's export holds a SECRET memory")
	}
	// A domain brain on the builtin backend answers from memory, citing ids, and
	// never quotes what the caller may not read.
	chat, err := n.client(clerk).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "anti-money-laundering",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("what do we know about Kestrelbury")}})
	if err == nil {
		t.Fatalf("an OFFICIAL principal used a SECRET brain: %s", chat.Choices[0].Message.Content)
	}
	chat, err = n.client(clerk).Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "auto",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Kestrelbury account statement")}})
	if err != nil {
		t.Fatal(err)
	}
	answer := chat.Choices[0].Message.Content
	if !strings.Contains(answer, "mem_") || !strings.Contains(answer, "statement") || strings.Contains(answer, "structuring") {
		t.Fatalf("retrieval answer: %s", answer)
	}
	if code, _ := call(mlro, "/v1/memory/forget", map[string]string{"subject": "case-9"}); code != 200 {
		t.Fatalf("forget: %d", code)
	}
	// The CLI goes through the running node.
	ok(t, dir, "memory", "add", "--tenant", "bank", "--subject", "case-10", "--classification", "OFFICIAL", "note via the socket")
}

func mustMarshal(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestMemorySearchReranksWithTheBackendsEmbeddings(t *testing.T) {
	m := &mock.Server{Dimensions: 16}
	ts := httptest.NewServer(m)
	defer ts.Close()
	dir := filepath.Join(t.TempDir(), "data")
	n := startNode(t, dir, "--backend", ts.URL+"/v1", "--model", "mock", "--embedding-model", "mock-embed")
	key := n.addPrincipal(t, "lab", "analyst", "OFFICIAL")
	for _, text := range []string{"reagent stock low in freezer two", "reagent order placed with supplier", "freezer two alarm tested"} {
		ok(t, dir, "memory", "add", "--tenant", "lab", "--subject", "freezer-2", "--classification", "OFFICIAL", text)
	}
	ok(t, dir, "memory", "add", "--tenant", "lab", "--subject", "vault", "--classification", "SECRET", "reagent vault combination")
	req, _ := http.NewRequest("POST", n.url+"/v1/memory/search", strings.NewReader(`{"query":"reagent freezer"}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Data []map[string]any `json:"data"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(out.Data) != 3 {
		t.Fatalf("search: %d %v", resp.StatusCode, out.Data)
	}
	for _, r := range out.Data {
		if r["classification"] != "OFFICIAL" {
			t.Fatalf("re-ranking let a %v memory through", r["classification"])
		}
	}
	if m.Embeds() == 0 {
		t.Fatal("the backend's embeddings were not used")
	}
}

func TestRetentionForgetsExpiredMemories(t *testing.T) {
	dir := initNode(t)
	os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"retention":{"classifications":{"OFFICIAL":"1s"},"every":"200ms"}}`), 0o600)
	ok(t, dir, "memory", "add", "--tenant", "t", "--subject", "short-lived", "--classification", "OFFICIAL", "Ephemeral visitor badge number 4471.")
	ok(t, dir, "memory", "add", "--tenant", "t", "--subject", "kept", "--classification", "SECRET", "Long-term vault inventory.")
	n := startNode(t, dir)
	deadline := time.Now().Add(20 * time.Second)
	for {
		res := decode[[]map[string]any](t, ok(t, dir, "memory", "search", "--tenant", "t", "--clearance", "TOP-SECRET", "badge vault", "--json"))
		if len(res) == 1 && res[0]["subject"] == "kept" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the expired memory is still there: %v", res)
		}
		time.Sleep(200 * time.Millisecond)
	}
	n.stop(t)
	tail := decode[[]map[string]any](t, ok(t, dir, "audit", "tail", "-n", "30", "--json"))
	found := false
	for _, e := range tail {
		// Records name the subject by its pseudonym, never its name.
		if entry, _ := e["entry"].(map[string]any); entry["action"] == "memory.expire" && strings.HasPrefix(fmt.Sprint(entry["resource"]), "memory/subj_") {
			found = true
		}
	}
	if !found {
		t.Fatal("no memory.expire record")
	}
	if runs := plaintextRuns(t, dir, "Ephemeral visitor badge number 4471."); len(runs) > 0 {
		t.Fatalf("expired text survives: %v", runs)
	}
}
