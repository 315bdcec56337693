package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sios-project/sios/api"
	"github.com/sios-project/sios/memory"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// MemoryOps performs memory operations and audits each one. The node uses it for API
// callers (after policy), the CLI for the operator when no node runs.
type MemoryOps struct {
	Store  *memory.Store
	Append func(context.Context, *oar.Record) (*oar.Receipt, []byte, error)
	// Embed, when set, re-ranks search results by the cosine similarity of their
	// embeddings to the query's (the configured backend's embeddings model). Vectors
	// are computed per search and never stored, so there is nothing more to forget.
	Embed func(ctx context.Context, texts []string) ([][]float32, error)
}

// rerank orders BM25 candidates by embedding similarity to the query and keeps limit.
// On an embeddings failure the lexical order stands: ranking degrades, search works.
func (m *MemoryOps) rerank(ctx context.Context, query string, res []memory.Result, limit int) ([]memory.Result, bool) {
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
	slices.SortStableFunc(res, func(a, b memory.Result) int { return cmp.Compare(b.Score, a.Score) })
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

func (m *MemoryOps) audit(ctx context.Context, rec *oar.Record) (*oar.Receipt, error) {
	rc, _, err := m.Append(context.WithoutCancel(ctx), rec)
	return rc, err
}

// Add stores one memory and audits it (the record holds the text's digest, never the text).
func (m *MemoryOps) Add(ctx context.Context, actor oar.Actor, decision *oar.Decision, nm memory.NewMemory) (*memory.Memory, *oar.Receipt, error) {
	mem, err := m.Store.Add(ctx, nm)
	if err != nil {
		return nil, nil, err
	}
	rc, err := m.audit(ctx, &oar.Record{
		Tenant: nm.Tenant, Actor: actor, Action: "memory.write", Resource: "memory/" + nm.Subject + "/" + mem.ID,
		Classification: nm.Classification.String(), Decision: decision,
		Inputs: []oar.Digest{oar.DigestOf("text", []byte(nm.Text))},
	})
	return mem, rc, err
}

// Search runs a query and audits it with the ids it returned.
func (m *MemoryOps) Search(ctx context.Context, actor oar.Actor, decision *oar.Decision, q memory.Query) ([]memory.Result, *oar.Receipt, error) {
	limit := q.Limit
	switch {
	case limit <= 0:
		limit = memory.DefaultLimit
	case limit > memory.MaxLimit:
		limit = memory.MaxLimit
	}
	if m.Embed != nil {
		q.Limit = min(3*limit, memory.MaxLimit) // candidates for re-ranking
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
		Tenant: q.Tenant, Actor: actor, Action: "memory.search", Resource: resource, Decision: decision,
		Classification: q.Clearance.String(), Inputs: []oar.Digest{oar.DigestOf("query", []byte(q.Text))},
		Detail: mustJSON(map[string]any{"results": ids, "reranked_by_embeddings": reranked}),
	})
	return res, rc, err
}

// Export returns every memory of a subject at or below clearance, audited.
func (m *MemoryOps) Export(ctx context.Context, actor oar.Actor, decision *oar.Decision, tenant, subject string, clearance policy.Level) (*memory.Export, *oar.Receipt, error) {
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
		Tenant: tenant, Actor: actor, Action: "memory.export", Resource: "memory/" + subject, Decision: decision,
		Detail: mustJSON(map[string]any{"memories": len(kept)}),
	})
	return ex, rc, err
}

// Forget destroys a subject's memories and key, audited. The record keeps the ids and
// count, never content, so the log still verifies and says what was erased.
func (m *MemoryOps) Forget(ctx context.Context, actor oar.Actor, decision *oar.Decision, tenant, subject string) (*memory.Forgotten, *oar.Receipt, error) {
	f, err := m.Store.Forget(ctx, tenant, subject)
	if err != nil {
		return nil, nil, err
	}
	rc, err := m.audit(ctx, &oar.Record{
		Tenant: tenant, Actor: actor, Action: "memory.forget", Resource: "memory/" + subject, Decision: decision,
		Detail: mustJSON(map[string]any{"forgotten": len(f.IDs), "ids": f.IDs}),
	})
	return f, rc, err
}

