package api

import (
	"fmt"
	"net/http"
	"unicode/utf8"

	"github.com/sios-project/sios/memory"
	"github.com/sios-project/sios/policy"
)

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

// checkMemoryRequest refuses what the store would, with OpenAI-shaped 400s.
func checkMemoryRequest(subject, text string, needText bool) error {
	bad := func(param, msg string) error {
		return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_memory", Param: param, Message: msg}
	}
	switch {
	case subject == "":
		return bad("subject", "subject is required")
	case len(subject) > memory.MaxNameBytes:
		return bad("subject", fmt.Sprintf("subject is longer than %d bytes (MaxNameBytes)", memory.MaxNameBytes))
	case needText && text == "":
		return bad("text", "text is required")
	case len(text) > memory.MaxTextBytes:
		return bad("text", fmt.Sprintf("text is longer than %d bytes (MaxTextBytes)", memory.MaxTextBytes))
	case !utf8.ValidString(text) || !utf8.ValidString(subject):
		return bad("text", "subject and text must be valid UTF-8")
	}
	return nil
}

func (s *Server) memoryRoutes(mg MemoryGateway) {
	s.mux.HandleFunc("POST /v1/memory", s.authed(func(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
		var req MemoryAddRequest
		if err := decodeBody(w, r, &req); err != nil {
			return err
		}
		if err := checkMemoryRequest(req.Subject, req.Text, true); err != nil {
			return err
		}
		class := req.Classification
		if class == "" {
			class = "OFFICIAL"
		}
		lvl, err := policy.ParseLevel(class)
		if err != nil {
			return &Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "invalid_classification", Param: "classification", Message: err.Error()}
		}
		m, rc, err := mg.MemoryAdd(r.Context(), p, req.Subject, lvl, req.Source, req.Text)
		if err != nil {
			return err
		}
		setReceipt(w.Header(), w, rc)
		writeJSON(w, http.StatusOK, m)
		return nil
	}))
	s.mux.HandleFunc("POST /v1/memory/search", s.authed(func(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
		var req MemorySearchRequest
		if err := decodeBody(w, r, &req); err != nil {
			return err
		}
		res, rc, err := mg.MemorySearch(r.Context(), p, req.Subject, req.Query, req.Limit)
		if err != nil {
			return err
		}
		if res == nil {
			res = []memory.Result{}
		}
		setReceipt(w.Header(), w, rc)
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": res})
		return nil
	}))
	s.mux.HandleFunc("POST /v1/memory/export", s.authed(func(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
		var req MemorySubjectRequest
		if err := decodeBody(w, r, &req); err != nil {
			return err
		}
		if err := checkMemoryRequest(req.Subject, "", false); err != nil {
			return err
		}
		ex, rc, err := mg.MemoryExport(r.Context(), p, req.Subject)
		if err != nil {
			return err
		}
		setReceipt(w.Header(), w, rc)
		writeJSON(w, http.StatusOK, ex)
		return nil
	}))
	s.mux.HandleFunc("POST /v1/memory/forget", s.authed(func(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
		var req MemorySubjectRequest
		if err := decodeBody(w, r, &req); err != nil {
			return err
		}
		if err := checkMemoryRequest(req.Subject, "", false); err != nil {
			return err
		}
		f, rc, err := mg.MemoryForget(r.Context(), p, req.Subject)
		if err != nil {
			return err
		}
		setReceipt(w.Header(), w, rc)
		writeJSON(w, http.StatusOK, map[string]any{"tenant": f.Tenant, "subject": f.Subject, "forgotten": len(f.IDs)})
		return nil
	}))
}
