package brain_test

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sios-project/sios/backend"
	"github.com/sios-project/sios/backend/mock"
	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/egress"
)

// Measuring the embedding router needs a real embedding model, which the test suite
// does not have. With a model server on this machine:
//
//	go test ./brain -run TestRoutingAccuracyEmbedding -v \
//	    -embed-url http://127.0.0.1:11434/v1 -embed-model nomic-embed-text
var (
	embedURL   = flag.String("embed-url", "", "base URL of an OpenAI-compatible server on loopback (an IP literal in 127.0.0.0/8 or ::1) whose embedding model TestRoutingAccuracyEmbedding measures; skipped when empty")
	embedModel = flag.String("embed-model", "", "the embedding model -embed-url serves, e.g. nomic-embed-text")
	embedMin   = flag.Float64("embed-min", 0, "RouterOptions.MinSimilarity for the measurement")
	embedFloor = flag.Float64("embed-floor", 0.60, "TestRoutingAccuracyEmbedding fails below this accuracy on the held-out split")
)

// loopbackRule checks that a model server's base URL is on loopback and returns the
// one destination the egress guard may dial. Only IP literals are accepted: a name
// such as "localhost" is resolved when dialled, so what it reaches is not decided
// here.
func loopbackRule(raw string) (egress.Rule, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return egress.Rule{}, err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.User != nil || u.Host == "" {
		return egress.Rule{}, fmt.Errorf("%q: want http(s)://IP:PORT/PATH with no user", raw)
	}
	addr, err := netip.ParseAddr(u.Hostname())
	if err != nil || !addr.Unmap().IsLoopback() {
		return egress.Rule{}, fmt.Errorf("%q: the host must be a loopback IP literal (127.0.0.1 or ::1): tests dial no other address", raw)
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return egress.Rule{}, fmt.Errorf("%q: bad port", raw)
	}
	return egress.Rule{Host: addr.Unmap().String(), Port: p}, nil
}

func TestLoopbackRule(t *testing.T) {
	for _, tc := range []struct {
		url  string
		ok   bool
		rule string
	}{
		{"http://127.0.0.1:11434/v1", true, "127.0.0.1:11434"},
		{"http://127.9.8.7:8080", true, "127.9.8.7:8080"},
		{"http://[::1]:8000/v1", true, "[::1]:8000"},
		{"http://[::ffff:127.0.0.1]:8000/v1", true, "127.0.0.1:8000"},
		{"https://127.0.0.1/v1", true, "127.0.0.1:443"},
		{"http://localhost:11434/v1", false, ""},
		{"http://10.0.0.5:11434/v1", false, ""},
		{"http://192.0.2.1:11434/v1", false, ""},
		{"http://models.example:11434/v1", false, ""},
		{"http://user:pw@127.0.0.1:11434/v1", false, ""},
		{"ftp://127.0.0.1/v1", false, ""},
		{"http://127.0.0.1:99999/v1", false, ""},
		{"127.0.0.1:11434", false, ""},
	} {
		r, err := loopbackRule(tc.url)
		if (err == nil) != tc.ok || tc.ok && r.String() != tc.rule {
			t.Errorf("loopbackRule(%q) = %v, %v; want ok=%v rule %s", tc.url, r, err, tc.ok, tc.rule)
		}
	}
}

// realEmbedder is the embedder the node would use: the backend's OpenAI-compatible
// client, dialling only the model server, through the egress guard.
func realEmbedder(t testing.TB, base, model string) brain.Embedder {
	t.Helper()
	rule, err := loopbackRule(base)
	if err != nil {
		t.Fatal(err)
	}
	guard, err := egress.New([]egress.Rule{rule}, nil)
	if err != nil {
		t.Fatal(err)
	}
	be, err := backend.NewOpenAI(base, backend.Options{HTTPClient: &http.Client{Transport: guard.HTTPTransport()}})
	if err != nil {
		t.Fatal(err)
	}
	return brain.EmbedderFunc(func(ctx context.Context, texts []string) ([][]float32, error) {
		ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		defer cancel()
		vecs, _, err := be.Embed(ctx, model, texts)
		return vecs, err
	})
}

