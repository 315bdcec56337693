package invoke

import (
	"context"
	"errors"
	"fmt"

	"github.com/sios-project/sios/backend/builtin"
	"github.com/sios-project/sios/memory"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// Memory requests of principals: each is decided by policy (memory.read or
// memory.write on the tenant's memory at a classification), refused with a record, or
// done and audited by memory.Ops. The API validates the request's members first.

// memoryDecision applies policy to a principal's memory action at a classification.
func (p *Pipeline) memoryDecision(pr *policy.Principal, action, subject string, lvl policy.Level) policy.Decision {
	if subject == "" {
		subject = "*" // a search across the tenant's subjects
	}
	return p.cfg.Policy.Decide(policy.Request{
		Principal: *pr, Action: action,
		Resource: policy.Resource{Type: policy.ResourceMemory, ID: subject, Classification: lvl, Tenant: pr.Tenant},
		Context:  policy.Context{Tenant: pr.Tenant, DataClassification: lvl, TargetAccreditation: policy.TopSecret},
	})
}

func actorOf(pr *policy.Principal) oar.Actor {
	return oar.Actor{ID: pr.ID, Clearance: pr.Clearance.String()}
}

// memoryRefusal audits a denied memory request and returns the refusal.
func (p *Pipeline) memoryRefusal(ctx context.Context, pr *policy.Principal, action, subject string, d policy.Decision) error {
	rc, err := p.appendNow(ctx, &oar.Record{Tenant: pr.Tenant, Actor: actorOf(pr), Action: action, Resource: "memory/" + subject,
		Decision: decisionOf(d)})
	if err != nil {
		p.cfg.Log.Error("audit refusal", "err", err)
		return errorf(CodeAuditFailed, "the audit ledger could not record this request")
	}
	e := errorf(CodePolicyDenied, "principal %s may not %s: %s", pr.ID, action, denialReason(d))
	e.Receipt = rc
	return e
}

func memoryError(err error) error {
	if errors.Is(err, memory.ErrUnknownSubject) {
		return errorf(CodeUnknownSubject, "no memories are held about that subject")
	}
	return err
}

// MemoryAdd stores a memory for pr in its tenant.
func (p *Pipeline) MemoryAdd(ctx context.Context, pr *policy.Principal, subject string, lvl policy.Level, source, text string) (*memory.Memory, *oar.Receipt, error) {
	d := p.memoryDecision(pr, policy.ActionMemoryWrite, subject, lvl)
	if !d.Allow {
		return nil, nil, p.memoryRefusal(ctx, pr, oar.ActionMemoryWrite, subject, d)
	}
	if source == "" {
		source = "api:" + pr.ID
	}
	m, rc, err := p.cfg.Memory.Add(ctx, actorOf(pr), decisionOf(d), memory.NewMemory{Tenant: pr.Tenant, Subject: subject,
		Classification: lvl, Source: source, Text: text})
	if err != nil {
		return nil, nil, memoryError(err)
	}
	return m, rc, nil
}

// MemorySearch searches pr's tenant: only memories at or below pr's clearance are ever
// searched.
func (p *Pipeline) MemorySearch(ctx context.Context, pr *policy.Principal, subject, query string, limit int) ([]memory.Result, *oar.Receipt, error) {
	d := p.memoryDecision(pr, policy.ActionMemoryRead, subject, pr.Clearance)
	if !d.Allow {
		return nil, nil, p.memoryRefusal(ctx, pr, oar.ActionMemorySearch, subject, d)
	}
	res, rc, err := p.cfg.Memory.Search(ctx, actorOf(pr), decisionOf(d), memory.Query{Tenant: pr.Tenant, Subject: subject,
		Clearance: pr.Clearance, Text: query, Limit: limit})
	if err != nil {
		return nil, nil, memoryError(err)
	}
	return res, rc, nil
}

// MemoryExport exports a subject's memories at or below pr's clearance.
func (p *Pipeline) MemoryExport(ctx context.Context, pr *policy.Principal, subject string) (*memory.Export, *oar.Receipt, error) {
	d := p.memoryDecision(pr, policy.ActionMemoryRead, subject, pr.Clearance)
	if !d.Allow {
		return nil, nil, p.memoryRefusal(ctx, pr, oar.ActionMemoryExport, subject, d)
	}
	ex, rc, err := p.cfg.Memory.Export(ctx, actorOf(pr), decisionOf(d), pr.Tenant, subject, pr.Clearance)
	if err != nil {
		return nil, nil, memoryError(err)
	}
	return ex, rc, nil
}

// MemoryForget forgets a subject. It needs the right to write memory in the tenant; it
// erases every classification.
func (p *Pipeline) MemoryForget(ctx context.Context, pr *policy.Principal, subject string) (*memory.Forgotten, *oar.Receipt, error) {
	d := p.memoryDecision(pr, policy.ActionMemoryWrite, subject, policy.Official)
	if !d.Allow {
		return nil, nil, p.memoryRefusal(ctx, pr, oar.ActionMemoryForget, subject, d)
	}
	f, rc, err := p.cfg.Memory.Forget(ctx, actorOf(pr), decisionOf(d), pr.Tenant, subject)
	if err != nil {
		return nil, nil, memoryError(err)
	}
	return f, rc, nil
}

// searchForTool is the memory.search tool's read of the invocation's tenant memory.
func (p *Pipeline) searchForTool(ctx context.Context, inv *Invocation, subject, query string) ([]memory.Result, error) {
	pr := inv.Principal
	res, _, err := p.cfg.Memory.Search(ctx, actorOf(pr), &oar.Decision{Effect: "allow", Policies: []string{"permit-brain-tools"}},
		memory.Query{Tenant: pr.Tenant, Subject: subject, Clearance: pr.Clearance, Text: query, Limit: 5})
	return res, err
}

// retriever is the builtin backend's access to the invocation's tenant memory.
func (p *Pipeline) retriever(inv *Invocation) builtin.Retriever {
	return retrieverFunc(func(ctx context.Context, question string, limit int) ([]builtin.Passage, error) {
		pr := inv.Principal
		res, _, err := p.cfg.Memory.Search(ctx, actorOf(pr), &oar.Decision{Effect: "allow", Policies: []string{"builtin-retrieval"}},
			memory.Query{Tenant: pr.Tenant, Clearance: pr.Clearance, Text: question, Limit: limit})
		if err != nil {
			return nil, err
		}
		out := make([]builtin.Passage, len(res))
		for i, r := range res {
			out[i] = builtin.Passage{ID: r.ID, Subject: r.Subject, Classification: r.Classification.String(), Created: r.Created, Text: r.Text}
		}
		return out, nil
	})
}

type retrieverFunc func(ctx context.Context, question string, limit int) ([]builtin.Passage, error)

func (f retrieverFunc) Retrieve(ctx context.Context, q string, limit int) ([]builtin.Passage, error) {
	return f(ctx, q, limit)
}

// recordReader is the builtin backend's read of the node's audit log.
func (p *Pipeline) recordReader(inv *Invocation) builtin.RecordReader {
	return recordFunc(func(ctx context.Context, idx uint64) (*oar.Entry, error) {
		if p.cfg.OpenLog == nil {
			return nil, errors.New("the audit log cannot be read")
		}
		r, err := p.cfg.OpenLog()
		if err != nil {
			return nil, fmt.Errorf("the audit log cannot be read: %v", err)
		}
		entry, err := r.Entry(ctx, idx)
		if err != nil {
			return nil, fmt.Errorf("it is not in the checkpointed log yet (%v)", err)
		}
		e, err := oar.Parse(entry)
		if err != nil {
			return nil, fmt.Errorf("it does not parse: %v", err)
		}
		return e, nil
	})
}

type recordFunc func(ctx context.Context, idx uint64) (*oar.Entry, error)

func (f recordFunc) Entry(ctx context.Context, idx uint64) (*oar.Entry, error) { return f(ctx, idx) }
