package console

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/sios-project/sios/oar"
)

// The audit page: the end of the log, newest first, filtered by action, actor, tenant,
// resource and decision — only records the viewer may read (the audit.read decision
// the audit explainer uses), so the filters can only narrow what they see. From it,
// the viewer can verify the whole log (if they may read the node's own records) and
// export an evidence bundle of a range in which they may read every record.

func auditPage() Page {
	return Page{Path: "/console/audit", Title: "Audit log", Nav: true, Template: "audit.html", Data: auditData,
		Actions: []Action{
			{Path: "/console/audit/export", Do: exportAction},
			{Path: "/console/audit/verify", Do: verifyAction},
		}}
}

// filter narrows the audit page.
type filter struct {
	Action   string // prefix: "brain." lists brain.invoke and brain.complete
	Actor    string
	Tenant   string
	Resource string // substring
	Effect   string // "allow", "deny" or ""
	Seals    bool
	Before   uint64 // list entries before this index; 0: from the end
	Rows     int
}

// parseFilter reads the audit page's query parameters.
func parseFilter(r *http.Request) (filter, error) {
	f := filter{Rows: DefaultTailRows}
	var err error
	for name, dst := range map[string]*string{"action": &f.Action, "actor": &f.Actor, "tenant": &f.Tenant, "resource": &f.Resource, "effect": &f.Effect} {
		if *dst, err = query(r, name); err != nil {
			return f, err
		}
	}
	if f.Effect != "" && f.Effect != "allow" && f.Effect != "deny" {
		return f, errorf(http.StatusBadRequest, "effect: %q is not allow or deny", clip(f.Effect))
	}
	seals, err := query(r, "seals")
	if err != nil {
		return f, err
	}
	f.Seals = seals == "on"
	before, err := query(r, "before")
	if err != nil {
		return f, err
	}
	if f.Before, _, err = parseIndex("before", before); err != nil {
		return f, err
	}
	rows, err := query(r, "rows")
	if err != nil {
		return f, err
	}
	if rows != "" {
		n, err := strconv.Atoi(rows)
		if err != nil || n < 1 || n > MaxTailRows {
			return f, errorf(http.StatusBadRequest, "rows: %q is not a number from 1 to %d (MaxTailRows)", clip(rows), MaxTailRows)
		}
		f.Rows = n
	}
	return f, nil
}

// matches says whether an entry passes the filter (for a record the viewer may read).
func (f filter) matches(e *oar.Entry) bool {
	if e.Seal != nil {
		return f.Seals && f.Action == "" && f.Actor == "" && f.Tenant == "" && f.Resource == "" && f.Effect == ""
	}
	r := e.Record
	switch {
	case f.Action != "" && !strings.HasPrefix(r.Action, f.Action):
	case f.Actor != "" && r.Actor.ID != f.Actor:
	case f.Tenant != "" && r.Tenant != f.Tenant:
	case f.Resource != "" && !strings.Contains(r.Resource, f.Resource):
	case f.Effect != "" && (r.Decision == nil || r.Decision.Effect != f.Effect):
	default:
		return true
	}
	return false
}

// query is the filter as query parameters (for the link to earlier entries).
func (f filter) query(before uint64) string {
	q := []string{"before=" + strconv.FormatUint(before, 10), "rows=" + strconv.Itoa(f.Rows)}
	for _, kv := range [][2]string{{"action", f.Action}, {"actor", f.Actor}, {"tenant", f.Tenant}, {"resource", f.Resource}, {"effect", f.Effect}} {
		if kv[1] != "" {
			q = append(q, kv[0]+"="+url.QueryEscape(kv[1]))
		}
	}
	if f.Seals {
		q = append(q, "seals=on")
	}
	return strings.Join(q, "&")
}

type tailRow struct {
	Index          uint64
	Time           string
	Kind           string
	Action         string
	Actor          string
	Tenant         string
	Resource       string
	Effect         string
	Classification string
}

type auditView struct {
	Filter    filter
	Rows      []tailRow
	Size      uint64 // entries in the checkpointed log
	Lowest    uint64 // the lowest index examined
	More      string // the query of the next page, if there is more to see
	Empty     bool
	MayVerify bool
	Running   string // a verification in progress, to watch
}

func auditData(v *View) (any, error) {
	f, err := parseFilter(v.r)
	if err != nil {
		return nil, err
	}
	out := &auditView{Filter: f, MayVerify: v.mayReadNodeRecords()}
	if out.MayVerify {
		out.Running = v.c.verifies.runningID()
	}
	r, size, end, err := v.tailFrom(f.Before)
	if err != nil {
		return nil, err
	}
	if r == nil {
		out.Empty = true
		return out, nil
	}
	out.Size = size
	out.Lowest, err = backwards(v.r.Context(), r, end, MaxTailScan, func(e entry) bool {
		if e.Entry == nil {
			return true // verification reports it; there is nothing to show
		}
		if e.Entry.Record != nil && !v.mayRead(e.Index, e.Entry.Record) {
			return true
		}
		if !f.matches(e.Entry) {
			return true
		}
		out.Rows = append(out.Rows, rowOf(e))
		return len(out.Rows) < f.Rows
	})
	if err != nil {
		return nil, err
	}
	if out.Lowest > 0 {
		out.More = f.query(out.Lowest)
	}
	return out, nil
}

func rowOf(e entry) tailRow {
	if s := e.Entry.Seal; s != nil {
		return tailRow{Index: e.Index, Time: s.Time, Kind: oar.KindSeal,
			Action: fmt.Sprintf("seal %d of records %d–%d", s.Seq, s.First, s.First+s.Count-1)}
	}
	r := e.Entry.Record
	row := tailRow{Index: e.Index, Time: r.Time, Kind: oar.KindRecord, Action: r.Action, Actor: r.Actor.ID, Tenant: r.Tenant,
		Resource: r.Resource, Classification: r.Classification}
	if r.Decision != nil {
		row.Effect = r.Decision.Effect
	}
	return row
}
