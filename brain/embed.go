package brain

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"unicode/utf8"
)

// Embedder turns texts into vectors: one per text, in order, all of one dimension. The
// node adapts its backend's embeddings endpoint and embedding model to it. It must be
// safe for concurrent use, and should honour ctx.
type Embedder interface {
	Embed(ctx context.Context, texts []string) ([][]float32, error)
}

// EmbedderFunc adapts a function to Embedder.
type EmbedderFunc func(ctx context.Context, texts []string) ([][]float32, error)

// Embed calls f.
func (f EmbedderFunc) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	return f(ctx, texts)
}

// RouterOptions configures a Router.
type RouterOptions struct {
	// Embedder computes the vectors. Required.
	Embedder Embedder
	// Model names the embedding model behind Embedder. It is part of every cache key,
	// so vectors from one model are never compared with another's. Required.
	Model string
	// MinSimilarity is the least cosine similarity that routes to a domain brain;
	// below it the router returns DefaultRoute. Similarities depend on the model
	// (docs/brains.md, section 4, says how to choose it); 0 routes every prompt to the
	// most similar brain.
	MinSimilarity float64
}

// Router routes "auto" by embedding similarity: the prompt's vector against each
// domain brain's vectors (one for its title and description, one per example
// question), choosing the brain with the highest cosine similarity to any of them;
// ties go to the lowest id. It falls back to the lexical router (Catalogue.RouteAmong)
// when the embedder fails or returns unusable vectors, and says so in the reason.
//
// Brain vectors are computed once and cached under a hash of the embedding model's
// name and the text, so a catalogue that is reloaded costs only the texts that
// changed; the cache holds the vectors of the most recent catalogue routed with and no
// others. Given the same vectors, routing is deterministic.
//
// A Router is safe for concurrent use. A nil *Router routes lexically.
type Router struct {
	emb    Embedder
	model  string
	minSim float64

	fill chan struct{} // a one-slot semaphore: one brain-vector computation at a time

	mu       sync.RWMutex
	cache    map[[sha256.Size]byte][]float32 // guarded by mu; cache key → unit vector
	last     *Catalogue                      // guarded by mu; the catalogue lastVecs belongs to
	lastVecs [][][]float32                   // guarded by mu; per domain brain of last, per text
	dim      int                             // guarded by mu; the dimension of the cached vectors
}

// NewRouter returns a Router that embeds with opts.Embedder.
func NewRouter(opts RouterOptions) (*Router, error) {
	switch {
	case opts.Embedder == nil:
		return nil, errors.New("brain: RouterOptions.Embedder is required")
	case strings.TrimSpace(opts.Model) == "":
		return nil, errors.New("brain: RouterOptions.Model is required: it names the embedding model in every cache key")
	case math.IsNaN(opts.MinSimilarity) || opts.MinSimilarity < -1 || opts.MinSimilarity > 1:
		return nil, fmt.Errorf("brain: RouterOptions.MinSimilarity %v is not a cosine similarity (-1 to 1)", opts.MinSimilarity)
	}
	return &Router{
		emb:    opts.Embedder,
		model:  opts.Model,
		minSim: opts.MinSimilarity,
		fill:   make(chan struct{}, 1),
		cache:  make(map[[sha256.Size]byte][]float32),
	}, nil
}

// Warm computes and caches the vectors of c's domain brains, so that the first
// request routed with c does not wait for them. Call it after loading or reloading a
// catalogue; an error means routing with c falls back to the lexical router until
// the embedder recovers (every Route tries again).
func (r *Router) Warm(ctx context.Context, c *Catalogue) error {
	_, err := r.brainVectors(ctx, c)
	return err
}

