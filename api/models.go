package api

import (
	"net/http"

	"github.com/sios-project/sios/policy"
)

func (s *Server) models(w http.ResponseWriter, r *http.Request, p *policy.Principal) error {
	ms, err := s.gw.Models(r.Context(), p)
	if err != nil {
		return err
	}
	for i := range ms {
		ms[i].Object = "model"
		if ms[i].OwnedBy == "" {
			ms[i].OwnedBy = "sios"
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": ms})
	return nil
}
