package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// fakeGateway answers every chat with its last user message reversed.
type fakeGateway struct{}

func (fakeGateway) Authenticate(_ context.Context, k string) (*policy.Principal, error) {
	if k != "sios_good" {
		return nil, &invoke.Error{Code: invoke.CodeInvalidKey, Message: "invalid API key"}
	}
	return &policy.Principal{ID: "u", Tenant: "t", Clearance: policy.Official}, nil
}

func (fakeGateway) RefuseAuthentication(context.Context, string, string) bool { return true }

func (fakeGateway) Models(*policy.Principal) []invoke.Model {
	return []invoke.Model{{ID: "b"}}
}

var fakeReceipt = &oar.Receipt{Index: 7}

func (fakeGateway) Chat(_ context.Context, inv *invoke.Invocation, w invoke.Sink) error {
	if inv.Model == "forbidden" {
		return &invoke.Error{Code: invoke.CodePolicyDenied, Message: "no", Receipt: fakeReceipt}
	}
	if err := w.Start(inv.Model, fakeReceipt); err != nil {
		return err
	}
	text := inv.Messages[len(inv.Messages)-1].Content
	for _, word := range strings.Fields(text) {
		w.Delta(word + " ")
	}
	return w.Finish(&invoke.Result{Content: text, Usage: backend.Usage{TotalTokens: 3}})
}

func (fakeGateway) Embed(context.Context, *invoke.Embedding) (*invoke.Embeddings, error) {
	return &invoke.Embeddings{Vectors: [][]float32{{1}}}, nil
}

func do(t *testing.T, method, path, key, body string) (*http.Response, string) {
	srv := httptest.NewServer(NewServer(fakeGateway{}, slog.New(slog.NewTextHandler(io.Discard, nil))))
	defer srv.Close()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(b)
}

func TestChatValidationAndErrorShape(t *testing.T) {
	for _, c := range []struct {
		name, key, body string
		status          int
		code            string
	}{
		{"no key", "", `{}`, 401, "missing_api_key"},
		{"bad key", "sios_bad", `{}`, 401, "invalid_api_key"},
		{"empty body", "sios_good", ``, 400, "invalid_body"},
		{"bad json", "sios_good", `{"model":`, 400, "invalid_json"},
		{"no model", "sios_good", `{"messages":[{"role":"user","content":"x"}]}`, 400, "missing_model"},
		{"no messages", "sios_good", `{"model":"b"}`, 400, "missing_messages"},
		{"bad role", "sios_good", `{"model":"b","messages":[{"role":"wizard","content":"x"}]}`, 400, "invalid_role"},
		{"audio part", "sios_good", `{"model":"b","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{}}]}]}`, 400, "unsupported_content"},
		{"image without url", "sios_good", `{"model":"b","messages":[{"role":"user","content":[{"type":"image_url"}]}]}`, 400, "invalid_json"},
		{"nameless tool", "sios_good", `{"model":"b","messages":[{"role":"user","content":"x"}],"tools":[{}]}`, 400, "invalid_tool"},
		{"unknown member", "sios_good", `{"model":"b","messages":[{"role":"user","content":"x"}],"temprature":0.2}`, 400, "unknown_parameter"},
		{"two choices", "sios_good", `{"model":"b","messages":[{"role":"user","content":"x"}],"n":2}`, 400, "unsupported_parameter"},
		{"stored", "sios_good", `{"model":"b","messages":[{"role":"user","content":"x"}],"store":true}`, 400, "unsupported_parameter"},
		{"five stops", "sios_good", `{"model":"b","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]}`, 400, "invalid_stop"},
		{"tool message without id", "sios_good", `{"model":"b","messages":[{"role":"tool","content":"x"}]}`, 400, "invalid_message"},
		{"too large", "sios_good", `{"model":"b","x":"` + strings.Repeat("a", MaxBodyBytes) + `"}`, 413, "request_too_large"},
		{"forbidden", "sios_good", `{"model":"forbidden","messages":[{"role":"user","content":"x"}]}`, 403, "policy_denied"},
	} {
		t.Run(c.name, func(t *testing.T) {
			resp, body := do(t, "POST", "/v1/chat/completions", c.key, c.body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			var e errorBody
			if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Code != c.code || e.Error.Message == "" || e.Error.Type == "" {
				t.Fatalf("error body %s, want code %s", body, c.code)
			}
		})
	}
}

func TestChatAnswersAndStreams(t *testing.T) {
	resp, body := do(t, "POST", "/v1/chat/completions", "sios_good",
		`{"model":"b","messages":[{"role":"user","content":[{"type":"text","text":"hello "},{"type":"text","text":"world"}]}]}`)
	if resp.StatusCode != 200 || resp.Header.Get(ReceiptHeader) != CompactReceipt(fakeReceipt) || !strings.Contains(body, `"content":"hello world"`) {
		t.Fatalf("%d %v %s", resp.StatusCode, resp.Header, body)
	}
	resp, body = do(t, "POST", "/v1/chat/completions", "sios_good",
		`{"model":"b","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"a b c"}]}`)
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	events := strings.Count(body, "data: ")
	if events != 1+3+1+1+1 || !strings.HasSuffix(body, "data: [DONE]\n\n") || !strings.Contains(body, `"usage"`) {
		t.Fatalf("%d events:\n%s", events, body)
	}
}

func TestUnknownRouteIsOpenAIShaped(t *testing.T) {
	resp, body := do(t, "GET", "/v1/nothing", "sios_good", "")
	if resp.StatusCode != 404 || !strings.Contains(body, `"not_found"`) {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
}

func TestDocsListEveryChatMember(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "api.md"))
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(doc, []byte("### Chat request members"))
	if i < 0 {
		t.Fatal("docs/api.md has no chat request members section")
	}
	var documented []string
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| ").FindAllSubmatch(doc[i:], -1) {
		documented = append(documented, string(m[1]))
		if len(documented) == len(chatMembers) {
			break
		}
	}
	var code []string
	for _, m := range chatMembers {
		code = append(code, m.name)
	}
	if !slices.Equal(code, documented) {
		t.Fatalf("code %v\ndocs %v", code, documented)
	}
}

// Every outcome the pipeline can return has its own status: none falls through to the
// 502 kept for a peer's codes this node does not know.
func TestEveryOutcomeHasAStatus(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "invoke", "outcome.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^\s+(Code[A-Za-z]+)\s+Code = "([a-z_]+)"`).FindAllSubmatch(src, -1) {
		if _, ok := statuses[invoke.Code(m[2])]; !ok {
			t.Errorf("%s (%s) has no status in api.statuses", m[1], m[2])
		}
	}
}

// The compact receipt header reads back as written, and nothing else reads at all.
func FuzzParseCompactReceipt(f *testing.F) {
	f.Add(CompactReceipt(&oar.Receipt{Index: 7, SealIndex: 9, RecordHash: strings.Repeat("ab", 32)}))
	f.Add(`index=1, seal=0, record="00"`)
	f.Add(`index=01, seal=2, record="` + strings.Repeat("A", 64) + `"`)
	f.Fuzz(func(t *testing.T, h string) {
		i, s, r, err := ParseCompactReceipt(h)
		if err != nil {
			return
		}
		if back := CompactReceipt(&oar.Receipt{Index: i, SealIndex: s, RecordHash: r}); back != h {
			t.Fatalf("%q parsed, but writes back as %q", h, back)
		}
	})
}
