package invoke

import (
	"context"
	"fmt"

	"github.com/sios-project/sios/backend/builtin"
	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// Embedding is one embeddings request: a brain id (its backend and model are used) and
// the texts to embed.
type Embedding struct {
	Principal *policy.Principal
	Model     string
	Inputs    []string
}

// Embeddings is the answer to an Embedding request.
type Embeddings struct {
	Model   string
	Vectors [][]float32
	Usage   int // tokens, estimated
	Receipt *oar.Receipt
}

// Embed runs an embeddings request, governed and audited like a chat.
func (p *Pipeline) Embed(ctx context.Context, req *Embedding) (*Embeddings, error) {
	pr := req.Principal
	rec := &oar.Record{
		Tenant: pr.Tenant, Actor: actorOf(pr), Action: oar.ActionBrainEmbed, Classification: policy.Official.String(),
	}
	for i, in := range req.Inputs {
		rec.Inputs = append(rec.Inputs, oar.DigestOf(fmt.Sprintf("input[%d]", i), []byte(in)))
		if i+1 == oar.MaxDigests {
			break
		}
	}
	refuse := func(e *Error) error {
		rc, err := p.appendNow(ctx, rec)
		if err != nil {
			p.cfg.Log.Error("audit refusal", "err", err)
			return errorf(CodeAuditFailed, "the audit ledger could not record this request")
		}
		e.Receipt = rc
		return e
	}
	b, ok := p.cfg.Brains.Get(req.Model)
	if !ok {
		rec.Resource, rec.Decision = "brain/"+req.Model, &oar.Decision{Effect: "deny"}
		return nil, refuse(&Error{Code: CodeModelNotFound, Param: "model", Message: fmt.Sprintf("no brain %q to embed with", req.Model)})
	}
	rec.Resource = "brain/" + b.ID
	d := p.decideInvoke(pr, b, policy.Official)
	rec.Decision = decisionOf(d)
	if !d.Allow {
		return nil, refuse(errorf(CodePolicyDenied, "principal %s may not use brain %s", pr.ID, b.ID))
	}
	inv := &Invocation{Principal: pr}
	be, name, err := p.backendFor(inv, b)
	if err != nil {
		return nil, err
	}
	rc, err := p.appendNow(ctx, rec)
	if err != nil {
		return nil, err
	}
	model := b.Model
	if name == brain.BackendBuiltin {
		model = builtin.EmbeddingModel
	}
	vecs, err := be.Embed(ctx, model, req.Inputs)
	if err != nil {
		return nil, backendError(b, name, defaultTimeout, err)
	}
	out := &Embeddings{Model: model, Vectors: vecs, Receipt: rc}
	for i := range vecs {
		out.Usage += builtin.CountTokens(req.Inputs[i])
	}
	return out, nil
}