// Route chooses among c's domain brains for which allowed returns true (nil allows
// all), as Catalogue.RouteAmong does, but by embedding similarity. It embeds the
// first MaxEmbedPrompt bytes of the prompt's first MaxRoutePrompt bytes, cut at a
// character boundary. The reason names the similarity, the brain text it was
// measured against and the model, or why the lexical router decided instead.
func (r *Router) Route(ctx context.Context, c *Catalogue, prompt string, allowed func(*Brain) bool) (b *Brain, reason string) {
	if r == nil {
		return c.RouteAmong(prompt, allowed)
	}
	if len(prompt) > MaxRoutePrompt {
		prompt = prompt[:MaxRoutePrompt]
	}
	text := truncateUTF8(prompt, MaxEmbedPrompt)
	if strings.TrimSpace(text) == "" || len(c.domain) == 0 {
		return c.RouteAmong(prompt, allowed)
	}
	vecs, err := r.brainVectors(ctx, c)
	var pv []float32
	if err == nil {
		pv, err = r.embedPrompt(ctx, text, len(vecs[0][0]))
	}
	if err != nil {
		b, reason := c.RouteAmong(prompt, allowed)
		return b, fmt.Sprintf("embedding routing failed (%s), so the lexical router decided: %s", oneLine(err.Error(), 200), reason)
	}

	best, second := -1, -1
	sims := make([]float64, len(c.domain))
	which := make([]int, len(c.domain)) // the text of each brain that was most similar
	for i, d := range c.domain {
		if allowed != nil && !allowed(d) {
			continue
		}
		sims[i], which[i] = math.Inf(-1), 0
		for j, v := range vecs[i] {
			if s := dot(pv, v); s > sims[i] {
				sims[i], which[i] = s, j
			}
		}
		switch {
		case best < 0 || sims[i] > sims[best]:
			best, second = i, best
		case second < 0 || sims[i] > sims[second]:
			second = i
		}
	}
	if best < 0 {
		return c.fallback("no domain brain is permitted", allowed)
	}
	win := c.domain[best]
	what := describeText(win, which[best])
	if sims[best] < r.minSim {
		return c.fallback(fmt.Sprintf("the most similar brain, %s (cosine similarity %.3f to %s, model %s), is below the minimum similarity %.3f",
			win.ID, sims[best], what, r.model, r.minSim), allowed)
	}
	reason = fmt.Sprintf("routed to %s by embedding similarity: cosine %.3f to %s (model %s)", win.ID, sims[best], what, r.model)
	switch {
	case second < 0:
		reason += "; no other domain brain is permitted"
	case sims[second] == sims[best]:
		reason += fmt.Sprintf("; tied with %s (%.3f), and ties go to the lowest id", c.domain[second].ID, sims[second])
	default:
		reason += fmt.Sprintf("; runner-up %s (%.3f)", c.domain[second].ID, sims[second])
	}
	return win.clone(), reason
}

// routeTexts are the texts of a domain brain the embedding router compares prompts
// with: its title and description together, then each example question.
func routeTexts(b *Brain) []string {
	first := b.Title
	if d := strings.TrimSpace(b.Description); d != "" {
		first += ": " + d
	}
	return append([]string{first}, b.Examples...)
}

// describeText names routeTexts(b)[j] for a reason.
func describeText(b *Brain, j int) string {
	if j == 0 {
		return "its description"
	}
	e := b.Examples[j-1]
	if short := truncateUTF8(e, 80); short != e {
		e = short + "…"
	}
	return fmt.Sprintf("its example %q", e)
}

// cacheKey is the cache key of a brain text: SHA-256 over the model's name and the
// text, so a changed text or another model never finds a stale vector.
func cacheKey(model, text string) [sha256.Size]byte {
	h := sha256.New()
	h.Write([]byte("sios brain route embedding\x00"))
	h.Write([]byte(model))
	h.Write([]byte{0})
	h.Write([]byte(text))
	var k [sha256.Size]byte
	h.Sum(k[:0])
	return k
}

