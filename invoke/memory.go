package invoke

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sios-project/sios/backend/builtin"
	"github.com/sios-project/sios/memory"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// Memory requests of principals. Each passes the perimeter (the principal's rate
// limit) and is decided by policy (memory.read or memory.write on the tenant's memory
// at a classification), refused with a record, or done and audited by memory.Ops. The
// API validates the request's members first.
//
// Every read of memory — the API's search and export, the memory.search tool, the
// builtin backend's retrieval — goes through readMemory: one decision path, so that an
// operator's forbid on memory.read holds everywhere, and one ceiling: memories go no
// higher than both the principal's clearance and the accreditation of where the
// results flow (the caller itself, or a brain and its backend).

// memoryDecision applies policy to a principal's memory action at a classification.
func (p *Pipeline) memoryDecision(pr *policy.Principal, action, subject string, lvl policy.Level) policy.Decision {
	if subject == "" {
		subject = "*" // a search across the tenant's subjects
	}
	return p.cfg.Policy.Decide(policy.Request{
		Principal: *pr, Action: action,
		Resource: policy.Resource{Type: policy.ResourceMemory, ID: subject, Classification: lvl, Tenant: pr.Tenant, Role: roleOfSubject(subject)},
		Context:  policy.Context{Tenant: pr.Tenant, DataClassification: lvl, TargetAccreditation: lvl},
	})
}

func actorOf(pr *policy.Principal) oar.Actor {
	return oar.Actor{ID: pr.ID, Clearance: pr.Clearance.String()}
}

// memoryRefusal records a refused memory request and returns the refusal.
func (p *Pipeline) memoryRefusal(ctx context.Context, pr *policy.Principal, action, subject string, decision *oar.Decision, e *Error) error {
	resource := "memory/*"
	if subject != "" {
		resource = p.cfg.Memory.Resource(ctx, pr.Tenant, subject)
	}
	rc, err := p.appendNow(ctx, &oar.Record{Tenant: pr.Tenant, Actor: actorOf(pr), Action: action, Resource: resource, Decision: decision})
	if err != nil {
		p.cfg.Log.Error("audit refusal", "err", err)
		return errAudit()
	}
	e.Receipt = rc
	return e
}

// admitMemory applies the perimeter to a principal's memory request.
func (p *Pipeline) admitMemory(ctx context.Context, pr *policy.Principal, action, subject string) error {
	if ok, wait := p.limits.Take("principal/"+pr.Tenant+"/"+pr.ID, p.cfg.PrincipalPerMinute, p.cfg.PrincipalBurst); !ok {
		return p.memoryRefusal(ctx, pr, action, subject, &oar.Decision{Effect: "deny", Policies: []string{"rate-limit-principal"}},
			&Error{Code: CodeRateLimited, RetryAfter: wait,
				Message: fmt.Sprintf("principal %s is over its rate limit; retry after %s", pr.ID, wait.Round(time.Millisecond))})
	}
	return nil
}

func memoryError(err error) error {
	if errors.Is(err, memory.ErrUnknownSubject) {
		return errorf(CodeUnknownSubject, "no memories you may see are held about that subject")
	}
	if errors.Is(err, memory.ErrPurgeIncomplete) {
		return nil // forgotten; the files are scrubbed on the next purge (logged by the store's caller)
	}
	return err
}

// MemoryAdd stores a memory for pr in its tenant.
func (p *Pipeline) MemoryAdd(ctx context.Context, pr *policy.Principal, subject string, lvl policy.Level, source, text string) (*memory.Memory, *oar.Receipt, error) {
	if err := p.admitMemory(ctx, pr, oar.ActionMemoryWrite, subject); err != nil {
		return nil, nil, err
	}
	d := p.memoryDecision(pr, policy.ActionMemoryWrite, subject, lvl)
	if !d.Allow {
		return nil, nil, p.memoryRefusal(ctx, pr, oar.ActionMemoryWrite, subject, decisionOf(d),
			errorf(CodePolicyDenied, "principal %s may not write %s memory: %s", pr.ID, lvl, denialReason(d)))
	}
	if source == "" {
		source = "api:" + pr.ID
	}
	m, rc, err := p.cfg.Memory.Add(ctx, actorOf(pr), decisionOf(d), memory.NewMemory{Tenant: pr.Tenant, Subject: subject,
		Classification: lvl, Source: source, Text: text})
	if err != nil {
		p.cfg.Log.Error("memory write", "err", err)
		return nil, nil, errAudit()
	}
	return m, rc, nil
}

// readMemory searches pr's tenant memory for one reader: the results go no higher than
// pr's clearance and ceiling (the accreditation of where they flow). via names the
// reader in the decision recorded (the tool, the builtin retrieval).
func (p *Pipeline) readMemory(ctx context.Context, pr *policy.Principal, subject, query string, limit int, ceiling policy.Level, via string) ([]memory.Result, *oar.Receipt, error) {
	lvl := min(pr.Clearance, ceiling)
	d := p.memoryDecision(pr, policy.ActionMemoryRead, subject, lvl)
	dec := decisionOf(d)
	if via != "" {
		dec.Policies = append(dec.Policies, via)
	}
	if !d.Allow {
		return nil, nil, p.memoryRefusal(ctx, pr, oar.ActionMemorySearch, subject, dec,
			errorf(CodePolicyDenied, "principal %s may not read memory: %s", pr.ID, denialReason(d)))
	}
	q := memory.Query{Tenant: pr.Tenant, Subject: subject, Clearance: lvl, Text: query, Limit: limit}
	if subject == "" {
		q.Hide = p.hideRoleMemories(pr, lvl) // roles.go
	}
	res, rc, err := p.cfg.Memory.Search(ctx, actorOf(pr), dec, q)
	if err != nil {
		return nil, nil, memoryError(err)
	}
	return res, rc, nil
}