// TestEmbeddingRouterOverHTTP runs the embedding router through the backend's client
// against the mock model server on loopback: the path a real model takes.
func TestEmbeddingRouterOverHTTP(t *testing.T) {
	srv := &mock.Server{Dimensions: 64}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	c := loadEmbedded(t)
	r := newRouter(t, realEmbedder(t, ts.URL+"/v1", "mock-embed"), "mock-embed")
	if err := r.Warm(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	warm := srv.Embeds()
	if want := (brainTexts(c) + brain.MaxEmbedBatch - 1) / brain.MaxEmbedBatch; warm != int64(want) {
		t.Errorf("Warm made %d embeddings requests, want %d batches of at most MaxEmbedBatch", warm, want)
	}
	b, reason := r.Route(context.Background(), c, "Which antibiotic for a penicillin allergy?", nil)
	if b.Kind != brain.KindDomain || !strings.Contains(reason, "by embedding similarity") || !strings.Contains(reason, "(model mock-embed)") {
		t.Errorf("got %s: %s", b.ID, reason)
	}
	if got := srv.Embeds() - warm; got != 1 {
		t.Errorf("one route made %d embeddings requests, want 1", got)
	}
	ts.Close() // the server goes away: the lexical router decides
	if b, reason := r.Route(context.Background(), c, "What are the side effects of metformin?", nil); b.ID != "pharmacology" ||
		!strings.HasPrefix(reason, "embedding routing failed (embedding the prompt: ") {
		t.Errorf("got %s: %s", b.ID, reason)
	}
}

var cosineRE = regexp.MustCompile(`cosine (-?[0-9.]+)`)

// TestRoutingAccuracyEmbedding measures the embedding router with a real model
// (flags -embed-url and -embed-model; skipped without them) on the published routing
// set, and logs the best similarity of domain and off-topic questions to help choose
// -embed-min (RouterOptions.MinSimilarity).
func TestRoutingAccuracyEmbedding(t *testing.T) {
	if *embedURL == "" {
		t.Skip("no -embed-url: measuring the embedding router needs a real embedding model on loopback")
	}
	if *embedModel == "" {
		t.Fatal("-embed-url needs -embed-model")
	}
	c := loadEmbedded(t)
	cases := readRoutingSet(t)
	r, err := brain.NewRouter(brain.RouterOptions{Embedder: realEmbedder(t, *embedURL, *embedModel), Model: *embedModel, MinSimilarity: *embedMin})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Warm(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	var fellBack int
	sims := map[bool][]float64{} // off-topic? → best similarity
	label := map[string]string{}
	for _, rc := range cases {
		label[rc.Q] = rc.Brain
	}
	route := func(p string) (string, string) {
		b, reason := r.Route(context.Background(), c, p, nil)
		if strings.HasPrefix(reason, "embedding routing failed") {
			fellBack++
		}
		if m := cosineRE.FindStringSubmatch(reason); m != nil {
			s, _ := strconv.ParseFloat(m[1], 64)
			sims[label[p] == brain.DefaultRoute] = append(sims[label[p] == brain.DefaultRoute], s)
		}
		return b.ID, reason
	}
	test := scoreRouting(cases, "test", route)
	dev := scoreRouting(cases, "dev", route)
	logConfusion(t, "embedding ("+*embedModel+"), test split", test)
	logConfusion(t, "embedding ("+*embedModel+"), dev split", dev)
	for _, off := range []bool{false, true} {
		s := sims[off]
		sort.Float64s(s)
		if len(s) > 0 {
			t.Logf("best similarity, off-topic=%v: min %.3f, median %.3f, max %.3f (n=%d)", off, s[0], s[len(s)/2], s[len(s)-1], len(s))
		}
	}
	if fellBack > 0 {
		t.Errorf("%d routes fell back to the lexical router: the model server failed", fellBack)
	}
	if test.acc() < *embedFloor {
		t.Errorf("embedding routing on the test split: %s, below -embed-floor %.2f", test, *embedFloor)
	}
}
