package mock_test

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/backend/mock"
)

func TestServer(t *testing.T) {
	m := &mock.Server{Latency: 30 * time.Millisecond, Dimensions: 3}
	ts := httptest.NewServer(m)
	defer ts.Close()
	post := func(path, body string) (int, map[string]any, time.Duration) {
		start := time.Now()
		resp, err := ts.Client().Post(ts.URL+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v map[string]any
		b, _ := io.ReadAll(resp.Body)
		json.Unmarshal(b, &v)
		return resp.StatusCode, v, time.Since(start)
	}

	status, v, took := post("/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	if status != 200 || took < m.Latency {
		t.Fatalf("chat: %d after %v", status, took)
	}
	msg := v["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)
	if msg["content"] != mock.DefaultReply {
		t.Fatalf("reply %v", msg)
	}

	status, v, _ = post("/embeddings", `{"model":"e","input":"one string"}`)
	data := v["data"].([]any)
	if status != 200 || len(data) != 1 || len(data[0].(map[string]any)["embedding"].([]any)) != 3 {
		t.Fatalf("embeddings: %d %v", status, v)
	}

	for _, tc := range []struct {
		path, body string
		status     int
	}{
		{"/v1/models", "", 404},
		{"/v1/chat/completions", `{"model":""}`, 400},
		{"/v1/chat/completions", `not json`, 400},
		{"/v1/embeddings", `{"model":"e","input":[1,2]}`, 400},
	} {
		status, v, _ := post(tc.path, tc.body)
		e, _ := v["error"].(map[string]any)
		if status != tc.status || e["message"] == "" {
			t.Errorf("%s %s: %d %v, want %d in OpenAI's error shape", tc.path, tc.body, status, v, tc.status)
		}
	}
	if m.Requests() != 6 || m.Chats() != 1 || m.Embeds() != 1 || m.Streams() != 0 {
		t.Fatalf("counts: requests %d chats %d embeds %d streams %d", m.Requests(), m.Chats(), m.Embeds(), m.Streams())
	}
}

// A mock with opinions: Choose picks each model's enum value in json_schema answers,
// LatencyOf gives each model its own service time.
func TestServerChoosesAndTakesItsTimePerModel(t *testing.T) {
	m := &mock.Server{
		Choose: func(model string, enum []any) any {
			if model == "contrarian" {
				return enum[len(enum)-1]
			}
			return "not one of them"
		},
		LatencyOf: func(model string) time.Duration {
			if model == "slow" {
				return 80 * time.Millisecond
			}
			return 0
		},
	}
	ts := httptest.NewServer(m)
	defer ts.Close()
	ask := func(model string) (map[string]any, time.Duration) {
		body := `{"model":"` + model + `","messages":[{"role":"user","content":"pick"}],"response_format":{"type":"json_schema","json_schema":{"name":"b","schema":{"type":"object","properties":{"choice":{"type":"string","enum":["a","b","c"]},"confidence":{"type":"number"}}}}}}`
		start := time.Now()
		resp, err := ts.Client().Post(ts.URL+"/v1/chat/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v struct {
			Choices []struct {
				Message struct {
					Content string `json:"content"`
				} `json:"message"`
			} `json:"choices"`
		}
		json.NewDecoder(resp.Body).Decode(&v)
		var answer map[string]any
		if err := json.Unmarshal([]byte(v.Choices[0].Message.Content), &answer); err != nil {
			t.Fatalf("%s: %q is not JSON", model, v.Choices[0].Message.Content)
		}
		return answer, time.Since(start)
	}
	if a, took := ask("contrarian"); a["choice"] != "c" || took >= 80*time.Millisecond {
		t.Fatalf("contrarian: %v after %v", a, took)
	}
	if a, took := ask("slow"); a["choice"] != "a" || took < 80*time.Millisecond {
		t.Fatalf("slow (a value outside the enum means the first): %v after %v", a, took)
	}
}