// brainVectors returns unit vectors for every text of every domain brain of c,
// embedding those the cache lacks.
func (r *Router) brainVectors(ctx context.Context, c *Catalogue) ([][][]float32, error) {
	r.mu.RLock()
	if r.last == c {
		v := r.lastVecs
		r.mu.RUnlock()
		return v, nil
	}
	r.mu.RUnlock()

	select {
	case r.fill <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-r.fill }()

	r.mu.RLock()
	if r.last == c { // filled while this call waited
		v := r.lastVecs
		r.mu.RUnlock()
		return v, nil
	}
	type ref struct{ d, j int }
	keys := make([][][sha256.Size]byte, len(c.domain))
	vecs := make([][][]float32, len(c.domain))
	var missing []string
	var at []ref
	cachedDim, total := r.dim, 0
	for i, b := range c.domain {
		texts := routeTexts(b)
		total += len(texts)
		keys[i] = make([][sha256.Size]byte, len(texts))
		vecs[i] = make([][]float32, len(texts))
		for j, t := range texts {
			keys[i][j] = cacheKey(r.model, t)
			if v, ok := r.cache[keys[i][j]]; ok {
				vecs[i][j] = v
			} else {
				missing = append(missing, t)
				at = append(at, ref{i, j})
			}
		}
	}
	r.mu.RUnlock()

	dim := 0
	for start := 0; start < len(missing); start += MaxEmbedBatch {
		end := min(start+MaxEmbedBatch, len(missing))
		got, err := r.emb.Embed(ctx, missing[start:end])
		if err == nil {
			err = checkVectors(got, end-start, dim)
		}
		if err != nil {
			return nil, fmt.Errorf("embedding the brains' descriptions and examples: %w", err)
		}
		for k, v := range got {
			dim = len(v)
			vecs[at[start+k].d][at[start+k].j] = unit(v)
		}
	}
	switch {
	case dim == 0: // every vector came from the cache
		dim = cachedDim
	case len(missing) < total && dim != cachedDim: // fresh vectors beside cached ones of another size
		r.reset()
		return nil, fmt.Errorf("new embeddings have %d dimensions and the cached ones %d: model %s changed; every brain vector will be recomputed",
			dim, cachedDim, r.model)
	}

	fresh := make(map[[sha256.Size]byte][]float32)
	for i := range keys {
		for j, k := range keys[i] {
			fresh[k] = vecs[i][j]
		}
	}
	r.mu.Lock()
	r.cache, r.last, r.lastVecs, r.dim = fresh, c, vecs, dim
	r.mu.Unlock()
	return vecs, nil
}

// reset drops every cached vector.
func (r *Router) reset() {
	r.mu.Lock()
	r.cache, r.last, r.lastVecs, r.dim = make(map[[sha256.Size]byte][]float32), nil, nil, 0
	r.mu.Unlock()
}

// embedPrompt returns the prompt's unit vector. A dimension other than the brain
// vectors' (dim) means the model changed behind its name: the cache is dropped, so
// the next request recomputes the brains' vectors.
func (r *Router) embedPrompt(ctx context.Context, text string, dim int) ([]float32, error) {
	got, err := r.emb.Embed(ctx, []string{text})
	if err == nil {
		err = checkVectors(got, 1, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("embedding the prompt: %w", err)
	}
	if len(got[0]) != dim {
		r.reset()
		return nil, fmt.Errorf("the prompt's embedding has %d dimensions and the brains' have %d: model %s changed; the brains' vectors will be recomputed",
			len(got[0]), dim, r.model)
	}
	return unit(got[0]), nil
}

// checkVectors checks an embedder's answer: n vectors of one dimension (dim, if
// not 0), each of at most MaxEmbeddingDim finite numbers, none all zero.
func checkVectors(vs [][]float32, n, dim int) error {
	if len(vs) != n {
		return fmt.Errorf("%d vectors for %d texts", len(vs), n)
	}
	for i, v := range vs {
		switch {
		case len(v) == 0:
			return fmt.Errorf("vector %d is empty", i)
		case len(v) > MaxEmbeddingDim:
			return fmt.Errorf("vector %d has %d dimensions, more than %d (MaxEmbeddingDim)", i, len(v), MaxEmbeddingDim)
		case dim != 0 && len(v) != dim:
			return fmt.Errorf("vector %d has %d dimensions, the others %d", i, len(v), dim)
		}
		dim = len(v)
		var sum float64
		for _, x := range v {
			f := float64(x)
			if math.IsNaN(f) || math.IsInf(f, 0) {
				return fmt.Errorf("vector %d holds %v", i, x)
			}
			sum += f * f
		}
		if sum == 0 {
			return fmt.Errorf("vector %d is all zeros", i)
		}
	}
	return nil
}

// unit returns v scaled to length 1, so that a dot product is a cosine similarity.
func unit(v []float32) []float32 {
	var sum float64
	for _, x := range v {
		sum += float64(x) * float64(x)
	}
	n := math.Sqrt(sum)
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(float64(x) / n)
	}
	return out
}

// dot is the dot product of two vectors of one length, summed in index order.
func dot(a, b []float32) float64 {
	var s float64
	for i := range a {
		s += float64(a[i]) * float64(b[i])
	}
	return s
}

// truncateUTF8 returns at most n bytes of s, cut before a character that would not
// fit whole.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// oneLine makes an error text fit a one-line reason of bounded length.
func oneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = truncateUTF8(s, n) + "…"
	}
	return s
}
