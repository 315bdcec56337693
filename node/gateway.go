package node

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"

	"github.com/sios-project/sios/api"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// Embed implements api.Gateway. The model is a brain id (its backend and model are
// used) or "builtin"; the request is governed and audited like a chat.
func (n *Node) Embed(ctx context.Context, p *policy.Principal, req *api.EmbeddingRequest) (*api.EmbeddingResponse, string, error) {
	rec := &oar.Record{
		Tenant: p.Tenant, Actor: oar.Actor{ID: p.ID, Clearance: p.Clearance.String()},
		Action: "brain.embed", Classification: policy.Official.String(),
	}
	for i, in := range req.Inputs {
		rec.Inputs = append(rec.Inputs, oar.DigestOf(fmt.Sprintf("input[%d]", i), []byte(in)))
		if i+1 == oar.MaxDigests {
			break
		}
	}
	b, ok := n.brains.Get(req.Model)
	if !ok {
		rec.Resource, rec.Decision = "brain/"+req.Model, &oar.Decision{Effect: "deny"}
		return nil, "", n.refuse(ctx, rec, &api.Error{Status: http.StatusNotFound, Type: "invalid_request_error",
			Code: "model_not_found", Param: "model", Message: fmt.Sprintf("no brain %q to embed with", req.Model)})
	}
	rec.Resource = "brain/" + b.ID
	d := n.decideInvoke(p, b, policy.Official)
	rec.Decision = &oar.Decision{Effect: d.Effect(), Policies: d.Reasons}
	if !d.Allow {
		return nil, "", n.refuse(ctx, rec, &api.Error{Status: http.StatusForbidden, Type: "permission_error",
			Code: "policy_denied", Message: fmt.Sprintf("principal %s may not use brain %s", p.ID, b.ID)})
	}
	be, name, err := n.backendFor(b)
	if err != nil {
		return nil, "", err
	}
	_, hdr, err := n.audit(ctx, rec)
	if err != nil {
		return nil, "", err
	}
	model := b.Model
	if be == n.builtin {
		model = "sios-builtin-hashing"
	}
	vecs, err := be.Embed(ctx, model, req.Inputs)
	if err != nil {
		return nil, "", backendError(b, name, defaultTimeout, err)
	}
	resp := &api.EmbeddingResponse{Model: model}
	tokens := 0
	for i, v := range vecs {
		resp.Data = append(resp.Data, api.Embedding{Index: i, Embedding: v})
		tokens += countTokens(req.Inputs[i])
	}
	resp.Usage = api.Usage{PromptTokens: tokens, TotalTokens: tokens}
	return resp, hdr, nil
}

// reader opens the node's own log for reading at its latest checkpoint.
func (n *Node) reader() (*ledger.Reader, error) {
	return ledger.OpenReader(filepath.Join(n.dataDir, "ledger"), n.ID(), n.id.Public())
}
