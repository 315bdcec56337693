package node

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/sios-project/sios/fleet"
)

// RouteCandidate is one place a brain can run, in order of preference.
type RouteCandidate struct {
	NodeID      string `json:"node_id"`
	Local       bool   `json:"local,omitempty"`
	Institution string `json:"institution"`
	State       string `json:"state"`
	Posture     string `json:"posture"`
	Attestation string `json:"attestation,omitempty"`
	RTTMicros   int64  `json:"rtt_us,omitempty"`
}

// Routes is the route table: for each brain this node or a live peer offers, the
// candidates that could run it — this node first, then peers by health and latency.
// Routes to dead or forked peers are withdrawn. Policy narrows the list per request.
func (n *Node) Routes() map[string][]RouteCandidate {
	out := map[string][]RouteCandidate{}
	for _, b := range n.brains.All() {
		out[b.ID] = []RouteCandidate{{NodeID: n.ID(), Local: true, Institution: n.id.Cert.RootID, State: fleet.StateAlive,
			Posture: n.posture(), Attestation: fleet.AttestSoftware}}
	}
	if n.fleet == nil {
		return out
	}
	for id := range n.fleet.Offered() {
		for _, p := range n.fleet.Candidates(id) {
			out[id] = append(out[id], RouteCandidate{NodeID: p.NodeID, Institution: p.Institution, State: p.State,
				Posture: p.Posture, Attestation: p.Attestation, RTTMicros: p.RTTMicros})
		}
	}
	return out
}

// AdminReplicaRequest designates or withdraws a replica through the running node.
type AdminReplicaRequest struct {
	Node    string `json:"node"`
	Cadence string `json:"cadence,omitempty"`
	Remove  bool   `json:"remove,omitempty"`
}

// errNoFleet answers fleet questions on a node that runs alone.
var errNoFleet = errors.New("this node runs without a fleet: start it with 'sios up --fleet-listen ADDR [--join ADDR]'")

func (n *Node) adminFleetRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /admin/fleet/peers", func(w http.ResponseWriter, r *http.Request) {
		if n.fleet == nil {
			adminError(w, http.StatusConflict, errNoFleet)
			return
		}
		writeAdmin(w, n.fleet.Peers())
	})
	mux.HandleFunc("GET /admin/audit/replicas", func(w http.ResponseWriter, r *http.Request) {
		writeAdmin(w, n.ReplicaStatuses())
	})
	mux.HandleFunc("POST /admin/audit/replicas", func(w http.ResponseWriter, r *http.Request) {
		var req AdminReplicaRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
			adminError(w, http.StatusBadRequest, err)
			return
		}
		c := ReplicaConfig{Node: req.Node, Cadence: req.Cadence}
		if err := c.check(); err != nil {
			adminError(w, http.StatusBadRequest, err)
			return
		}
		if err := n.SetReplica(c, req.Remove); err != nil {
			adminError(w, http.StatusBadRequest, err)
			return
		}
		writeAdmin(w, n.ReplicaStatuses())
	})
	mux.HandleFunc("POST /admin/audit/replicas/resume", func(w http.ResponseWriter, r *http.Request) {
		var req AdminReplicaRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
			adminError(w, http.StatusBadRequest, err)
			return
		}
		if err := n.ResumeCopy(req.Node); err != nil {
			adminError(w, http.StatusBadRequest, err)
			return
		}
		writeAdmin(w, n.ReplicaStatuses())
	})
	mux.HandleFunc("POST /admin/audit/compare", func(w http.ResponseWriter, r *http.Request) {
		var req AdminReplicaRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
			adminError(w, http.StatusBadRequest, err)
			return
		}
		res, err := n.ComparePeer(r.Context(), req.Node)
		if err != nil {
			adminError(w, http.StatusBadRequest, err)
			return
		}
		writeAdmin(w, res)
	})
	mux.HandleFunc("GET /admin/fleet/routes", func(w http.ResponseWriter, r *http.Request) {
		writeAdmin(w, n.Routes())
	})
	mux.HandleFunc("GET /admin/fleet/records", func(w http.ResponseWriter, r *http.Request) {
		var recs []json.RawMessage
		for _, v := range n.fleetLog.View() {
			f, _ := n.fleetLog.Feed(v.Node)
			for _, rec := range f.Records {
				recs = append(recs, rec)
			}
		}
		if n.fleet == nil {
			// Alone, the log holds nothing: show the node's own feed.
			for _, rec := range n.feed.Records(0) {
				recs = append(recs, rec)
			}
		}
		if recs == nil {
			recs = []json.RawMessage{}
		}
		writeAdmin(w, recs)
	})
}

// ResumeCopy is the operator's action after a source forked: replication from it
// resumes (the evidence stays). The copy keeps the history it verified; a source that
// still presents the other history forks again.
func (n *Node) ResumeCopy(source string) error {
	if n.repl != nil {
		n.repl.mu.Lock()
		sc := n.repl.copies[source]
		n.repl.mu.Unlock()
		if sc != nil {
			if err := sc.rep.Resume(); err != nil {
				return err
			}
			n.repl.mu.Lock()
			sc.status.State, sc.status.Error = "resumed", ""
			n.repl.mu.Unlock()
			return nil
		}
	}
	rep, _, err := OpenCopy(n.dataDir, source)
	if err != nil {
		return err
	}
	return rep.Resume()
}