// memoryDecision applies policy to a principal's memory action at a classification.
func (n *Node) memoryDecision(p *policy.Principal, action, subject string, lvl policy.Level) policy.Decision {
	if subject == "" {
		subject = "*" // a search across the tenant's subjects
	}
	return n.policy.Decide(policy.Request{
		Principal: *p, Action: action,
		Resource: policy.Resource{Type: policy.ResourceMemory, ID: subject, Classification: lvl, Tenant: p.Tenant},
		Context:  policy.Context{Tenant: p.Tenant, DataClassification: lvl, TargetAccreditation: policy.TopSecret},
	})
}

func actorOf(p *policy.Principal) oar.Actor {
	return oar.Actor{ID: p.ID, Clearance: p.Clearance.String()}
}

func decisionOf(d policy.Decision) *oar.Decision {
	return &oar.Decision{Effect: d.Effect(), Policies: d.Reasons}
}

// memoryRefusal audits a denied memory request and returns the 403.
func (n *Node) memoryRefusal(ctx context.Context, p *policy.Principal, action, subject string, d policy.Decision) error {
	return n.refuse(ctx, &oar.Record{Tenant: p.Tenant, Actor: actorOf(p), Action: action, Resource: "memory/" + subject,
		Decision: decisionOf(d)}, &api.Error{Status: http.StatusForbidden, Type: "permission_error", Code: "policy_denied",
		Message: fmt.Sprintf("principal %s may not %s: %s", p.ID, action, denialReason(d))})
}

// denialReason says why a decision denied, for the caller.
func denialReason(d policy.Decision) string {
	switch {
	case len(d.Reasons) > 0:
		return "forbidden by " + strings.Join(d.Reasons, ", ")
	case len(d.Errors) > 0:
		return "the request could not be evaluated (" + strings.Join(d.Errors, "; ") + ")"
	}
	return "no policy permits it"
}

func memoryError(err error) error {
	if errors.Is(err, memory.ErrUnknownSubject) {
		return &api.Error{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "unknown_subject",
			Message: "no memories are held about that subject"}
	}
	return err
}

// checkMemoryRequest refuses what the store would, with OpenAI-shaped 400s.
func checkMemoryRequest(subject, text string, needText bool) error {
	bad := func(param, msg string) error {
		return &api.Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_memory", Param: param, Message: msg}
	}
	switch {
	case subject == "":
		return bad("subject", "subject is required")
	case len(subject) > memory.MaxNameBytes:
		return bad("subject", fmt.Sprintf("subject is longer than %d bytes (MaxNameBytes)", memory.MaxNameBytes))
	case needText && text == "":
		return bad("text", "text is required")
	case len(text) > memory.MaxTextBytes:
		return bad("text", fmt.Sprintf("text is longer than %d bytes (MaxTextBytes)", memory.MaxTextBytes))
	case !utf8.ValidString(text) || !utf8.ValidString(subject):
		return bad("text", "subject and text must be valid UTF-8")
	}
	return nil
}

// MemoryAdd implements api.MemoryGateway.
func (n *Node) MemoryAdd(ctx context.Context, p *policy.Principal, req *api.MemoryAddRequest) (*memory.Memory, string, error) {
	if err := checkMemoryRequest(req.Subject, req.Text, true); err != nil {
		return nil, "", err
	}
	lvl, err := policy.ParseLevel(orDefault(req.Classification, "OFFICIAL"))
	if err != nil {
		return nil, "", &api.Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_classification", Message: err.Error()}
	}
	d := n.memoryDecision(p, policy.ActionMemoryWrite, req.Subject, lvl)
	if !d.Allow {
		return nil, "", n.memoryRefusal(ctx, p, "memory.write", req.Subject, d)
	}
	m, rc, err := n.memory.Add(ctx, actorOf(p), decisionOf(d), memory.NewMemory{Tenant: p.Tenant, Subject: req.Subject,
		Classification: lvl, Source: orDefault(req.Source, "api:"+p.ID), Text: req.Text})
	if err != nil {
		return nil, "", memoryError(err)
	}
	return m, EncodeReceipt(rc), nil
}

