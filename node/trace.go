package node

import (
	"context"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/replication"
	"github.com/sios-project/sios/trace"
)

// traceServer answers peers' requests for their parts of traces from this node's log.
func (n *Node) traceServer() *trace.Server {
	return &trace.Server{Identity: n.id, DataDir: n.dataDir, OpenLog: n.openLog, Size: n.ledger.Size}
}

// buildTrace gathers the trace of one record of this node's log ('sios audit trace'
// through the running node): other nodes' parts from the nodes themselves over the
// fleet, else from the replicas of their logs this node keeps.
func (n *Node) buildTrace(ctx context.Context, f *fleet.Fleet, record string) ([]byte, error) {
	sub, err := trace.ParseSubject(record)
	if err != nil {
		return nil, err
	}
	if err := n.ledger.Sync(ctx); err != nil {
		return nil, err
	}
	r, err := trace.OpenCovering(ctx, n.openLog, n.ledger.Size())
	if err != nil {
		return nil, err
	}
	ev, err := trace.ReadEvidence(n.dataDir)
	if err != nil {
		return nil, err
	}
	certOf := func(node string) (identity.Certificate, bool) { return trace.CertificateOf(n.fleetLog, node) }
	var src trace.Sources
	if f != nil {
		src = append(src, trace.FleetSource{Fleet: f})
	}
	src = append(src, trace.ReplicaSource{Dir: replication.ReplicasDir(n.dataDir), Certificate: certOf})
	b := &trace.Builder{Certificate: n.id.Cert, Evidence: ev, Log: r, Source: src, Certificates: certOf}
	return b.Build(ctx, sub)
}
