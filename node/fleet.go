package node

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sios-project/sios/egress"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/fleetapi"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/replication"
)

const (
	// fleetLeaveTimeout bounds the goodbye to peers at shutdown.
	fleetLeaveTimeout = 2 * time.Second
	// maxJoin bounds the addresses a node tries at start.
	maxJoin = 16
)

// startFleet joins the fleet when the configuration names a fleet address: it starts
// replication, membership and the fleet API on it, then states this node's endpoints in
// its feed.
func (n *Node) startFleet(ctx context.Context, apiAddr string) error {
	if n.cfg.FleetListen == "" {
		return nil
	}
	n.repl = replication.New(replication.Config{
		DataDir: n.dataDir, Identity: n.id, FleetLog: n.fleetLog, LogSize: n.ledger.Size, Audit: n.audit, Log: n.log,
		Replicas: n.cfg.Replicas, ReplicateFor: n.cfg.ReplicateFor,
	})
	var attestor fleet.Attestor // nil, not a nil *tpm.Attestor, for a node without a TPM
	if n.tpm != nil {
		attestor = n.tpm.Attestor
	}
	n.fleetAPI = fleetapi.New(fleetapi.Config{
		Identity: n.id, Pipeline: n.pipeline, Replication: n.repl, FleetLog: n.fleetLog,
		PeerRequestsPerMinute: n.cfg.PeerRequestsPerMinute, Attestor: attestor, Log: n.log, Decisions: n.decisions,
		Trace: n.traceServer(),
	})
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
		Refused: n.auditPeerRefusal, Attested: n.auditPeerAttested, Handler: n.fleetAPI.Handler(), Logger: n.log, Timing: n.fleetTiming,
		AllowPeer: n.fleetNetworkGuard(),
	})
	if err != nil {
		n.repl.Stop()
		n.repl = nil
		return err
	}
	n.fleetAPI.SetPeerOf(f.PeerOf)
	n.fleet = f
	ep := fleet.EndpointsBody{API: apiAddr, Fleet: f.Addr()}
	if v, ok := n.fleetLog.NodeView(n.ID()); !ok || v.Endpoints == nil || *v.Endpoints != ep {
		if err := f.Publish(fleet.KindEndpoints, &ep); err != nil {
			n.stopFleet()
			return err
		}
	}
	n.pipeline.SetFleet(f)
	n.joined.Store(f)
	n.decisions.SetFleet(f)
	n.repl.Start(f)
	n.log.Info("fleet membership started", "fleet", f.Addr(), "join", strings.Join(n.cfg.Join, ","))
	return nil
}

// stopFleet stops replication and leaves the fleet.
func (n *Node) stopFleet() error {
	if n.fleet == nil {
		return nil
	}
	n.pipeline.SetFleet(nil)
	n.joined.Store(nil)
	n.decisions.SetFleet(nil)
	n.repl.Stop()
	err := n.fleet.Close(fleetLeaveTimeout)
	n.fleet = nil
	return err
}

// setReplica designates (or, with remove, withdraws) a replica of this node's log, in
// the config file and in the running node.
func (n *Node) setReplica(c replication.ReplicaConfig, remove bool) error {
	cfg, err := EditReplicas(n.dataDir, c, remove)
	if err != nil {
		return err
	}
	n.cfg.Replicas = cfg.Replicas
	if n.repl != nil {
		n.repl.SetReplica(c, remove)
	}
	return nil
}

// fleetTrust is the set of pinned institution roots, re-read when the trust store
// changes on disk so that a root pinned with 'sios trust add-root' on the data
// directory takes effect without a restart.
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

// setTrust puts t in force at once and evicts the peers of institutions it no longer
// pins from the fleet-wide log and membership; it returns their ids.
func (n *Node) setTrust(t fleet.Trust) []string {
	n.mu.Lock()
	n.trust, n.trustRead = t, time.Now()
	n.mu.Unlock()
	if f := n.joined.Load(); f != nil {
		return f.Prune()
	}
	return n.fleetLog.Prune(t)
}

// trustChanged re-reads the trust store after a recorded change (POST /admin/trust)
// and evicts the peers of an institution no longer pinned.
func (n *Node) trustChanged() []string {
	t, _, err := fleet.LoadTrust(n.dataDir, n.id.Cert)
	if err != nil {
		n.log.Error("trust store", "err", err)
		return nil
	}
	gone := n.setTrust(t)
	if len(gone) > 0 {
		n.log.Info("evicted the peers of an institution no longer trusted", "nodes", strings.Join(gone, ","))
	}
	return gone
}

