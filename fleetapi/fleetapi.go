// Package fleetapi serves a node's fleet API: the HTTP routes peers reach over the
// fleet's mutual TLS — remote calls (invoke.go), governed memory searches under a
// consent grant (memory_search.go, consent.go), audit replication and comparison, and
// the witness. Every route first establishes the connecting peer's identity and its
// institution's current trust, per request, so that a root unpinned while a connection
// stays open is refused on that connection too. Handlers return errors; one function
// renders them, and no internal error text (a path, an I/O failure) reaches a peer.
package fleetapi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sios-project/sios/deliberate"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/ratelimit"
	"github.com/sios-project/sios/replication"
	"github.com/sios-project/sios/trace"
)

// Config is what the fleet API serves from.
type Config struct {
	Identity    *identity.Node
	Pipeline    *invoke.Pipeline
	Replication *replication.Replication
	// FleetLog holds the peers' verified identities and postures.
	FleetLog *fleet.Log
	// PeerRequestsPerMinute is the rate of remote calls from all peers together that
	// this node serves (its limits record states it).
	PeerRequestsPerMinute int
	// Attestor answers peers' TPM challenges; nil when the node's key is not sealed to
	// a TPM (the route then answers 404).
	Attestor fleet.Attestor
	Log      *slog.Logger
	// Decisions makes this node's ballots for peers' decisions (nil: none are served).
	Decisions Contributor
	// Trace answers peers' requests for their parts of traces (nil: none are served).
	Trace TraceParts
}

// PeerOf identifies the peer of a request by its TLS client certificate, checking it
// against the institutions trusted now (fleet.Fleet.PeerOf).
type PeerOf func(r *http.Request) (*identity.Certificate, error)

// API is the fleet API. It is safe for concurrent use.
type API struct {
	cfg    Config
	peerOf atomic.Pointer[PeerOf] // nil until the fleet has started
	replay *fleet.ReplayGuard
	limits *ratelimit.Limiter
}

// New returns the fleet API; it refuses every request until SetPeerOf.
func New(cfg Config) *API {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &API{cfg: cfg, replay: fleet.NewReplayGuard(time.Now()), limits: ratelimit.New(nil)}
}

// SetPeerOf gives the API the fleet's peer identification, once the fleet has started.
func (a *API) SetPeerOf(f PeerOf) { a.peerOf.Store(&f) }

// errPeer marks a request whose peer is not (or no longer) trusted.
var errPeer = errors.New("peer identity")

// peer is the verified, currently trusted peer of r.
func (a *API) peer(r *http.Request) (*identity.Certificate, error) {
	f := a.peerOf.Load()
	if f == nil {
		return nil, errNotReady
	}
	cert, err := (*f)(r)
	if err != nil {
		return nil, errors.Join(errPeer, err)
	}
	return cert, nil
}

type handler func(w http.ResponseWriter, r *http.Request, peer *identity.Certificate) error

// Handler is the fleet API's routes.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+fleet.InvokePath, a.serveInvoke)
	mux.HandleFunc("POST "+fleet.MemorySearchPath, a.serveMemorySearch)
	mux.HandleFunc("POST "+deliberate.CallPath, a.serveDecide)
	mux.HandleFunc("POST "+trace.PartPath, a.route(a.tracePart))
	mux.HandleFunc("POST /fleet/v1/audit/notify", a.route(a.notify))
	mux.HandleFunc("GET /fleet/v1/audit/log/{path...}", a.route(a.logFile))
	mux.HandleFunc("GET /fleet/v1/audit/checkpoint", a.route(a.checkpoint))
	mux.HandleFunc("GET /fleet/v1/audit/consistency", a.route(a.consistency))
	mux.HandleFunc("GET /fleet/v1/audit/copy", a.route(a.copyCheckpoint))
	mux.HandleFunc("POST "+fleet.AttestPath, a.route(a.attest))
	mux.HandleFunc("POST "+replication.WitnessPrefix+"/add-checkpoint", a.route(a.addCheckpoint)) // C2SP tlog-witness
	return mux
}

// route checks the peer, runs h, and renders its error.
func (a *API) route(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		cert, err := a.peer(r)
		if err == nil {
			err = h(w, r, cert)
		}
		if err != nil {
			a.render(w, r, err)
		}
	}
}

// render answers an error: its own text for refusals meant for the peer, a bare
// "internal error" (with the detail in this node's log) for anything else.
func (a *API) render(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := http.StatusInternalServerError, "internal error"
	switch {
	case errors.Is(err, errPeer):
		status, msg = http.StatusForbidden, oneLine(err)
	case errors.Is(err, replication.ErrForbidden):
		status, msg = http.StatusForbidden, strings.TrimPrefix(err.Error(), replication.ErrForbidden.Error()+": ")
	case errors.Is(err, replication.ErrNotFound):
		status, msg = http.StatusNotFound, strings.TrimPrefix(err.Error(), replication.ErrNotFound.Error()+": ")
	case errors.Is(err, replication.ErrBadRequest):
		status, msg = http.StatusBadRequest, strings.TrimPrefix(err.Error(), replication.ErrBadRequest.Error()+": ")
	case errors.Is(err, errUnavailable), errors.Is(err, errNotReady):
		status, msg = http.StatusServiceUnavailable, err.Error()
	default:
		a.cfg.Log.Error("fleet API", "path", r.URL.Path, "err", err)
	}
	if strings.HasPrefix(r.URL.Path, "/fleet/v1/audit/notify") {
		// A source reads the notify answer as JSON.
		writeJSON(w, status, replication.NotifyMsg{Error: msg})
		return
	}
	http.Error(w, msg, status)
}

var errUnavailable = errors.New("this node's witness is not available")

// errNotReady answers a peer that reaches the fleet API in the moment between the
// fleet's start and the API's: it may ask again at once.
var errNotReady = errors.New("the fleet is not running yet")

func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", ": ") }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// audit records a refusal at the fleet's door.
func (a *API) audit(rec *oar.Record) {
	if _, err := a.cfg.Pipeline.Audit(context.Background(), rec); err != nil {
		a.cfg.Log.Error("audit", "action", rec.Action, "err", err)
	}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// truncate cuts s to at most n bytes on a character boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}
