// Package admin is a node's admin API: the operator's channel to a running node, over a
// unix socket in the data directory (socket.go), so that whoever may read the node's
// keys may administer it and nobody else can reach it. The CLI uses it to act through
// the running node, which holds the ledger (Dial, Client.Do). Handlers return errors;
// one function renders them.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/invoke"
	"github.com/sios-project/sios/jcs"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/memory"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
	"github.com/sios-project/sios/replication"
	"github.com/sios-project/sios/roles"
)

// Deps is what the admin API acts on: the running node's subsystems.
type Deps struct {
	DataDir    string
	NodeID     string
	Listen     string // the API address, for status
	Ledger     *ledger.Ledger
	Principals *policy.Principals
	Memory     *memory.Ops
	// Fleet is nil when the node runs alone; so is Replication.
	Fleet       *fleet.Fleet
	FleetLog    *fleet.Log
	Feed        *fleet.Publisher
	Replication *replication.Replication
	Routes      func() map[string][]invoke.RouteCandidate
	// Cert is the node's enrolment certificate (its institution, for trust changes).
	Cert identity.Certificate
	// TrustChanged makes the running node re-read its trust store at once and evict
	// the peers of institutions no longer pinned; it returns their ids.
	TrustChanged func() []string
	// AttestAgain makes the running node check again, under the EKs now pinned, the
	// TPMs of an institution's peers (after remove-ek), and returns their ids.
	AttestAgain func(institution string) []string
	// SetReplica designates or withdraws a replica in the configuration and the
	// running node.
	SetReplica func(c replication.ReplicaConfig, remove bool) error
	// Roles keeps the institution's chartered roles (nil: none).
	Roles *roles.Keeper
	// Trace gathers the trace of a record of this node's log, named by index or hash.
	Trace func(ctx context.Context, record string) ([]byte, error)
}

// errNoFleet answers fleet questions on a node that runs alone.
var errNoFleet = errors.New("this node runs without a fleet: start it with 'sios up --fleet-listen ADDR [--join ADDR]'")

// errConflict marks a request that conflicts with what exists (409).
var errConflict = errors.New("conflict")

// errBadRequest marks a request the admin API cannot take as given (400).
var errBadRequest = errors.New("bad request")

type handler func(r *http.Request) (any, error)

type route struct {
	pattern string
	h       handler
}

// routes are the admin API's routes (docs/api.md lists them).
func (d Deps) routes() []route {
	rs := []route{
		{"POST /admin/principals", d.addPrincipal},
		{"POST /admin/audit/append", d.appendRecord},
		{"POST /admin/trust", d.changeTrust},
		{"GET /admin/debug/profile", d.profile},
		{"GET /admin/status", func(*http.Request) (any, error) { return d.Status(), nil }},
	}
	rs = append(rs, d.principalRoutes()...)
	rs = append(rs, d.memoryRoutes()...)
	rs = append(rs, d.roleRoutes()...)
	rs = append(rs, d.traceRoutes()...)
	return append(rs, d.fleetRoutes()...)
}

// Patterns lists the admin API's routes, as "METHOD /path".
func Patterns() []string {
	var out []string
	for _, r := range (Deps{}).routes() {
		out = append(out, r.pattern)
	}
	return out
}

// Handler is the admin API.
func Handler(d Deps) http.Handler {
	mux := http.NewServeMux()
	for _, rt := range d.routes() {
		h := rt.h
		mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) {
			out, err := h(r)
			if err != nil {
				renderError(w, err)
				return
			}
			if b, ok := out.(raw); ok {
				w.Header().Set("Content-Type", b.contentType)
				w.Write(b.body)
				return
			}
			writeJSON(w, out)
		})
	}
	return mux
}

// decode reads a JSON request body of at most maxBody bytes into v, strictly
// (jcs.DecodeStrict): a misspelt, differently cased or repeated member in an
// operator's request is an error naming it, not a setting silently dropped.
func decode(r *http.Request, v any) error {
	b, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("%w: the request is more than %d bytes (maxBody)", errBadRequest, maxBody)
		}
		return fmt.Errorf("%w: %v", errBadRequest, err)
	}
	if err := jcs.DecodeStrict(b, v); err != nil {
		return fmt.Errorf("%w: %v", errBadRequest, err)
	}
	return nil
}

