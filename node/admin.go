package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// The admin API listens on a unix socket in the data directory, mode 0600: whoever may
// read the node's keys may administer it, and nobody else can reach it. The CLI uses it
// to act through a running node (which holds the ledger).

// maxSocketPath is the longest unix socket path the kernel takes (sun_path, less NUL).
const maxSocketPath = 107

// AdminSocket is the admin socket's path: DIR/admin.sock, or, when that is too long
// for a unix socket, a name in the temporary directory derived from DIR's absolute path
// (still mode 0600, so only the data directory's owner can connect).
func AdminSocket(dataDir string) string {
	path := filepath.Join(dataDir, "admin.sock")
	if len(path) <= maxSocketPath {
		return path
	}
	abs, err := filepath.Abs(dataDir)
	if err != nil {
		abs = dataDir
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(os.TempDir(), fmt.Sprintf("sios-admin-%x.sock", sum[:8]))
}

func listenAdmin(dataDir string) (net.Listener, error) {
	path := AdminSocket(dataDir)
	os.Remove(path) // a stale socket from a killed node; the ledger lock proves we own the directory
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin socket: %v", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// AddPrincipal adds a principal and audits it.
func (n *Node) AddPrincipal(ctx context.Context, actor string, np policy.NewPrincipal) (string, *policy.StoredPrincipal, *oar.Receipt, error) {
	key, sp, err := n.principals.Add(np, time.Now())
	if err != nil {
		return "", nil, nil, err
	}
	rc, err := AuditPrincipalAdd(ctx, n.ledger.Append, actor, sp)
	return key, sp, rc, err
}

// AuditPrincipalAdd writes the record of a principal's creation (never its key).
func AuditPrincipalAdd(ctx context.Context, appendFn func(context.Context, *oar.Record) (*oar.Receipt, []byte, error),
	actor string, sp *policy.StoredPrincipal) (*oar.Receipt, error) {
	detail, _ := json.Marshal(map[string]any{"clearance": sp.Clearance, "roles": sp.Roles, "kind": sp.Kind})
	rc, _, err := appendFn(ctx, &oar.Record{
		Tenant: sp.Tenant, Actor: oar.Actor{ID: actor}, Action: "principal.add",
		Resource: "principal/" + sp.Tenant + "/" + sp.ID, Decision: &oar.Decision{Effect: "allow", Policies: []string{"operator"}},
		Detail: detail,
	})
	return rc, err
}

// AdminPrincipalRequest is the admin API's body for adding a principal.
type AdminPrincipalRequest struct {
	Tenant    string   `json:"tenant"`
	ID        string   `json:"id"`
	Kind      string   `json:"kind,omitempty"`
	Clearance string   `json:"clearance"`
	Roles     []string `json:"roles,omitempty"`
}

// AdminPrincipalResponse returns the new API key, once.
type AdminPrincipalResponse struct {
	Tenant    string       `json:"tenant"`
	ID        string       `json:"id"`
	Clearance string       `json:"clearance"`
	Roles     []string     `json:"roles,omitempty"`
	APIKey    string       `json:"api_key"`
	Receipt   *oar.Receipt `json:"receipt,omitempty"`
}

// AdminAppendRequest appends one record through the node.
type AdminAppendRequest struct {
	Record *oar.Record `json:"record"`
}

func (n *Node) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /admin/principals", func(w http.ResponseWriter, r *http.Request) {
		var req AdminPrincipalRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
			adminError(w, http.StatusBadRequest, err)
			return
		}
		key, sp, rc, err := n.AddPrincipal(r.Context(), "operator", policy.NewPrincipal{
			Tenant: req.Tenant, ID: req.ID, Kind: req.Kind, Clearance: req.Clearance, Roles: req.Roles})
		if err != nil {
			status := http.StatusBadRequest
			if errors.Is(err, policy.ErrPrincipalExists) {
				status = http.StatusConflict
			}
			adminError(w, status, err)
			return
		}
		writeAdmin(w, AdminPrincipalResponse{Tenant: sp.Tenant, ID: sp.ID, Clearance: sp.Clearance, Roles: sp.Roles, APIKey: key, Receipt: rc})
	})
	mux.HandleFunc("POST /admin/audit/append", func(w http.ResponseWriter, r *http.Request) {
		var req AdminAppendRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil || req.Record == nil {
			adminError(w, http.StatusBadRequest, fmt.Errorf("body must be {\"record\": {...}}"))
			return
		}
		rc, _, err := n.ledger.Append(r.Context(), req.Record)
		if err != nil {
			adminError(w, http.StatusBadRequest, err)
			return
		}
		writeAdmin(w, rc)
	})
	n.adminMemoryRoutes(mux)
	n.adminFleetRoutes(mux)
	mux.HandleFunc("GET /admin/status", func(w http.ResponseWriter, r *http.Request) {
		writeAdmin(w, map[string]any{"node_id": n.ID(), "listen": n.cfg.Listen, "log_size": n.ledger.Size()})
	})
	return mux
}

func writeAdmin(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func adminError(w http.ResponseWriter, status int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

// AdminClient talks to a running node's admin socket.
type AdminClient struct {
	http *http.Client
}

// DialAdmin returns a client for the node running on dataDir, or nil if none runs.
func DialAdmin(dataDir string) *AdminClient {
	path := AdminSocket(dataDir)
	c, err := net.DialTimeout("unix", path, time.Second)
	if err != nil {
		return nil
	}
	c.Close()
	return &AdminClient{http: &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}}}
}

// Do posts body to the admin path and decodes the answer into out.
func (c *AdminClient) Do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://node"+path, rd)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("running node: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		json.NewDecoder(resp.Body).Decode(&e)
		return errors.New(e.Error)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
