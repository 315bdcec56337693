package memory

import (
	"cmp"
	"context"
	"encoding/json"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// Ops performs memory operations and audits each one: whoever decided that an
// operation may happen (the node's policy for API callers, the operator for the CLI)
// passes the decision in, and the record names it. The records hold digests, ids and
// counts, never memory text.
type Ops struct {
	Store  *Store
	Append func(context.Context, *oar.Record) (*oar.Receipt, []byte, error)
	// Embed, when set, re-ranks search results by the cosine similarity of their
	// embeddings to the query's (the configured backend's embeddings model). Vectors
	// are computed per search and never stored, so there is nothing more to forget.
	Embed func(ctx context.Context, texts []string) ([][]float32, error)
}

// rerank orders BM25 candidates by embedding similarity to the query and keeps limit.
// On an embeddings failure the lexical order stands: ranking degrades, search works.
func (m *Ops) rerank(ctx context.Context, query string, res []Result, limit int) ([]Result, bool) {
	if m.Embed == nil || len(res) < 2 {
		return res, false
	}
	texts := make([]string, 0, len(res)+1)
	texts = append(texts, query)
	for _, r := range res {
		texts = append(texts, r.Text)
	}
	vecs, err := m.Embed(ctx, texts)
	if err != nil || len(vecs) != len(texts) {
		return res, false
	}
	for i := range res {
		res[i].Score = cosine(vecs[0], vecs[i+1])
	}
	slices.SortStableFunc(res, func(a, b Result) int { return cmp.Compare(b.Score, a.Score) })
	if len(res) > limit {
		res = res[:limit]
	}
	return res, true
}

func cosine(a, b []float32) float64 {
	if len(a) != len(b) {
		return 0
	}
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	if na == 0 || nb == 0 {
		return 0
	}
	return dot / math.Sqrt(na*nb)
}

func (m *Ops) audit(ctx context.Context, rec *oar.Record) (*oar.Receipt, error) {
	rc, _, err := m.Append(context.WithoutCancel(ctx), rec)
	return rc, err
}

func detailJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Add stores one memory and audits it (the record holds the text's digest, never the text).
func (m *Ops) Add(ctx context.Context, actor oar.Actor, decision *oar.Decision, nm NewMemory) (*Memory, *oar.Receipt, error) {
	mem, err := m.Store.Add(ctx, nm)
	if err != nil {
		return nil, nil, err
	}
	rc, err := m.audit(ctx, &oar.Record{
		Tenant: nm.Tenant, Actor: actor, Action: oar.ActionMemoryWrite, Resource: "memory/" + nm.Subject + "/" + mem.ID,
		Classification: nm.Classification.String(), Decision: decision,
		Inputs: []oar.Digest{oar.DigestOf("text", []byte(nm.Text))},
	})
	return mem, rc, err
}

// Search runs a query and audits it with the ids it returned.
func (m *Ops) Search(ctx context.Context, actor oar.Actor, decision *oar.Decision, q Query) ([]Result, *oar.Receipt, error) {
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = DefaultLimit
	case limit > MaxLimit:
		limit = MaxLimit
	}
	if m.Embed != nil {
		q.Limit = min(3*limit, MaxLimit) // candidates for re-ranking
	}
	res, err := m.Store.Search(ctx, q)
	if err != nil {
		return nil, nil, err
	}
	res, reranked := m.rerank(ctx, q.Text, res, limit)
	ids := make([]string, len(res))
	for i, r := range res {
		ids[i] = r.ID
	}
	resource := "memory/*"
	if q.Subject != "" {
		resource = "memory/" + q.Subject
	}
	rc, err := m.audit(ctx, &oar.Record{
		Tenant: q.Tenant, Actor: actor, Action: oar.ActionMemorySearch, Resource: resource, Decision: decision,
		Classification: q.Clearance.String(), Inputs: []oar.Digest{oar.DigestOf("query", []byte(q.Text))},
		Detail: detailJSON(map[string]any{"results": ids, "reranked_by_embeddings": reranked}),
	})
	return res, rc, err
}

// Export returns every memory of a subject at or below clearance, audited.
func (m *Ops) Export(ctx context.Context, actor oar.Actor, decision *oar.Decision, tenant, subject string, clearance policy.Level) (*Export, *oar.Receipt, error) {
	ex, err := m.Store.Export(ctx, tenant, subject)
	if err != nil {
		return nil, nil, err
	}
	kept := ex.Memories[:0]
	for _, mem := range ex.Memories {
		if mem.Classification <= clearance {
			kept = append(kept, mem)
		}
	}
	ex.Memories = kept
	rc, err := m.audit(ctx, &oar.Record{
		Tenant: tenant, Actor: actor, Action: oar.ActionMemoryExport, Resource: "memory/" + subject, Decision: decision,
		Detail: detailJSON(map[string]any{"memories": len(kept)}),
	})
	return ex, rc, err
}

// Forget destroys a subject's memories and key, audited. The record keeps the ids and
// count, never content, so the log still verifies and says what was erased.
func (m *Ops) Forget(ctx context.Context, actor oar.Actor, decision *oar.Decision, tenant, subject string) (*Forgotten, *oar.Receipt, error) {
	f, err := m.Store.Forget(ctx, tenant, subject)
	if err != nil {
		return nil, nil, err
	}
	rc, err := m.audit(ctx, &oar.Record{
		Tenant: tenant, Actor: actor, Action: oar.ActionMemoryForget, Resource: "memory/" + subject, Decision: decision,
		Detail: detailJSON(map[string]any{"forgotten": len(f.IDs), "ids": f.IDs}),
	})
	return f, rc, err
}

// RunExpiry forgets memories past their retention period, every interval, until ctx
// ends, auditing each subject forgotten.
func (m *Ops) RunExpiry(ctx context.Context, r Retention, every time.Duration, log *slog.Logger) {
	if len(r.PerTenant) == 0 && len(r.PerClassification) == 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		gone, err := m.Store.Expire(ctx, time.Now(), r)
		if err != nil {
			log.Error("memory retention", "err", err)
			continue
		}
		for _, f := range gone {
			if _, err := m.audit(ctx, &oar.Record{Tenant: f.Tenant, Actor: oar.Actor{ID: "retention"},
				Action: oar.ActionMemoryExpire, Resource: "memory/" + f.Subject,
				Decision: &oar.Decision{Effect: "allow", Policies: []string{"retention"}},
				Detail:   detailJSON(map[string]any{"forgotten": len(f.IDs), "ids": f.IDs})}); err != nil {
				log.Error("audit retention", "err", err)
			}
		}
	}
}
