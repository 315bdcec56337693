package api

import (
	"encoding/json"
	"net/http"
)

// Check is one readiness check: its name, whether it passes, and what it found.
type Check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail"`
}

// SetReadiness gives the server the checks /readyz runs. Call it before serving;
// without it /readyz answers as /healthz.
func (s *Server) SetReadiness(checks func() []Check) { s.ready = checks }

// readyz answers 200 when every check passes, 503 otherwise, with each check's
// finding; no authentication (it names no principal, brain or record).
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	var checks []Check
	if s.ready != nil {
		checks = s.ready()
	}
	status, code := "ready", http.StatusOK
	for _, c := range checks {
		if !c.OK {
			status, code = "not ready", http.StatusServiceUnavailable
		}
	}
	if checks == nil {
		checks = []Check{}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]any{"status": status, "checks": checks})
}
