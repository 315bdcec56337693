package admin

import (
	"net/http"

	"github.com/sios-project/sios/memory"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// MemoryRequest is the admin API's body for memory operations, which the operator
// makes for any tenant.
type MemoryRequest struct {
	Tenant         string `json:"tenant"`
	Subject        string `json:"subject,omitempty"`
	Classification string `json:"classification,omitempty"`
	Clearance      string `json:"clearance,omitempty"`
	Source         string `json:"source,omitempty"`
	Text           string `json:"text,omitempty"`
	Limit          int    `json:"limit,omitempty"`
}

// Operator is who the admin API and the CLI act as; their actions are audited as such.
var Operator = oar.Actor{ID: "operator"}

// OperatorAllow is the decision recorded for an operator's action.
var OperatorAllow = &oar.Decision{Effect: "allow", Policies: []string{"operator"}}

func (d Deps) memoryRoutes() []route {
	var rs []route
	memoryRoute := func(path string, f func(r *http.Request, req *MemoryRequest) (any, error)) {
		rs = append(rs, route{"POST " + path, func(r *http.Request) (any, error) {
			var req MemoryRequest
			if err := decode(r, &req); err != nil {
				return nil, err
			}
			return f(r, &req)
		}})
	}
	memoryRoute("/admin/memory/add", func(r *http.Request, req *MemoryRequest) (any, error) {
		lvl, err := policy.ParseLevel(req.Classification)
		if err != nil {
			return nil, err
		}
		m, _, err := d.Memory.Add(r.Context(), Operator, OperatorAllow, memory.NewMemory{Tenant: req.Tenant, Subject: req.Subject,
			Classification: lvl, Source: req.Source, Text: req.Text})
		return m, err
	})
	memoryRoute("/admin/memory/search", func(r *http.Request, req *MemoryRequest) (any, error) {
		lvl, err := policy.ParseLevel(req.Clearance)
		if err != nil {
			return nil, err
		}
		res, _, err := d.Memory.Search(r.Context(), Operator, OperatorAllow, memory.Query{Tenant: req.Tenant, Subject: req.Subject,
			Clearance: lvl, Text: req.Text, Limit: req.Limit})
		if res == nil {
			res = []memory.Result{}
		}
		return res, err
	})
	memoryRoute("/admin/memory/export", func(r *http.Request, req *MemoryRequest) (any, error) {
		ex, _, err := d.Memory.Export(r.Context(), Operator, OperatorAllow, req.Tenant, req.Subject, policy.TopSecret)
		return ex, err
	})
	memoryRoute("/admin/memory/forget", func(r *http.Request, req *MemoryRequest) (any, error) {
		f, _, err := d.Memory.Forget(r.Context(), Operator, OperatorAllow, req.Tenant, req.Subject, policy.TopSecret)
		return f, err
	})
	return rs
}