// MemorySearch searches pr's tenant: only memories at or below pr's clearance are ever
// searched.
func (p *Pipeline) MemorySearch(ctx context.Context, pr *policy.Principal, subject, query string, limit int) ([]memory.Result, *oar.Receipt, error) {
	if err := p.admitMemory(ctx, pr, oar.ActionMemorySearch, subject); err != nil {
		return nil, nil, err
	}
	return p.readMemory(ctx, pr, subject, query, limit, policy.TopSecret, "")
}

// MemoryExport exports a subject's memories at or below pr's clearance. A subject with
// none pr may see answers as one that does not exist.
func (p *Pipeline) MemoryExport(ctx context.Context, pr *policy.Principal, subject string) (*memory.Export, *oar.Receipt, error) {
	if err := p.admitMemory(ctx, pr, oar.ActionMemoryExport, subject); err != nil {
		return nil, nil, err
	}
	d := p.memoryDecision(pr, policy.ActionMemoryRead, subject, pr.Clearance)
	if !d.Allow {
		return nil, nil, p.memoryRefusal(ctx, pr, oar.ActionMemoryExport, subject, decisionOf(d),
			errorf(CodePolicyDenied, "principal %s may not export memory: %s", pr.ID, denialReason(d)))
	}
	ex, rc, err := p.cfg.Memory.Export(ctx, actorOf(pr), decisionOf(d), pr.Tenant, subject, pr.Clearance)
	if err != nil {
		if e := memoryError(err); e != nil {
			if ie, ok := e.(*Error); ok {
				ie.Receipt = rc
			}
			return nil, nil, e
		}
	}
	return ex, rc, nil
}

// MemoryForget forgets a subject's memories that pr may see: those at or below its
// clearance (the subject's key goes when none is left). It needs the right to write
// memory in the tenant.
func (p *Pipeline) MemoryForget(ctx context.Context, pr *policy.Principal, subject string) (*memory.Forgotten, *oar.Receipt, error) {
	if err := p.admitMemory(ctx, pr, oar.ActionMemoryForget, subject); err != nil {
		return nil, nil, err
	}
	d := p.memoryDecision(pr, policy.ActionMemoryWrite, subject, policy.Official)
	if !d.Allow {
		return nil, nil, p.memoryRefusal(ctx, pr, oar.ActionMemoryForget, subject, decisionOf(d),
			errorf(CodePolicyDenied, "principal %s may not forget memory: %s", pr.ID, denialReason(d)))
	}
	f, rc, err := p.cfg.Memory.Forget(ctx, actorOf(pr), decisionOf(d), pr.Tenant, subject, pr.Clearance)
	if err != nil {
		if errors.Is(err, memory.ErrPurgeIncomplete) {
			p.cfg.Log.Error("memory forget: purge incomplete; it runs again at the next forget or start", "err", err)
			return f, rc, nil
		}
		if e := memoryError(err); e != nil {
			var ie *Error
			if errors.As(e, &ie) {
				return nil, nil, p.memoryRefusal(ctx, pr, oar.ActionMemoryForget, subject, decisionOf(d), ie)
			}
			p.cfg.Log.Error("memory forget", "err", err)
			return nil, nil, errAudit()
		}
	}
	return f, rc, nil
}

// searchForTool is the memory.search tool's read: its results go back to the model, so
// no higher than where the brain's data flows.
func (p *Pipeline) searchForTool(ctx context.Context, inv *Invocation, subject, query string) ([]memory.Result, error) {
	res, _, err := p.readMemory(ctx, inv.Principal, subject, query, 5, p.flowsTo(inv), "tool:memory.search")
	return res, err
}

// flowsTo is the accreditation of where an invocation's data goes: the brain's ceiling
// and its backend's accreditation.
func (p *Pipeline) flowsTo(inv *Invocation) policy.Level {
	lvl, err := policy.ParseLevel(inv.brain.Classification)
	if err != nil {
		return policy.Official
	}
	return p.accreditation(inv.brain, lvl)
}

// retriever is the builtin backend's read of the invocation's tenant memory: data
// above the brain's classification never reaches it.
func (p *Pipeline) retriever(inv *Invocation) builtin.Retriever {
	return retrieverFunc(func(ctx context.Context, question string, limit int) ([]builtin.Passage, error) {
		// What a grant released for this request comes first: the caller asked for it.
		var out []builtin.Passage
		if d := inv.descent; d != nil {
			out = d.releasedPassages()
		}
		res, _, err := p.readMemory(ctx, inv.Principal, "", question, limit, p.flowsTo(inv), "builtin-retrieval")
		if err != nil && len(out) == 0 {
			return nil, err
		}
		for _, r := range res {
			out = append(out, builtin.Passage{ID: r.ID, Subject: r.Subject, Classification: r.Classification.String(), Created: r.Created, Text: r.Text})
		}
		return out, nil
	})
}

type retrieverFunc func(ctx context.Context, question string, limit int) ([]builtin.Passage, error)

func (f retrieverFunc) Retrieve(ctx context.Context, q string, limit int) ([]builtin.Passage, error) {
	return f(ctx, q, limit)
}
