package brain_test

import (
	"context"
	"errors"
	"hash/fnv"
	"math"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/sios-project/sios/brain"
)

// fakeEmbedder is a deterministic stand-in for an embedding model: a bag of words
// hashed into dim buckets. It is no model — its "similarity" is shared words — but
// it lets the router's mechanics be tested: caching, recomputation, fallback.
type fakeEmbedder struct {
	mu      sync.Mutex
	dim     int                           // guarded by mu
	fail    error                         // guarded by mu; returned instead of vectors when set
	mangle  func([][]float32) [][]float32 // guarded by mu; corrupts answers when set
	calls   int                           // guarded by mu; Embed calls
	texts   map[string]int                // guarded by mu; how often each text was embedded
	longest int                           // guarded by mu; the longest text seen, in bytes
	badUTF8 bool                          // guarded by mu; whether any text was not valid UTF-8
}

func newFake(dim int) *fakeEmbedder { return &fakeEmbedder{dim: dim, texts: map[string]int{}} }

func (f *fakeEmbedder) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f.calls++
	if f.fail != nil {
		return nil, f.fail
	}
	out := make([][]float32, len(texts))
	for i, t := range texts {
		f.texts[t]++
		f.longest = max(f.longest, len(t))
		f.badUTF8 = f.badUTF8 || !utf8.ValidString(t)
		v := make([]float32, f.dim)
		v[f.dim-1] = 0.01 // never all zeros
		for _, w := range strings.FieldsFunc(strings.ToLower(t), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
			h := fnv.New32a()
			h.Write([]byte(w))
			v[int(h.Sum32())%(f.dim-1)]++
		}
		out[i] = v
	}
	if f.mangle != nil {
		out = f.mangle(out)
	}
	return out, nil
}

// set changes the fake under its lock.
func (f *fakeEmbedder) set(change func(f *fakeEmbedder)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	change(f)
}

// embedded is how many texts the fake has embedded, counting repeats.
func (f *fakeEmbedder) embedded() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, c := range f.texts {
		n += c
	}
	return n
}

