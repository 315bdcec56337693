package invoke

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/sios-project/sios/backend/builtin"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// Reading an audit record's content (the audit-explainer brain) is a read of that
// record: it is governed by the record's tenant and classification (Cedar action
// audit.read on a Sios::Record), and what the explainer says flows to the brain's
// backend, so no record classified above where the brain's data goes is read.

// recordReader is the builtin backend's governed read of the node's audit log.
func (p *Pipeline) recordReader(inv *Invocation) builtin.RecordReader {
	return recordFunc(func(ctx context.Context, idx uint64) (*oar.Entry, error) {
		if p.cfg.OpenLog == nil {
			return nil, errors.New("the audit log cannot be read")
		}
		r, err := p.cfg.OpenLog()
		if err != nil {
			return nil, errors.New("the audit log cannot be read")
		}
		entry, err := r.Entry(ctx, idx)
		if err != nil {
			return nil, errors.New("it is not in the checkpointed log yet")
		}
		e, err := oar.Parse(entry)
		if err != nil {
			return nil, errors.New("it does not parse")
		}
		if e.Seal != nil {
			return e, nil // a seal says nothing about anyone
		}
		if !p.mayRead(inv, idx, e.Record) {
			// The same answer for a record that is not the caller's as for one that is
			// above it: nothing about it is confirmed.
			return nil, fmt.Errorf("you may not read record %d", idx)
		}
		return e, nil
	})
}

// mayRead decides audit.read of one record for an invocation's principal, whose
// brain's backend what is read flows to.
func (p *Pipeline) mayRead(inv *Invocation, idx uint64, rec *oar.Record) bool {
	return p.mayReadRecord(inv.Principal, idx, rec, p.flowsTo(inv))
}

// mayReadRecord decides audit.read of record idx for pr, when what is read flows to a
// place accredited up to flowsTo.
func (p *Pipeline) mayReadRecord(pr *policy.Principal, idx uint64, rec *oar.Record, flowsTo policy.Level) bool {
	lvl := policy.Official
	if rec.Classification != "" {
		l, err := policy.ParseLevel(rec.Classification)
		if err != nil {
			return false
		}
		lvl = l
	}
	if lvl > flowsTo {
		return false
	}
	d := p.cfg.Policy.Decide(policy.Request{
		Principal: *pr, Action: policy.ActionAuditRead,
		Resource: policy.Resource{Type: policy.ResourceRecord, ID: "record/" + strconv.FormatUint(idx, 10), Classification: lvl, Tenant: rec.Tenant},
		Context:  policy.Context{Tenant: pr.Tenant, DataClassification: lvl, TargetAccreditation: flowsTo},
	})
	return d.Allow
}

type recordFunc func(ctx context.Context, idx uint64) (*oar.Entry, error)

func (f recordFunc) Entry(ctx context.Context, idx uint64) (*oar.Entry, error) { return f(ctx, idx) }