// renderError answers an error with its text: the admin API's caller is the node's
// operator, who may see everything the node sees.
func renderError(w http.ResponseWriter, err error) {
	status := http.StatusBadRequest
	switch {
	case errors.Is(err, errConflict), errors.Is(err, policy.ErrPrincipalExists):
		status = http.StatusConflict
	case errors.Is(err, errNoFleet):
		status = http.StatusConflict
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// PrincipalRequest is the admin API's body for adding a principal.
type PrincipalRequest struct {
	Tenant    string   `json:"tenant"`
	ID        string   `json:"id"`
	Kind      string   `json:"kind,omitempty"`
	Clearance string   `json:"clearance"`
	Roles     []string `json:"roles,omitempty"`
}

// PrincipalResponse returns the new API key, once.
type PrincipalResponse struct {
	Tenant    string       `json:"tenant"`
	ID        string       `json:"id"`
	Clearance string       `json:"clearance"`
	Roles     []string     `json:"roles,omitempty"`
	APIKey    string       `json:"api_key"`
	Receipt   *oar.Receipt `json:"receipt,omitempty"`
}

func (d Deps) addPrincipal(r *http.Request) (any, error) {
	var req PrincipalRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	return AddPrincipal(r.Context(), d.Principals, d.Ledger.Append, "operator", policy.NewPrincipal{
		Tenant: req.Tenant, ID: req.ID, Kind: req.Kind, Clearance: req.Clearance, Roles: req.Roles})
}

// AddPrincipal adds a principal and records it (never its key): through the running
// node's admin API, or by the CLI on a data directory no node holds.
func AddPrincipal(ctx context.Context, ps *policy.Principals, appendFn func(context.Context, *oar.Record) (*oar.Receipt, []byte, error),
	actor string, np policy.NewPrincipal) (*PrincipalResponse, error) {
	var rc *oar.Receipt
	key, sp, err := ps.AddRecorded(np, time.Now(), func(sp *policy.StoredPrincipal) error {
		var err error
		rc, err = AuditPrincipalAdd(ctx, appendFn, actor, sp)
		return err
	})
	if err != nil {
		return nil, err
	}
	return &PrincipalResponse{Tenant: sp.Tenant, ID: sp.ID, Clearance: sp.Clearance, Roles: sp.Roles, APIKey: key, Receipt: rc}, nil
}

// AuditPrincipalAdd writes the record of a principal's creation (never its key).
func AuditPrincipalAdd(ctx context.Context, appendFn func(context.Context, *oar.Record) (*oar.Receipt, []byte, error),
	actor string, sp *policy.StoredPrincipal) (*oar.Receipt, error) {
	detail, _ := json.Marshal(map[string]any{"clearance": sp.Clearance, "roles": sp.Roles, "kind": sp.Kind})
	rc, _, err := appendFn(ctx, &oar.Record{
		Tenant: sp.Tenant, Actor: oar.Actor{ID: actor}, Action: oar.ActionPrincipalAdd,
		Resource: "principal/" + sp.Tenant + "/" + sp.ID, Decision: &oar.Decision{Effect: "allow", Policies: []string{"operator"}},
		Detail: detail,
	})
	return rc, err
}

// Status is what GET /admin/status answers.
type Status struct {
	NodeID  string `json:"node_id"`
	Listen  string `json:"listen"`
	LogSize uint64 `json:"log_size"`
}

// Status is the running node's id, API address and log size.
func (d Deps) Status() Status {
	return Status{NodeID: d.NodeID, Listen: d.Listen, LogSize: d.Ledger.Size()}
}

// AppendRequest appends one record through the node.
type AppendRequest struct {
	Record *oar.Record `json:"record"`
}

func (d Deps) appendRecord(r *http.Request) (any, error) {
	var req AppendRequest
	if err := decode(r, &req); err != nil {
		return nil, err
	}
	if req.Record == nil {
		return nil, fmt.Errorf("%w: body must be {\"record\": {...}}", errBadRequest)
	}
	rc, _, err := d.Ledger.Append(r.Context(), req.Record)
	return rc, err
}
