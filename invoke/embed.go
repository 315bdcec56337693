package invoke

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/sios-project/sios/backend/builtin"
	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// Embedding is one embeddings request: a brain id (its backend serves it) and the texts
// to embed. It passes the same perimeter as a chat: the classification the caller
// declares, policy (no read up, no flow down to the brain's backend), the principal's
// and the brain's rate limits, and a record written before any text leaves.
type Embedding struct {
	Principal *policy.Principal
	Model     string
	Inputs    []string
	// Classification is the caller's marking of the texts (X-Sios-Classification);
	// empty means OFFICIAL.
	Classification string
}

// Embeddings is the answer to an Embedding request.
type Embeddings struct {
	Model   string
	Vectors [][]float32
	Usage   int // tokens, estimated
	Receipt *oar.Receipt
}

// Embed runs an embeddings request.
func (p *Pipeline) Embed(ctx context.Context, req *Embedding) (*Embeddings, error) {
	pr := req.Principal
	rec := &oar.Record{Tenant: pr.Tenant, Actor: actorOf(pr), Action: oar.ActionBrainEmbed, Resource: "brain/" + req.Model}
	for i, in := range req.Inputs {
		rec.Inputs = append(rec.Inputs, oar.DigestOf(fmt.Sprintf("input[%d]", i), []byte(in)))
		if i+1 == oar.MaxDigests {
			break
		}
	}
	refuse := func(decision *oar.Decision, e *Error) error {
		rec.Decision = decision
		rc, err := p.appendNow(ctx, rec)
		if err != nil {
			p.cfg.Log.Error("audit refusal", "err", err)
			return errAudit()
		}
		e.Receipt = rc
		return e
	}
	data, perr := parseClassification(req.Classification)
	if perr != nil {
		return nil, refuse(&oar.Decision{Effect: "deny", Policies: []string{"input-validation"}}, perr)
	}
	rec.Classification = data.String()
	b, ok := p.cfg.Brains.Get(req.Model)
	if !ok {
		return nil, refuse(&oar.Decision{Effect: "deny"}, &Error{Code: CodeModelNotFound, Param: "model", Message: fmt.Sprintf("no brain %q to embed with", req.Model)})
	}
	d := p.decideInvoke(pr, b, data)
	if !d.Allow {
		return nil, refuse(decisionOf(d), errorf(CodePolicyDenied, "principal %s may not send %s data to brain %s (%s): %s", pr.ID, data, b.ID, b.Classification, denialReason(d)))
	}
	if ok, wait := p.limits.Take("principal/"+pr.Tenant+"/"+pr.ID, p.cfg.PrincipalPerMinute, p.cfg.PrincipalBurst); !ok {
		return nil, refuse(&oar.Decision{Effect: "deny", Policies: []string{"rate-limit-principal"}}, &Error{Code: CodeRateLimited, RetryAfter: wait,
			Message: fmt.Sprintf("principal %s is over its rate limit; retry after %s", pr.ID, wait.Round(time.Millisecond))})
	}
	if ok, wait := p.limits.Take("brain/"+b.ID, b.RateLimit.RequestsPerMinute, b.RateLimit.Burst); !ok {
		return nil, refuse(&oar.Decision{Effect: "deny", Policies: []string{"rate-limit-brain"}}, &Error{Code: CodeRateLimited, RetryAfter: wait,
			Message: fmt.Sprintf("brain %s is over its rate limit of %d requests per minute; retry after %s", b.ID, b.RateLimit.RequestsPerMinute, wait.Round(time.Millisecond))})
	}
	inv := &Invocation{Principal: pr, brain: b}
	be, name, err := p.backendFor(inv, b)
	if err != nil {
		p.cfg.Log.Error("backend", "brain", b.ID, "err", err)
		return nil, refuse(decisionOf(d), errorf(CodeBackendMisconfigured, "brain %s's backend is misconfigured; see the node's log", b.ID))
	}
	model := p.embeddingModel(b, name)
	if model == "" {
		return nil, refuse(decisionOf(d), errorf(CodeNoModel, "brain %s's backend has no embeddings model: set config \"embedding_model\" or the brain's model", b.ID))
	}
	// The record is durable before any text goes to the backend.
	rec.Decision = decisionOf(d)
	rc, err := p.appendNow(ctx, rec)
	if err != nil {
		p.cfg.Log.Error("embeddings record", "err", err)
		return nil, errAudit()
	}
	timeout := time.Duration(b.Timeout)
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	ectx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	vecs, usage, err := be.Embed(ectx, model, req.Inputs)
	if err != nil {
		e := backendError(b, name, timeout, err)
		e.Receipt = rc
		return nil, e
	}
	return &Embeddings{Model: model, Vectors: vecs, Usage: usage.PromptTokens, Receipt: rc}, nil
}

// embeddingModel is the model a brain embeds with: the builtin hashing model on the
// builtin backend; else the node's embeddings model, the brain's model, or the node's
// default model, in that order.
func (p *Pipeline) embeddingModel(b *brain.Brain, backendName string) string {
	if backendName == brain.BackendBuiltin {
		return builtin.EmbeddingModel
	}
	for _, m := range []string{p.cfg.EmbeddingModel, b.Model, p.cfg.DefaultModel} {
		if m != "" {
			return m
		}
	}
	return ""
}

// parseClassification reads an X-Sios-Classification value (empty: OFFICIAL). The API
// joins repeated headers with ", ": a request that sends more than one is refused, so
// that a proxy appending the true marking cannot be bypassed by a first one.
func parseClassification(s string) (policy.Level, *Error) {
	if s == "" {
		return policy.Official, nil
	}
	if strings.Contains(s, ",") {
		return 0, &Error{Code: CodeInvalidClassification, Param: "X-Sios-Classification",
			Message: fmt.Sprintf("X-Sios-Classification was sent more than once (%s): send exactly one marking", s)}
	}
	lvl, err := policy.ParseLevel(s)
	if err != nil {
		return 0, &Error{Code: CodeInvalidClassification, Param: "X-Sios-Classification", Message: "X-Sios-Classification: " + err.Error()}
	}
	return lvl, nil
}