// attestAgain makes a joined node check again the TPMs of institution's peers, after
// the EKs pinned for it changed.
func (n *Node) attestAgain(institution string) []string {
	if f := n.joined.Load(); f != nil {
		return f.AttestAgain(institution)
	}
	return nil
}

// auditPeerRefusal records a peer refused admission to the fleet.
func (n *Node) auditPeerRefusal(r fleet.Refusal) {
	resource := "peer/" + r.Node
	if r.Node == "" {
		resource = "peer-address/" + r.Addr
	}
	if err := n.audit(context.Background(), &oar.Record{
		Actor: oar.Actor{ID: "node"}, Action: oar.ActionFleetRefuse, Resource: resource,
		Decision: &oar.Decision{Effect: "deny", Policies: []string{"fleet-trust"}},
		Detail:   mustJSON(map[string]string{"address": r.Addr, "reason": r.Reason}),
	}); err != nil {
		n.log.Error("audit fleet refusal", "err", err)
	}
}

// auditPeerAttested records a peer's TPM attestation checked fresh: from now on Cedar
// sees the peer as tpm. (A failed one is a refusal: auditPeerRefusal.)
func (n *Node) auditPeerAttested(a fleet.Attested) {
	pcrs := make([]string, len(a.PCRs))
	for i, v := range a.PCRs {
		pcrs[i] = hex.EncodeToString(v)
	}
	if err := n.audit(context.Background(), &oar.Record{
		Actor: oar.Actor{ID: "node"}, Action: oar.ActionFleetAttest, Resource: "peer/" + a.NodeID,
		Decision: &oar.Decision{Effect: "allow", Policies: []string{"fleet-ek-trust"}},
		Detail: mustJSON(map[string]any{"address": a.Addr, "attestation": fleet.AttestTPM, "ek_sha256": a.EKSHA256,
			"pcrs_sha256": pcrs, "tpm_clock": a.Clock, "tpm_reset_count": a.ResetCount, "tpm_restart_count": a.RestartCount}),
	}); err != nil {
		n.log.Error("audit fleet attestation", "err", err)
	}
}

// parseNetworks reads fleet_networks: CIDR prefixes or single addresses.
func parseNetworks(ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR prefix (10.20.0.0/16) nor an IP address", s)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// fleetNetworkGuard returns the fleet's AllowPeer for fleet_networks (nil when unset).
// A refusal is audited as egress.refuse, at most once a minute per address, so that a
// peer retrying cannot flood the log.
func (n *Node) fleetNetworkGuard() func(addr string) error {
	nets, _ := parseNetworks(n.cfg.FleetNetworks) // checked at Open
	if len(nets) == 0 {
		return nil
	}
	var mu sync.Mutex
	last := map[netip.Addr]time.Time{}
	return func(addr string) error {
		err := allowedNetwork(nets, addr)
		if err == nil {
			return nil
		}
		ap, perr := netip.ParseAddrPort(addr)
		mu.Lock()
		quiet := perr == nil && time.Since(last[ap.Addr()]) < time.Minute
		if perr == nil && !quiet {
			if len(last) >= 4096 {
				clear(last)
			}
			last[ap.Addr()] = time.Now()
		}
		mu.Unlock()
		if !quiet {
			n.auditRefusal(egress.Refusal{Network: "tcp", Address: addr, Reason: err.Error()})
		}
		return err
	}
}

// allowedNetwork decides whether a fleet peer address lies in the operator's networks.
// A pure decision: no DNS, no I/O.
func allowedNetwork(nets []netip.Prefix, addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("is not an IP address and port: with fleet_networks set, peers are reached by address, never by a name to resolve")
	}
	ip := ap.Addr().Unmap()
	for _, p := range nets {
		if p.Contains(ip) {
			return nil
		}
	}
	shown := make([]string, 0, len(nets))
	for _, p := range nets {
		shown = append(shown, p.String())
	}
	return fmt.Errorf("is outside the fleet networks (fleet_networks: %s)", strings.Join(shown, ", "))
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Replication is the node's audit replication, nil when it runs alone (or before Serve
// has started the fleet).
func (n *Node) Replication() *replication.Replication { return n.repl }
