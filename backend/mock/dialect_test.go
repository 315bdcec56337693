package mock_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/backend/mock"
)

// golden is one entry of backend/testdata/golden/<server>/exchanges.json.
type golden struct {
	File        string `json:"file"`
	Status      int    `json:"status"`
	ContentType string `json:"content_type"`
	Mock        *struct {
		Endpoint  string          `json:"endpoint"` // "chat" or "embeddings"
		Request   json.RawMessage `json:"request"`
		Reply     string          `json:"reply"`
		ToolCalls []struct {
			Name      string `json:"name"`
			Arguments string `json:"arguments"`
		} `json:"tool_calls"`
		FailAfter   int      `json:"fail_after"`
		StreamError string   `json:"stream_error"`
		Models      []string `json:"models"`
		NoTools     bool     `json:"no_tools"`
	} `json:"mock"`
}

// TestDialectsMatchGolden: under each Dialect the mock answers every exchange the
// real server's golden body records with a body of the same shape (members and
// their JSON types; for a stream, the same sequence of event shapes, a run of one
// shape counting once), the same status and the same Content-Type.
func TestDialectsMatchGolden(t *testing.T) {
	for _, dialect := range []string{"ollama", "llamacpp", "vllm"} {
		dir := filepath.Join("..", "testdata", "golden", dialect)
		b, err := os.ReadFile(filepath.Join(dir, "exchanges.json"))
		if err != nil {
			t.Fatal(err)
		}
		var exchanges []golden
		if err := json.Unmarshal(b, &exchanges); err != nil {
			t.Fatalf("%s/exchanges.json: %v", dir, err)
		}
		n := 0
		for _, ex := range exchanges {
			if ex.Mock == nil {
				continue
			}
			n++
			t.Run(dialect+"/"+ex.File, func(t *testing.T) {
				want, err := os.ReadFile(filepath.Join(dir, ex.File))
				if err != nil {
					t.Fatal(err)
				}
				m := &mock.Server{Dialect: dialect, Reply: ex.Mock.Reply, FailAfter: ex.Mock.FailAfter,
					StreamError: ex.Mock.StreamError, Models: ex.Mock.Models, NoTools: ex.Mock.NoTools, Dimensions: 4}
				for _, c := range ex.Mock.ToolCalls {
					m.ToolCalls = append(m.ToolCalls, backend.ToolCall{Function: backend.FunctionCall{Name: c.Name, Arguments: c.Arguments}})
				}
				ts := httptest.NewServer(m)
				defer ts.Close()
				path := "/v1/chat/completions"
				if ex.Mock.Endpoint == "embeddings" {
					path = "/v1/embeddings"
				}
				resp, err := ts.Client().Post(ts.URL+path, "application/json", bytes.NewReader(ex.Mock.Request))
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				got, err := io.ReadAll(resp.Body)
				if err != nil {
					t.Fatal(err)
				}
				if resp.StatusCode != ex.Status || resp.Header.Get("Content-Type") != ex.ContentType {
					t.Fatalf("%d %q, want %d %q; body %s", resp.StatusCode, resp.Header.Get("Content-Type"), ex.Status, ex.ContentType, got)
				}
				var gotShape, wantShape []string
				if strings.HasSuffix(ex.File, ".sse") {
					gotShape, wantShape = streamShape(t, got), streamShape(t, want)
				} else {
					gotShape, wantShape = []string{bodyShape(t, got)}, []string{bodyShape(t, want)}
				}
				if !slices.Equal(gotShape, wantShape) {
					t.Fatalf("shape differs from %s\n got  %s\n want %s\nbody:\n%s", ex.File, strings.Join(gotShape, "\n      "), strings.Join(wantShape, "\n      "), got)
				}
			})
		}
		if n < 8 {
			t.Errorf("%s: only %d exchanges for the mock; every kind (chat, stream, tools, tools streamed, stream error, embeddings, two errors) should have one", dir, n)
		}
	}
}

// shape is v with every value replaced by its JSON type; an array's shape is the set
// of its elements' shapes.
func shape(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool"
	case json.Number:
		return "number"
	case string:
		return "string"
	case []any:
		set := map[string]bool{}
		for _, e := range x {
			set[shape(e)] = true
		}
		elems := make([]string, 0, len(set))
		for s := range set {
			elems = append(elems, s)
		}
		sort.Strings(elems)
		return "[" + strings.Join(elems, "|") + "]"
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		b.WriteString("{")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, "%s:%s", k, shape(x[k]))
		}
		b.WriteString("}")
		return b.String()
	}
	return fmt.Sprintf("?%T", v)
}

func bodyShape(t *testing.T, body []byte) string {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, body)
	}
	return shape(v)
}

// streamShape is the shapes of a stream's events in order, each field name with its
// value's shape, a run of equal shapes counted once.
func streamShape(t *testing.T, body []byte) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		field, value, ok := strings.Cut(line, ": ")
		if !ok {
			t.Fatalf("not an event line: %q", line)
		}
		s := field + " " + value
		if value != "[DONE]" {
			s = field + " " + bodyShape(t, []byte(value))
		}
		if len(out) == 0 || out[len(out)-1] != s {
			out = append(out, s)
		}
	}
	return out
}

// TestUnknownDialect: a Dialect the mock does not know is refused, naming it.
func TestUnknownDialect(t *testing.T) {
	ts := httptest.NewServer(&mock.Server{Dialect: "tgi"})
	defer ts.Close()
	resp, err := ts.Client().Post(ts.URL+"/v1/chat/completions", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(b), `unknown Dialect \"tgi\"`) {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
}
