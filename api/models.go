package api

import (
	"net/http"

	"github.com/sios-project/sios/policy"
)

func (s *Server) models(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
	ms := []Model{}
	for _, m := range s.gw.Models(p) {
		owner := m.OwnedBy
		if owner == "" {
			owner = "sios"
		}
		ms = append(ms, Model{ID: m.ID, Object: "model", Created: m.Created, OwnedBy: owner, Kind: m.Kind, Classification: m.Classification, Title: m.Title})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": ms})
	return nil
}
