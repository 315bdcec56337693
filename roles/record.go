package roles

import (
	"context"
	"encoding/json"

	"github.com/sios-project/sios/oar"
)

// nodeActor is the actor of the steps the node takes on its own initiative.
var nodeActor = oar.Actor{ID: "node"}

// resource names a role in audit records.
func (k key) resource() string { return "role/" + k.tenant + "/" + k.name }

// entry is one record of a step.
type entry struct {
	role     key
	action   string
	actor    oar.Actor
	decision *oar.Decision
	detail   map[string]any
	outputs  []oar.Digest
	parties  [][]byte
}

// record writes e to the ledger and returns once it is durable: the step it records may
// take effect only then.
func (k *Keeper) record(ctx context.Context, e entry) (*oar.Receipt, error) {
	detail, err := json.Marshal(e.detail)
	if err != nil {
		return nil, err
	}
	rec := &oar.Record{Tenant: e.role.tenant, Actor: e.actor, Action: e.action, Resource: e.role.resource(),
		Decision: e.decision, Detail: detail, Outputs: e.outputs}
	for _, p := range e.parties {
		rec.Parties = append(rec.Parties, p)
	}
	return k.cfg.Audit(context.WithoutCancel(ctx), rec)
}

// docDigest names a signed document in a record.
func docDigest(name string, doc []byte) []oar.Digest { return []oar.Digest{oar.DigestOf(name, doc)} }
