package invoke

import (
	"context"
	"time"

	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// receiptWait bounds how long Receipt waits for a record to reach the checkpointed log
// (Tessera integrates within its checkpoint interval, a second by default).
const receiptWait = 5 * time.Second

// Receipt is the full receipt of audit record idx — the seal over its batch and its
// inclusion proof — for a principal who may read that record (audit.read, decided as
// for the audit explainer, the receipt going to the caller alone): the answer's
// X-Sios-Receipt header names the record compactly, and this fetches the rest. A
// record not yet in the checkpointed log is waited for. A record the principal may not
// read gets the same answer as one that does not exist.
func (p *Pipeline) Receipt(ctx context.Context, pr *policy.Principal, idx uint64) (*oar.Receipt, error) {
	unknown := errorf(CodeUnknownRecord, "no audit record %d that you may read", idx)
	if p.cfg.OpenLog == nil {
		return nil, errorf(CodeInternal, "the audit log cannot be read")
	}
	deadline := time.Now().Add(receiptWait)
	for {
		r, err := p.cfg.OpenLog()
		if err != nil {
			p.cfg.Log.Error("open the audit log for a receipt", "err", err)
			return nil, errorf(CodeInternal, "the audit log cannot be read")
		}
		if idx < r.Size() {
			entry, err := r.Entry(ctx, idx)
			if err != nil {
				return nil, unknown
			}
			e, err := oar.Parse(entry)
			if err != nil || e.Record == nil || !p.mayReadRecord(pr, idx, e.Record, pr.Clearance) {
				return nil, unknown
			}
			rc, err := r.Receipt(ctx, idx)
			if err != nil {
				p.cfg.Log.Error("assemble a receipt", "index", idx, "err", err)
				return nil, unknown
			}
			return rc, nil
		}
		if idx >= p.cfg.Ledger.Size() || time.Now().After(deadline) {
			return nil, unknown // never written, or not integrated in time
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
