package api

import (
	"context"
	"net/http"

	"github.com/sios-project/sios/memory"
	"github.com/sios-project/sios/policy"
)

// MemoryGateway is what the memory endpoints need from a node. Every call is governed
// by policy (memory.read / memory.write) and audited; the string returned is the
// X-Sios-Receipt of the call's audit record.
type MemoryGateway interface {
	MemoryAdd(ctx context.Context, p *policy.Principal, req *MemoryAddRequest) (*memory.Memory, string, error)
	MemorySearch(ctx context.Context, p *policy.Principal, req *MemorySearchRequest) ([]memory.Result, string, error)
	MemoryExport(ctx context.Context, p *policy.Principal, subject string) (*memory.Export, string, error)
	MemoryForget(ctx context.Context, p *policy.Principal, subject string) (*memory.Forgotten, string, error)
}

// MemoryAddRequest is POST /v1/memory.
type MemoryAddRequest struct {
	Subject        string `json:"subject"`
	Classification string `json:"classification"`
	Source         string `json:"source,omitempty"`
	Text           string `json:"text"`
}

// MemorySearchRequest is POST /v1/memory/search.
type MemorySearchRequest struct {
	Query   string `json:"query"`
	Subject string `json:"subject,omitempty"`
	Limit   int    `json:"limit,omitempty"`
}

// MemorySubjectRequest names a subject (export, forget).
type MemorySubjectRequest struct {
	Subject string `json:"subject"`
}

func (s *Server) memoryRoutes(mg MemoryGateway) {
	s.mux.HandleFunc("POST /v1/memory", s.authed(func(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
		var req MemoryAddRequest
		if err := decodeBody(w, r, &req); err != nil {
			return err
		}
		m, rc, err := mg.MemoryAdd(r.Context(), p, &req)
		if err != nil {
			return err
		}
		w.Header().Set(ReceiptHeader, rc)
		writeJSON(w, http.StatusOK, m)
		return nil
	}))
	s.mux.HandleFunc("POST /v1/memory/search", s.authed(func(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
		var req MemorySearchRequest
		if err := decodeBody(w, r, &req); err != nil {
			return err
		}
		res, rc, err := mg.MemorySearch(r.Context(), p, &req)
		if err != nil {
			return err
		}
		if res == nil {
			res = []memory.Result{}
		}
		w.Header().Set(ReceiptHeader, rc)
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": res})
		return nil
	}))
	s.mux.HandleFunc("POST /v1/memory/export", s.authed(func(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
		var req MemorySubjectRequest
		if err := decodeBody(w, r, &req); err != nil {
			return err
		}
		ex, rc, err := mg.MemoryExport(r.Context(), p, req.Subject)
		if err != nil {
			return err
		}
		w.Header().Set(ReceiptHeader, rc)
		writeJSON(w, http.StatusOK, ex)
		return nil
	}))
	s.mux.HandleFunc("POST /v1/memory/forget", s.authed(func(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
		var req MemorySubjectRequest
		if err := decodeBody(w, r, &req); err != nil {
			return err
		}
		f, rc, err := mg.MemoryForget(r.Context(), p, req.Subject)
		if err != nil {
			return err
		}
		w.Header().Set(ReceiptHeader, rc)
		writeJSON(w, http.StatusOK, map[string]any{"tenant": f.Tenant, "subject": f.Subject, "forgotten": len(f.IDs)})
		return nil
	}))
}
