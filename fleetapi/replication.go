package fleetapi

import (
	"fmt"
	"io"
	"net/http"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/replication"
)

// The audit replication routes (package replication does the work).

func (a *API) notify(w http.ResponseWriter, r *http.Request, peer *identity.Certificate) error {
	body, err := io.ReadAll(io.LimitReader(r.Body, replication.MaxNotify+1))
	if err != nil {
		return err
	}
	if len(body) > replication.MaxNotify {
		return fmt.Errorf("%w: the body is larger than %d bytes", replication.ErrBadRequest, replication.MaxNotify)
	}
	ans, err := a.cfg.Replication.Notify(peer, body)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ans)
	return nil
}

func (a *API) logFile(w http.ResponseWriter, r *http.Request, peer *identity.Certificate) error {
	b, err := a.cfg.Replication.LogFile(peer, r.PathValue("path"))
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(b)
	return nil
}

func (a *API) checkpoint(w http.ResponseWriter, r *http.Request, _ *identity.Certificate) error {
	b, err := a.cfg.Replication.CosignedCheckpoint()
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write(b)
	return nil
}

func (a *API) consistency(w http.ResponseWriter, r *http.Request, peer *identity.Certificate) error {
	ans, err := a.cfg.Replication.Consistency(r.Context(), peer, r.URL.Query().Get("from"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ans)
	return nil
}

func (a *API) copyCheckpoint(w http.ResponseWriter, r *http.Request, peer *identity.Certificate) error {
	ans, err := a.cfg.Replication.CopyCheckpoint(peer)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, ans)
	return nil
}

func (a *API) addCheckpoint(w http.ResponseWriter, r *http.Request, _ *identity.Certificate) error {
	h := a.cfg.Replication.WitnessHandler()
	if h == nil {
		return errUnavailable
	}
	h.ServeHTTP(w, r)
	return nil
}
