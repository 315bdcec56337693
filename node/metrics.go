package node

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/sios-project/sios/api"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/metrics"
)

// observeLedger passes the ledger's timings to the metrics.
func (n *Node) observeLedger(stage string, d time.Duration) {
	switch stage {
	case ledger.StageAppend:
		n.metrics.LedgerAppend(d)
	case ledger.StageSeal:
		n.metrics.LedgerSeal(d)
	case ledger.StageFsync:
		n.metrics.LedgerFsync(d)
	}
}

// MetricsAddr is the address the metrics are served on ("" when none is configured);
// set once Serve has bound it, before its ready callback.
func (n *Node) MetricsAddr() string { return n.metricsAddr }

// Metrics are the node's instruments.
func (n *Node) Metrics() *metrics.Metrics { return n.metrics }

// registerState makes each scrape read the ledger, the brains and policies in force,
// and — once Serve has started them — the fleet's peers and the replication relations.
func (n *Node) registerState() error {
	return n.metrics.Register(metrics.NewStateCollector(metrics.State{
		LogSize:       n.ledger.Size,
		Pending:       n.ledger.Pending,
		JournalWrites: n.ledger.JournalWrites,
		Brains:        func() int { return len(n.brains.All()) },
		Policies:      n.policy.Len,
		Peers: func() []metrics.Peer {
			f := n.joined.Load()
			if f == nil {
				return nil
			}
			var out []metrics.Peer
			for _, p := range f.Peers() {
				out = append(out, metrics.Peer{Node: p.NodeID, Institution: p.Institution, State: p.State})
			}
			return out
		},
		Replicas: func() []metrics.Replica {
			r := n.repl
			if r == nil {
				return nil
			}
			var out []metrics.Replica
			for _, s := range r.Statuses() {
				out = append(out, metrics.Replica{Node: s.NodeID, Role: s.Role, State: s.State, Lag: s.LagRecords, CosignedSize: s.CosignedSize})
			}
			return out
		},
	}))
}

// listenMetrics binds the metrics listener, when one is configured, so that a bad
// address stops the start before anything is served.
func (n *Node) listenMetrics() (net.Listener, error) {
	if n.cfg.MetricsListen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", n.cfg.MetricsListen)
	if err != nil {
		return nil, fmt.Errorf("metrics listener on %s: %v (choose another with --metrics-listen)", n.cfg.MetricsListen, err)
	}
	return ln, nil
}

// metricsServer serves /metrics (and nothing else) on ln.
func (n *Node) metricsServer() *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", n.metrics.Handler())
	return &http.Server{Handler: mux, ReadHeaderTimeout: api.ReadHeaderTimeout, IdleTimeout: api.IdleTimeout}
}

// serveMetrics runs srv on ln until it is shut down.
func (n *Node) serveMetrics(srv *http.Server, ln net.Listener) {
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		n.log.Error("metrics listener stopped", "err", err)
	}
}

// closeListener closes ln, if there is one.
func closeListener(ln net.Listener) {
	if ln != nil {
		ln.Close()
	}
}