func newRouter(t testing.TB, e brain.Embedder, model string) *brain.Router {
	t.Helper()
	r, err := brain.NewRouter(brain.RouterOptions{Embedder: e, Model: model})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// brainTexts is how many texts the embedding router embeds for c: per domain brain,
// its description and each example.
func brainTexts(c *brain.Catalogue) int {
	n := 0
	for _, b := range c.All() {
		if b.Kind == brain.KindDomain {
			n += 1 + len(b.Examples)
		}
	}
	return n
}

func TestNewRouterOptions(t *testing.T) {
	f := newFake(8)
	for _, tc := range []struct {
		name string
		opts brain.RouterOptions
		want string
	}{
		{"no embedder", brain.RouterOptions{Model: "m"}, "Embedder is required"},
		{"no model", brain.RouterOptions{Embedder: f, Model: " "}, "Model is required"},
		{"similarity above 1", brain.RouterOptions{Embedder: f, Model: "m", MinSimilarity: 1.5}, "not a cosine similarity"},
		{"similarity NaN", brain.RouterOptions{Embedder: f, Model: "m", MinSimilarity: math.NaN()}, "not a cosine similarity"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := brain.NewRouter(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestEmbeddingRouterCaches: the brains' texts are embedded once, by Warm or by the
// first Route, however many prompts follow and however many goroutines route at once;
// each prompt costs one text.
func TestEmbeddingRouterCaches(t *testing.T) {
	c := loadEmbedded(t)
	f := newFake(256)
	r := newRouter(t, f, "fake-1")
	if err := r.Warm(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	n := brainTexts(c)
	if got := f.embedded(); got != n {
		t.Fatalf("Warm embedded %d texts, want %d", got, n)
	}
	prompts := []string{
		"What are the side effects of metformin for a patient with kidney disease?",
		"Review the indemnity clause in this supplier contract.",
		"Which ransomware exploits this CVE?",
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, p := range prompts {
				if b, reason := r.Route(context.Background(), c, p, nil); !strings.Contains(reason, "by embedding similarity") {
					t.Errorf("%q: %s %s", p, b.ID, reason)
				}
			}
		}()
	}
	wg.Wait()
	if got := f.embedded(); got != n+8*len(prompts) {
		t.Errorf("embedded %d texts, want %d: the brains' %d once and each prompt once per route", got, n+8*len(prompts), n)
	}
	// A cold router fills once even when many goroutines route at the same moment.
	f2 := newFake(256)
	cold := newRouter(t, f2, "fake-1")
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cold.Route(context.Background(), c, prompts[0], nil)
		}()
	}
	wg.Wait()
	if got := f2.embedded(); got != n+8 {
		t.Errorf("a cold router embedded %d texts under concurrent routes, want %d", got, n+8)
	}
}

// TestEmbeddingRouterRecomputesChangedBrains: reloading the catalogue costs only the
// texts that changed; a brain's vector is never stale.
func TestEmbeddingRouterRecomputesChangedBrains(t *testing.T) {
	base := loadEmbedded(t)
	f := newFake(256)
	r := newRouter(t, f, "fake-1")
	if err := r.Warm(context.Background(), base); err != nil {
		t.Fatal(err)
	}
	// The same catalogue loaded again: nothing to embed.
	again := loadEmbedded(t)
	before := f.embedded()
	if err := r.Warm(context.Background(), again); err != nil {
		t.Fatal(err)
	}
	if got := f.embedded() - before; got != 0 {
		t.Errorf("an unchanged catalogue re-embedded %d texts", got)
	}
	// The operator overrides tax with a new description and one new example.
	tax, _ := base.Get("tax")
	const desc = "Answers questions about the ward's tea fund and its okapi sanctuary."
	const example = "How much is left in the okapi sanctuary fund?"
	changed, err := brain.Load(writeBrains(t, map[string]string{"tax.yaml": `id: tax
kind: domain
title: UK tax
description: ` + desc + `
system_prompt: Answer.
classification: OFFICIAL
keywords: [tax]
examples:
  - "` + tax.Examples[0] + `"
  - "` + example + `"
`}))
	if err != nil {
		t.Fatal(err)
	}
	before = f.embedded()
	b, reason := r.Route(context.Background(), changed, "okapi sanctuary fund tea", nil)
	// Two new texts (title+description, the new example) and the prompt.
	if got := f.embedded() - before; got != 3 {
		t.Errorf("after a change to one brain, embedded %d texts, want 3", got)
	}
	if b.ID != "tax" || !strings.Contains(reason, "cosine") || !strings.Contains(reason, "to its description") {
		t.Errorf("the changed brain's new text did not route: %s %s", b.ID, reason)
	}
	// The old catalogue's texts left the cache: routing with it again recomputes
	// what changed back, not everything.
	before = f.embedded()
	if err := r.Warm(context.Background(), base); err != nil {
		t.Fatal(err)
	}
	if got := f.embedded() - before; got != 1+len(tax.Examples)-1 {
		t.Errorf("switching back embedded %d texts, want %d", got, len(tax.Examples))
	}
}

// TestEmbeddingRouterKeysOnModel: vectors from one model are never used for
// another: a second router with another model name embeds everything itself, and
// the first keeps its own.
func TestEmbeddingRouterKeysOnModel(t *testing.T) {
	c := loadEmbedded(t)
	f := newFake(64)
	a, b := newRouter(t, f, "model-a"), newRouter(t, f, "model-b")
	for _, r := range []*brain.Router{a, b} {
		if err := r.Warm(context.Background(), c); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := f.embedded(), 2*brainTexts(c); got != want {
		t.Errorf("two models embedded %d texts, want %d", got, want)
	}
}

// TestEmbeddingRouterFallsBack: when the embedder fails or answers with unusable
// vectors, the lexical router decides and the reason says why.
func TestEmbeddingRouterFallsBack(t *testing.T) {
	c := loadEmbedded(t)
	const q = "What are the side effects of metformin for a patient with kidney disease?"
	lex, lexReason := c.Route(q)
	for _, tc := range []struct {
		name   string
		change func(f *fakeEmbedder)
		want   string
	}{
		{"error", func(f *fakeEmbedder) { f.fail = errors.New("connection refused") }, "connection refused"},
		{"too few vectors", func(f *fakeEmbedder) { f.mangle = func(v [][]float32) [][]float32 { return v[:len(v)-1] } }, "vectors for"},
		{"NaN", func(f *fakeEmbedder) {
			f.mangle = func(v [][]float32) [][]float32 { v[0][0] = float32(math.NaN()); return v }
		}, "holds NaN"},
		{"zero vector", func(f *fakeEmbedder) {
			f.mangle = func(v [][]float32) [][]float32 { v[0] = make([]float32, len(v[0])); return v }
		}, "all zeros"},
		{"ragged", func(f *fakeEmbedder) {
			f.mangle = func(v [][]float32) [][]float32 { v[len(v)-1] = v[len(v)-1][1:]; return v }
		}, "dimensions"},
		{"too large", func(f *fakeEmbedder) {
			f.mangle = func(v [][]float32) [][]float32 { v[0] = make([]float32, brain.MaxEmbeddingDim+1); return v }
		}, "MaxEmbeddingDim"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(32)
			f.set(tc.change)
			r := newRouter(t, f, "fake-1")
			b, reason := r.Route(context.Background(), c, q, nil)
			if b.ID != lex.ID || !strings.HasPrefix(reason, "embedding routing failed (") ||
				!strings.Contains(reason, tc.want) || !strings.HasSuffix(reason, "so the lexical router decided: "+lexReason) {
				t.Errorf("got %s: %s", b.ID, reason)
			}
			// Once the embedder recovers, the next route uses it.
			f.set(func(f *fakeEmbedder) { f.fail, f.mangle = nil, nil })
			if _, reason := r.Route(context.Background(), c, q, nil); !strings.Contains(reason, "by embedding similarity") {
				t.Errorf("after recovery: %s", reason)
			}
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r := newRouter(t, newFake(32), "fake-1")
		if b, reason := r.Route(ctx, c, q, nil); b.ID != lex.ID || !strings.Contains(reason, "context canceled") {
			t.Errorf("got %s: %s", b.ID, reason)
		}
	})
	t.Run("nil router", func(t *testing.T) {
		var r *brain.Router
		if b, reason := r.Route(context.Background(), c, q, nil); b.ID != lex.ID || reason != lexReason {
			t.Errorf("got %s: %s", b.ID, reason)
		}
	})
}

// TestEmbeddingRouterModelChange: a model that starts answering in another dimension
// under the same name is detected; the cache is dropped and rebuilt.
func TestEmbeddingRouterModelChange(t *testing.T) {
	c := loadEmbedded(t)
	f := newFake(32)
	r := newRouter(t, f, "fake-1")
	if err := r.Warm(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	f.set(func(f *fakeEmbedder) { f.dim = 48 })
	_, reason := r.Route(context.Background(), c, "metformin dose", nil)
	if !strings.Contains(reason, "has 48 dimensions and the brains' have 32") {
		t.Fatalf("reason %q", reason)
	}
	before := f.embedded()
	if _, reason := r.Route(context.Background(), c, "metformin dose", nil); !strings.Contains(reason, "by embedding similarity") {
		t.Fatalf("reason %q", reason)
	}
	if got := f.embedded() - before; got != brainTexts(c)+1 {
		t.Errorf("after the model changed, embedded %d texts, want every brain text again and the prompt (%d)", got, brainTexts(c)+1)
	}
}

// TestEmbeddingRouterChooses: the most similar text decides, the reason names it and
// the model, the allowed filter and the minimum similarity hold, ties go to the
// lowest id.
func TestEmbeddingRouterChooses(t *testing.T) {
	c := loadEmbedded(t)
	pharm, _ := c.Get("pharmacology")
	r := newRouter(t, newFake(512), "fake-1")
	// A prompt equal to one of a brain's examples has similarity 1 to it.
	b, reason := r.Route(context.Background(), c, pharm.Examples[2], nil)
	if b.ID != "pharmacology" || !strings.Contains(reason, `cosine 1.000 to its example "`+pharm.Examples[2][:40]) ||
		!strings.Contains(reason, "(model fake-1)") || !strings.Contains(reason, "; runner-up ") {
		t.Errorf("got %s: %s", b.ID, reason)
	}
	// Policy excludes the best brain: the next one is chosen.
	b, reason = r.Route(context.Background(), c, pharm.Examples[2], func(b *brain.Brain) bool { return b.ID != "pharmacology" })
	if b.ID == "pharmacology" || !strings.Contains(reason, "by embedding similarity") {
		t.Errorf("got %s: %s", b.ID, reason)
	}
	// Nothing permitted.
	b, reason = r.Route(context.Background(), c, pharm.Examples[2], func(*brain.Brain) bool { return false })
	if b.ID != brain.DefaultRoute || !strings.Contains(reason, "no domain brain is permitted") {
		t.Errorf("got %s: %s", b.ID, reason)
	}
	// Below the minimum similarity: the default brain.
	strict, err := brain.NewRouter(brain.RouterOptions{Embedder: newFake(512), Model: "fake-1", MinSimilarity: 0.99})
	if err != nil {
		t.Fatal(err)
	}
	b, reason = strict.Route(context.Background(), c, "What's the weather like in Leeds?", nil)
	if b.ID != brain.DefaultRoute || !strings.Contains(reason, "is below the minimum similarity 0.990; routed to the default brain summariser") {
		t.Errorf("got %s: %s", b.ID, reason)
	}
	// Two brains with the same texts tie; the lower id wins.
	twin := func(id string) string {
		return "id: " + id + "\nkind: domain\ntitle: Okapi husbandry\nsystem_prompt: Answer.\nclassification: OFFICIAL\n"
	}
	tc, err := brain.Load(writeBrains(t, map[string]string{"a.yaml": twin("zoo-b"), "b.yaml": twin("zoo-a")}))
	if err != nil {
		t.Fatal(err)
	}
	b, reason = r.Route(context.Background(), tc, "okapi husbandry", nil)
	if b.ID != "zoo-a" || !strings.Contains(reason, "tied with zoo-b (1.000), and ties go to the lowest id") {
		t.Errorf("got %s: %s", b.ID, reason)
	}
}

// TestEmbeddingRouterPromptCap: the embedder sees at most MaxEmbedPrompt bytes of a
// prompt, cut at a character boundary; an empty prompt is not embedded at all.
func TestEmbeddingRouterPromptCap(t *testing.T) {
	c := loadEmbedded(t)
	f := newFake(32)
	r := newRouter(t, f, "fake-1")
	if err := r.Warm(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	before := f.embedded()
	if b, reason := r.Route(context.Background(), c, "   ", nil); b.ID != brain.DefaultRoute || f.embedded() != before {
		t.Errorf("a blank prompt: %s %s, %d texts embedded", b.ID, reason, f.embedded()-before)
	}
	f.set(func(f *fakeEmbedder) { f.longest = 0 })
	long := "x" + strings.Repeat("é", brain.MaxEmbedPrompt) // 'é' is two bytes: the cap falls inside one
	r.Route(context.Background(), c, long, nil)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.longest > brain.MaxEmbedPrompt || f.longest < brain.MaxEmbedPrompt-1 || f.badUTF8 {
		t.Errorf("the embedder saw %d bytes (valid UTF-8: %v), want at most %d, cut at a character", f.longest, !f.badUTF8, brain.MaxEmbedPrompt)
	}
}

// TestEmbeddingRouterDeterministic: given the same vectors, the same prompt gives the
// same brain and reason, route after route and router after router. The whole
// routing set is the input; the fake's accuracy is logged for interest only (it
// measures shared words, not meaning).
func TestEmbeddingRouterDeterministic(t *testing.T) {
	c := loadEmbedded(t)
	cases := readRoutingSet(t)
	a, b := newRouter(t, newFake(1024), "fake-1"), newRouter(t, newFake(1024), "fake-1")
	route := func(r *brain.Router) routeFunc {
		return func(p string) (string, string) {
			got, reason := r.Route(context.Background(), c, p, nil)
			return got.ID, reason
		}
	}
	for _, rc := range cases {
		id1, r1 := route(a)(rc.Q)
		id2, r2 := route(a)(rc.Q)
		id3, r3 := route(b)(rc.Q)
		if id1 != id2 || id1 != id3 || r1 != r2 || r1 != r3 {
			t.Fatalf("%q: %s %q, then %s %q, then %s %q", rc.Q, id1, r1, id2, r2, id3, r3)
		}
	}
	t.Logf("hashed bag-of-words stand-in (not a model), test split: %s", scoreRouting(cases, "test", route(a)))
}

func BenchmarkEmbeddingRoute(b *testing.B) {
	c := loadEmbedded(b)
	r := newRouter(b, newFake(768), "fake-1")
	if err := r.Warm(context.Background(), c); err != nil {
		b.Fatal(err)
	}
	p := "What are the side effects of metformin for a patient with kidney disease?"
	b.ReportAllocs()
	for b.Loop() {
		r.Route(context.Background(), c, p, nil)
	}
}
