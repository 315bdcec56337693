package node

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/oar"
)

const (
	// fleetLeaveTimeout bounds the goodbye to peers at shutdown.
	fleetLeaveTimeout = 2 * time.Second
	// maxJoin bounds the addresses a node tries at start.
	maxJoin = 16
)

// startFleet joins the fleet when the configuration names a fleet address: it starts
// membership and the fleet API on it, then states this node's endpoints in its feed.
func (n *Node) startFleet(ctx context.Context, apiAddr string) error {
	if n.cfg.FleetListen == "" {
		return nil
	}
	n.replCtx, n.replStop = context.WithCancel(context.WithoutCancel(ctx))
	n.repl = n.newReplication()
	mux := http.NewServeMux()
	mux.HandleFunc("POST /fleet/v1/invoke", n.serveRemote)
	mux.HandleFunc("POST /fleet/v1/audit/notify", n.serveNotify)
	mux.HandleFunc("GET /fleet/v1/audit/log/{path...}", n.serveLogFile)
	mux.HandleFunc("GET /fleet/v1/audit/checkpoint", n.serveCheckpoint)
	mux.HandleFunc("GET /fleet/v1/audit/consistency", n.serveConsistency)
	mux.HandleFunc("GET /fleet/v1/audit/copy", n.serveCopyCheckpoint)
	mux.HandleFunc("POST "+WitnessPrefix+"/add-checkpoint", n.serveAddCheckpoint) // C2SP tlog-witness
	// Besides the configured join addresses, the peers this node knew when it stopped:
	// a restarted node finds its fleet even if the one it was told to join is down.
	join := slices.Clone(n.cfg.Join)
	for _, v := range n.fleetLog.View() {
		if v.Node != n.ID() && v.Endpoints != nil && !v.Forked && !slices.Contains(join, v.Endpoints.Fleet) && len(join) < maxJoin {
			join = append(join, v.Endpoints.Fleet)
		}
	}
	f, err := fleet.Start(ctx, fleet.Config{
		Node: n.id, Publisher: n.feed, Log: n.fleetLog, Archive: n.archive, Trust: n.fleetTrust,
		Listen: n.cfg.FleetListen, Advertise: n.cfg.FleetAdvertise, Join: join,
		Refused: n.auditPeerRefusal, Handler: mux, Logger: n.log, Timing: n.fleetTiming,
	})
	if err != nil {
		n.replStop()
		return err
	}
	n.fleet = f
	ep := fleet.EndpointsBody{API: apiAddr, Fleet: f.Addr()}
	if v, ok := n.fleetLog.NodeView(n.ID()); !ok || v.Endpoints == nil || *v.Endpoints != ep {
		if err := f.Publish(fleet.KindEndpoints, &ep); err != nil {
			f.Close(fleetLeaveTimeout)
			n.fleet = nil
			return err
		}
	}
	n.repl.start()
	n.log.Info("fleet membership started", "fleet", f.Addr(), "join", strings.Join(n.cfg.Join, ","))
	return nil
}

// fleetTrust is the set of pinned institution roots, re-read when the trust store
// changes on disk so that 'sios trust add-root' takes effect without a restart.
func (n *Node) fleetTrust() fleet.Trust {
	n.mu.Lock()
	defer n.mu.Unlock()
	if time.Since(n.trustRead) < time.Second {
		return n.trust
	}
	n.trustRead = time.Now()
	t, _, err := fleet.LoadTrust(n.dataDir, n.id.Cert)
	if err != nil {
		n.log.Error("trust store", "err", err)
		return n.trust // keep what was loaded
	}
	n.trust = t
	return t
}

// auditPeerRefusal records a peer refused admission to the fleet.
func (n *Node) auditPeerRefusal(r fleet.Refusal) {
	resource := "peer/" + r.Node
	if r.Node == "" {
		resource = "peer-address/" + r.Addr
	}
	if _, _, err := n.audit(context.Background(), &oar.Record{
		Actor: oar.Actor{ID: "node"}, Action: "fleet.refuse", Resource: resource,
		Decision: &oar.Decision{Effect: "deny", Policies: []string{"fleet-trust"}},
		Detail:   mustJSON(map[string]string{"address": r.Addr, "reason": r.Reason}),
	}); err != nil {
		n.log.Error("audit fleet refusal", "err", err)
	}
}

// Fleet is the node's fleet membership, nil when it runs alone.
func (n *Node) Fleet() *fleet.Fleet { return n.fleet }

// FleetLog is the fleet-wide log as this node holds it.
func (n *Node) FleetLog() *fleet.Log { return n.fleetLog }
