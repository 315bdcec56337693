package node

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/sios-project/sios/memory"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// AdminMemoryRequest is the admin API's body for memory operations, which the
// operator makes for any tenant.
type AdminMemoryRequest struct {
	Tenant         string `json:"tenant"`
	Subject        string `json:"subject,omitempty"`
	Classification string `json:"classification,omitempty"`
	Clearance      string `json:"clearance,omitempty"`
	Source         string `json:"source,omitempty"`
	Text           string `json:"text,omitempty"`
	Limit          int    `json:"limit,omitempty"`
}

var operator = oar.Actor{ID: "operator"}

var operatorAllow = &oar.Decision{Effect: "allow", Policies: []string{"operator"}}

func (n *Node) adminMemoryRoutes(mux *http.ServeMux) {
	handle := func(path string, f func(ctx context.Context, req *AdminMemoryRequest) (any, error)) {
		mux.HandleFunc("POST "+path, func(w http.ResponseWriter, r *http.Request) {
			var req AdminMemoryRequest
			if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
				adminError(w, http.StatusBadRequest, err)
				return
			}
			out, err := f(r.Context(), &req)
			if err != nil {
				adminError(w, http.StatusBadRequest, err)
				return
			}
			writeAdmin(w, out)
		})
	}
	handle("/admin/memory/add", func(bg context.Context, req *AdminMemoryRequest) (any, error) {
		lvl, err := policy.ParseLevel(req.Classification)
		if err != nil {
			return nil, err
		}
		m, _, err := n.memory.Add(bg, operator, operatorAllow, memory.NewMemory{Tenant: req.Tenant, Subject: req.Subject,
			Classification: lvl, Source: req.Source, Text: req.Text})
		return m, err
	})
	handle("/admin/memory/search", func(bg context.Context, req *AdminMemoryRequest) (any, error) {
		lvl, err := policy.ParseLevel(req.Clearance)
		if err != nil {
			return nil, err
		}
		res, _, err := n.memory.Search(bg, operator, operatorAllow, memory.Query{Tenant: req.Tenant, Subject: req.Subject,
			Clearance: lvl, Text: req.Text, Limit: req.Limit})
		if res == nil {
			res = []memory.Result{}
		}
		return res, err
	})
	handle("/admin/memory/export", func(bg context.Context, req *AdminMemoryRequest) (any, error) {
		ex, _, err := n.memory.Export(bg, operator, operatorAllow, req.Tenant, req.Subject, policy.TopSecret)
		return ex, err
	})
	handle("/admin/memory/forget", func(bg context.Context, req *AdminMemoryRequest) (any, error) {
		f, _, err := n.memory.Forget(bg, operator, operatorAllow, req.Tenant, req.Subject)
		return f, err
	})
}
