package fleetapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/trace"
)

// A peer's request for its part of a trace (POST trace.PartPath): records of this
// node's log, each with an inclusion proof into its signed checkpoint, given only to a
// node that is itself a party to the record (its signed bytes are in it). A record the
// peer may not have is answered as one that does not exist.

// Each peer may ask for parts of traces at most tracePartsPerMinute times a minute:
// finding a record by hash can read the whole log.
const tracePartsPerMinute = 120

// TraceParts answers requests for parts of traces (trace.Server).
type TraceParts interface {
	Part(ctx context.Context, requester string, req trace.PartRequest) (*trace.Part, error)
}

func (a *API) tracePart(w http.ResponseWriter, r *http.Request, peer *identity.Certificate) error {
	if a.cfg.Trace == nil {
		http.Error(w, "this node serves no parts of traces", http.StatusNotFound)
		return nil
	}
	if ok, wait := a.limits.Take("fleet/trace/"+peer.NodeID, tracePartsPerMinute, tracePartsPerMinute/4); !ok {
		w.Header().Set("Retry-After", fmt.Sprint(int(wait.Seconds())+1))
		http.Error(w, fmt.Sprintf("at most %d requests for parts of traces a minute from one peer", tracePartsPerMinute), http.StatusTooManyRequests)
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, trace.MaxPartRequest+1))
	if err != nil {
		return nil
	}
	req, err := trace.ParsePartRequest(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return nil
	}
	p, err := a.cfg.Trace.Part(r.Context(), peer.NodeID, req)
	switch {
	case errors.Is(err, trace.ErrNotAvailable):
		http.Error(w, trace.ErrNotAvailable.Error(), http.StatusNotFound)
		return nil
	case err != nil:
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}
