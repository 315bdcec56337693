package console

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/sios-project/sios/oar"
)

// Exporting an evidence bundle from the console: a range of the log, widened to whole
// seal batches (so every record in it is covered by a seal), that verifies offline
// with 'sios audit verify --bundle'. A bundle holds its records verbatim, so it is
// handed out only if the viewer may read every record in it; the export is recorded
// (audit.export) before the bundle leaves.

func exportAction(w http.ResponseWriter, v *View, f form) (*Result, error) {
	from, _, err := parseIndex("from", f.get("from"))
	if err != nil {
		return nil, err
	}
	to, _, err := parseIndex("to", f.get("to"))
	if err != nil {
		return nil, err
	}
	r, err := v.openLog()
	if err != nil {
		return nil, err
	}
	if r == nil {
		return nil, errorf(http.StatusConflict, "the log has no checkpoint yet: there is nothing to export")
	}
	size := r.Size()
	if to == 0 || to > size {
		to = size
	}
	if from >= to {
		return nil, errorf(http.StatusBadRequest, "the range %d..%d is empty (the checkpointed log has %d entries)", from, to, size)
	}
	if to-from > MaxExportEntries {
		return nil, errorf(http.StatusRequestEntityTooLarge, "the range %d..%d holds %d entries, more than %d (MaxExportEntries); export a smaller range, or use 'sios audit export' on the node",
			from, to, to-from, MaxExportEntries)
	}
	select {
	case v.c.exports <- struct{}{}:
		defer func() { <-v.c.exports }()
	default:
		return nil, errorf(http.StatusServiceUnavailable, "%d evidence bundles are being built (MaxExports); try again when they are done", MaxExports)
	}
	b, err := v.c.cfg.Export(v.r.Context(), from, to)
	if err != nil {
		return nil, errorf(http.StatusConflict, "the bundle could not be built: %v", err)
	}
	if n := uint64(len(b.Entries)); n > MaxExportEntries+2*oar.MaxSealCount {
		return nil, errorf(http.StatusRequestEntityTooLarge, "widened to whole seal batches, the range holds %d entries; export a smaller range", n)
	}
	records := 0
	for k, s := range b.Entries {
		idx := b.Start + uint64(k)
		e, err := oar.Parse([]byte(s))
		if err != nil {
			return nil, errorf(http.StatusUnprocessableEntity, "entry %d does not parse (%v); 'sios audit verify' names what is wrong", idx, err)
		}
		if e.Record == nil {
			continue
		}
		records++
		if !v.mayRead(idx, e.Record) {
			return nil, errorf(http.StatusForbidden, "the bundle (entries %d..%d: the range widened to whole seal batches) holds record %d, which you may not read; a bundle holds its records whole, so choose a range of records you may read",
				b.Start, b.Start+uint64(len(b.Entries))-1, idx)
		}
	}
	// As 'sios audit export' does: a bundle that would not verify offline is not handed out.
	res, err := b.Verify()
	if err != nil {
		return nil, fmt.Errorf("the exported bundle does not verify: %w", err)
	}
	body, err := json.MarshalIndent(b, "", " ")
	if err != nil {
		return nil, err
	}
	end := b.Start + uint64(len(b.Entries))
	if _, _, err := v.c.cfg.Append(context.WithoutCancel(v.r.Context()), &oar.Record{
		Tenant: v.P.Tenant, Actor: oar.Actor{ID: v.P.ID, Clearance: v.P.Clearance.String()},
		Action: oar.ActionAuditExport, Resource: fmt.Sprintf("log/%d-%d", b.Start, end-1),
		Decision: &oar.Decision{Effect: "allow", Policies: []string{"audit.read"}},
		Detail: mustJSON(map[string]any{"from": b.Start, "to": end, "entries": len(b.Entries), "records": records,
			"seals": res.Seals, "bytes": len(body), "via": "console"}),
	}); err != nil {
		v.c.cfg.Log.Error("console: audit export", "err", err)
		return nil, errorf(http.StatusServiceUnavailable, "the audit ledger could not record this export, so the bundle was not handed out")
	}
	writeDownload(w, &Download{Name: "sios-evidence-" + strconv.FormatUint(b.Start, 10) + "-" + strconv.FormatUint(end-1, 10) + ".json",
		ContentType: "application/json", Body: append(body, '\n')})
	return nil, nil
}
