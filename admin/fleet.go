package admin

import (
	"encoding/json"
	"net/http"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/replication"
)

// ReplicaRequest designates or withdraws a replica through the running node, resumes
// replication from a source, or compares with a peer.
type ReplicaRequest struct {
	Node    string `json:"node"`
	Cadence string `json:"cadence,omitempty"`
	Remove  bool   `json:"remove,omitempty"`
}

func (d Deps) fleetRoutes() []route {
	var rs []route
	add := func(pattern string, h handler) { rs = append(rs, route{pattern, h}) }
	add("GET /admin/fleet/peers", func(*http.Request) (any, error) { return d.Peers() })
	add("GET /admin/fleet/routes", func(*http.Request) (any, error) { return d.Routes(), nil })
	add("GET /admin/fleet/records", func(*http.Request) (any, error) {
		recs := []json.RawMessage{}
		for _, v := range d.FleetLog.View() {
			f, _ := d.FleetLog.Feed(v.Node)
			for _, rec := range f.Records {
				recs = append(recs, rec)
			}
		}
		if d.Fleet == nil {
			// Alone, the log holds nothing: show the node's own feed.
			for _, rec := range d.Feed.Records(0) {
				recs = append(recs, rec)
			}
		}
		return recs, nil
	})
	add("GET /admin/audit/replicas", func(*http.Request) (any, error) { return d.ReplicaStatuses(), nil })
	add("POST /admin/audit/replicas", func(r *http.Request) (any, error) {
		var req ReplicaRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		c := replication.ReplicaConfig{Node: req.Node, Cadence: req.Cadence}
		if err := c.Check(); err != nil {
			return nil, err
		}
		if err := d.SetReplica(c, req.Remove); err != nil {
			return nil, err
		}
		return d.ReplicaStatuses(), nil
	})
	add("POST /admin/audit/replicas/resume", func(r *http.Request) (any, error) {
		var req ReplicaRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		var err error
		if d.Replication != nil {
			err = d.Replication.Resume(req.Node)
		} else {
			err = replication.ResumeCopy(d.DataDir, req.Node)
		}
		if err != nil {
			return nil, err
		}
		return d.ReplicaStatuses(), nil
	})
	add("POST /admin/audit/compare", func(r *http.Request) (any, error) {
		var req ReplicaRequest
		if err := decode(r, &req); err != nil {
			return nil, err
		}
		if d.Replication == nil {
			return nil, errNoFleet
		}
		return d.Replication.ComparePeer(r.Context(), req.Node)
	})
	return rs
}

// Peers lists the fleet's other nodes; an error on a node that runs alone.
func (d Deps) Peers() ([]fleet.Peer, error) {
	if d.Fleet == nil {
		return nil, errNoFleet
	}
	return d.Fleet.Peers(), nil
}

// ReplicaStatuses describes the copies of this node's log that replicas keep, and the
// copies this node keeps of others' logs (none when the node runs alone).
func (d Deps) ReplicaStatuses() []replication.ReplicaStatus {
	if d.Replication == nil {
		return []replication.ReplicaStatus{}
	}
	return d.Replication.Statuses()
}