// MemorySearch implements api.MemoryGateway: only the tenant's memories at or below the
// principal's clearance are ever searched.
func (n *Node) MemorySearch(ctx context.Context, p *policy.Principal, req *api.MemorySearchRequest) ([]memory.Result, string, error) {
	d := n.memoryDecision(p, policy.ActionMemoryRead, req.Subject, p.Clearance)
	if !d.Allow {
		return nil, "", n.memoryRefusal(ctx, p, "memory.search", req.Subject, d)
	}
	res, rc, err := n.memory.Search(ctx, actorOf(p), decisionOf(d), memory.Query{Tenant: p.Tenant, Subject: req.Subject,
		Clearance: p.Clearance, Text: req.Query, Limit: req.Limit})
	if err != nil {
		return nil, "", memoryError(err)
	}
	return res, EncodeReceipt(rc), nil
}

// MemoryExport implements api.MemoryGateway.
func (n *Node) MemoryExport(ctx context.Context, p *policy.Principal, subject string) (*memory.Export, string, error) {
	if err := checkMemoryRequest(subject, "", false); err != nil {
		return nil, "", err
	}
	d := n.memoryDecision(p, policy.ActionMemoryRead, subject, p.Clearance)
	if !d.Allow {
		return nil, "", n.memoryRefusal(ctx, p, "memory.export", subject, d)
	}
	ex, rc, err := n.memory.Export(ctx, actorOf(p), decisionOf(d), p.Tenant, subject, p.Clearance)
	if err != nil {
		return nil, "", memoryError(err)
	}
	return ex, EncodeReceipt(rc), nil
}

// MemoryForget implements api.MemoryGateway. Forgetting a subject needs the right to
// write memory in the tenant; it erases every classification.
func (n *Node) MemoryForget(ctx context.Context, p *policy.Principal, subject string) (*memory.Forgotten, string, error) {
	if err := checkMemoryRequest(subject, "", false); err != nil {
		return nil, "", err
	}
	d := n.memoryDecision(p, policy.ActionMemoryWrite, subject, policy.Official)
	if !d.Allow {
		return nil, "", n.memoryRefusal(ctx, p, "memory.forget", subject, d)
	}
	f, rc, err := n.memory.Forget(ctx, actorOf(p), decisionOf(d), p.Tenant, subject)
	if err != nil {
		return nil, "", memoryError(err)
	}
	return f, EncodeReceipt(rc), nil
}

// retrieve answers a domain brain from memory, quoting and citing what it found.
func (n *Node) retrieve(ctx context.Context, p *policy.Principal, question string) string {
	res, _, err := n.memory.Search(ctx, actorOf(p), &oar.Decision{Effect: "allow", Policies: []string{"builtin-retrieval"}},
		memory.Query{Tenant: p.Tenant, Clearance: p.Clearance, Text: question, Limit: 3})
	if err != nil || len(res) == 0 {
		return ""
	}
	var sb strings.Builder
	sb.WriteString("From the tenant's memory (ranked retrieval; quoted, not generated):\n")
	for i, r := range res {
		text := r.Text
		if len(text) > 600 {
			text = text[:600] + "…"
		}
		fmt.Fprintf(&sb, "[%d] %s (subject %s, %s, %s): %q\n", i+1, r.ID, r.Subject, r.Classification, r.Created.Format(time.DateOnly), text)
	}
	return sb.String()
}

// runExpiry forgets memories past their retention period, every interval, until ctx ends.
func (n *Node) runExpiry(ctx context.Context, r memory.Retention, every time.Duration) {
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
		gone, err := n.memory.Store.Expire(ctx, time.Now(), r)
		if err != nil {
			n.log.Error("memory retention", "err", err)
			continue
		}
		for _, f := range gone {
			if _, err := n.memory.audit(ctx, &oar.Record{Tenant: f.Tenant, Actor: oar.Actor{ID: "retention"},
				Action: "memory.expire", Resource: "memory/" + f.Subject,
				Decision: &oar.Decision{Effect: "allow", Policies: []string{"retention"}},
				Detail:   mustJSON(map[string]any{"forgotten": len(f.IDs), "ids": f.IDs})}); err != nil {
				n.log.Error("audit retention", "err", err)
			}
		}
	}
}
