package memory

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
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
	// EmbedAccreditation is the highest classification the embeddings backend may
	// receive. A search at a higher clearance is not re-ranked: its query and the texts
	// it found would flow to a backend not accredited for them.
	EmbedAccreditation policy.Level
	// Observe, when set, receives each operation's name (add, search, export, forget,
	// expire), duration and outcome, for the metrics. It must not block.
	Observe func(op string, d time.Duration, err error)
}

// observe reports an operation that started at start to Observe.
func (m *Ops) observe(op string, start time.Time, err error) {
	if m.Observe != nil {
		m.Observe(op, time.Since(start), err)
	}
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

// Resource is how records name a subject's memory: "memory/" and its pseudonym (Ref),
// never its name.
func (m *Ops) Resource(ctx context.Context, tenant, subject string) string {
	ref, err := m.Store.Ref(ctx, tenant, subject)
	if err != nil {
		return "memory/unknown"
	}
	return "memory/" + ref.Subject
}

// Add stores one memory and audits it. The record is written first, inside the store's
// transaction: if it cannot be written, nothing is stored. It names the subject by its
// pseudonym and holds a digest of the text keyed with the subject's audit key, never
// the text.
func (m *Ops) Add(ctx context.Context, actor oar.Actor, decision *oar.Decision, nm NewMemory) (_ *Memory, _ *oar.Receipt, err error) {
	defer func(start time.Time) { m.observe("add", start, err) }(time.Now())
	var rc *oar.Receipt
	mem, err := m.Store.AddRecorded(ctx, nm, func(mem *Memory, ref Ref) error {
		var err error
		rc, err = m.audit(ctx, &oar.Record{
			Tenant: nm.Tenant, Actor: actor, Action: oar.ActionMemoryWrite, Resource: "memory/" + ref.Subject + "/" + mem.ID,
			Classification: nm.Classification.String(), Decision: decision,
			Inputs: []oar.Digest{{Name: "text", SHA256: ref.Text, Size: int64(len(nm.Text))}},
		})
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return mem, rc, nil
}

// Search runs a query and audits it with the ids it returned. The record holds the
// query's digest keyed with the tenant's key, and the subject's pseudonym.
func (m *Ops) Search(ctx context.Context, actor oar.Actor, decision *oar.Decision, q Query) (_ []Result, _ *oar.Receipt, err error) {
	defer func(start time.Time) { m.observe("search", start, err) }(time.Now())
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = DefaultLimit
	case limit > MaxLimit:
		limit = MaxLimit
	}
	embed := m.Embed != nil && q.Clearance <= m.EmbedAccreditation
	if embed {
		q.Limit = min(3*limit, MaxLimit) // candidates for re-ranking
	}
	res, err := m.Store.Search(ctx, q)
	if err != nil {
		return nil, nil, err
	}
	reranked := false
	if embed {
		res, reranked = m.rerank(ctx, q.Text, res, limit)
	}
	ids := make([]string, len(res))
	for i, r := range res {
		ids[i] = r.ID
	}
	resource := "memory/*"
	if q.Subject != "" {
		resource = m.Resource(ctx, q.Tenant, q.Subject)
	}
	rc, err := m.audit(ctx, &oar.Record{
		Tenant: q.Tenant, Actor: actor, Action: oar.ActionMemorySearch, Resource: resource, Decision: decision,
		Classification: q.Clearance.String(),
		Inputs:         []oar.Digest{{Name: "query", SHA256: m.Store.QueryDigest(q.Tenant, q.Text), Size: int64(len(q.Text))}},
		Detail:         detailJSON(map[string]any{"results": ids, "reranked_by_embeddings": reranked}),
	})
	if err != nil {
		return nil, nil, err
	}
	return res, rc, nil
}

// Export returns every memory of a subject at or below clearance, audited. A subject
// with none the caller may see is ErrUnknownSubject, as one that does not exist.
func (m *Ops) Export(ctx context.Context, actor oar.Actor, decision *oar.Decision, tenant, subject string, clearance policy.Level) (_ *Export, _ *oar.Receipt, err error) {
	defer func(start time.Time) { m.observe("export", start, err) }(time.Now())
	resource := m.Resource(ctx, tenant, subject)
	ex, err := m.Store.Export(ctx, tenant, subject)
	if err != nil && !errors.Is(err, ErrUnknownSubject) {
		return nil, nil, err
	}
	kept := []Memory{}
	if ex != nil {
		for _, mem := range ex.Memories {
			if mem.Classification <= clearance {
				kept = append(kept, mem)
			}
		}
		ex.Memories = kept
	}
	rc, aerr := m.audit(ctx, &oar.Record{
		Tenant: tenant, Actor: actor, Action: oar.ActionMemoryExport, Resource: resource, Decision: decision,
		Classification: clearance.String(), Detail: detailJSON(map[string]any{"memories": len(kept)}),
	})
	if aerr != nil {
		return nil, nil, aerr
	}
	if len(kept) == 0 {
		return nil, rc, fmt.Errorf("%w: tenant %q has no memories of subject %q that may be exported at %s", ErrUnknownSubject, tenant, subject, clearance)
	}
	return ex, rc, nil
}

// Forget destroys the subject's memories classified at or below upTo (and its key when
// none is left), audited: the record is written first, inside the store's transaction,
// so that nothing is destroyed without it. It keeps the ids and count, never content,
// and names the subject by the pseudonym its writes used, which nobody can recompute
// once the key is gone.
func (m *Ops) Forget(ctx context.Context, actor oar.Actor, decision *oar.Decision, tenant, subject string, upTo policy.Level) (_ *Forgotten, _ *oar.Receipt, err error) {
	defer func(start time.Time) { m.observe("forget", start, err) }(time.Now())
	var rc *oar.Receipt
	f, err := m.Store.ForgetRecorded(ctx, tenant, subject, upTo, func(f *Forgotten, ref Ref) error {
		var err error
		rc, err = m.audit(ctx, &oar.Record{
			Tenant: tenant, Actor: actor, Action: oar.ActionMemoryForget, Resource: "memory/" + ref.Subject, Decision: decision,
			Classification: upTo.String(),
			Detail:         detailJSON(map[string]any{"forgotten": len(f.IDs), "ids": f.IDs, "key_destroyed": f.KeyDestroyed}),
		})
		return err
	})
	if errors.Is(err, ErrPurgeIncomplete) {
		return f, rc, err
	}
	if err != nil {
		return nil, nil, err
	}
	return f, rc, nil
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
		start := time.Now()
		_, err := m.Store.ExpireRecorded(ctx, start, r, func(f *Forgotten, ref Ref) error {
			_, err := m.audit(ctx, &oar.Record{Tenant: f.Tenant, Actor: oar.Actor{ID: "retention"},
				Action: oar.ActionMemoryExpire, Resource: "memory/" + ref.Subject,
				Decision: &oar.Decision{Effect: "allow", Policies: []string{"retention"}},
				Detail:   detailJSON(map[string]any{"forgotten": len(f.IDs), "ids": f.IDs, "key_destroyed": f.KeyDestroyed})})
			return err
		})
		m.observe("expire", start, err)
		if err != nil {
			log.Error("memory retention", "err", err)
		}
	}
}
