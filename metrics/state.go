package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// State is what the node reports at each scrape, read from its subsystems. A nil
// function is skipped (a node without a fleet has no peers to report).
type State struct {
	// LogSize is the audit log's size in entries; Pending the journal's depth (entries
	// durable and receipted, not yet integrated into the log).
	LogSize func() uint64
	Pending func() uint64
	// JournalWrites is how the journal makes its frames durable ("aio", "pwritev2",
	// "fdatasync"; "" before its first segment: not reported).
	JournalWrites func() string
	// Peers are the fleet's other nodes with their membership state.
	Peers func() []Peer
	// Replicas are this node's replication relations.
	Replicas func() []Replica
	// Brains is the number of brains loaded; Policies the number of policies in force.
	Brains   func() int
	Policies func() int
}

// Peer is one other node of the fleet as the metrics show it.
type Peer struct {
	Node, Institution, State string
}

// Replica is one replication relation: Role "replica" (this node's log copied there)
// or "source" (a log this node keeps a copy of).
type Replica struct {
	Node, Role, State string
	Lag               uint64 // records behind
	CosignedSize      uint64
}

var (
	logSizeDesc  = prometheus.NewDesc("sios_ledger_entries", "Entries in the audit log (records and seals), journaled.", nil, nil)
	pendingDesc  = prometheus.NewDesc("sios_ledger_journal_depth", "Entries durable in the journal and receipted that the log has not yet integrated.", nil, nil)
	peersDesc    = prometheus.NewDesc("sios_fleet_peers", "Other nodes of the fleet, by membership state (alive, suspect, dead) and institution root.", []string{"state", "institution"}, nil)
	lagDesc      = prometheus.NewDesc("sios_replication_lag_records", "Records a replication relation is behind, by peer node and role (replica: this node's log there; source: a log copied here).", []string{"node", "role"}, nil)
	cosignedDesc = prometheus.NewDesc("sios_replication_cosigned_size", "The log size the latest cosignature of a replication relation is over.", []string{"node", "role"}, nil)
	replUpDesc   = prometheus.NewDesc("sios_replication_up", "1 when a replication relation's state is ok, 0 otherwise (starting, unreachable, refused, error, forked, resumed: the state label says which).", []string{"node", "role", "state"}, nil)
	writesDesc   = prometheus.NewDesc("sios_ledger_journal_writes", "1 for how the journal makes its frames durable now: aio (direct I/O submitted by Linux AIO), pwritev2 (direct I/O, a thread waiting in the kernel) or fdatasync (through the page cache).", []string{"mode"}, nil)
	brainsDesc   = prometheus.NewDesc("sios_brains", "Brains loaded.", nil, nil)
	policiesDesc = prometheus.NewDesc("sios_policies", "Cedar policies in force.", nil, nil)
)

// stateCollector reads State at each scrape.
type stateCollector struct{ s State }

// NewStateCollector returns a collector of s, for Register.
func NewStateCollector(s State) prometheus.Collector { return stateCollector{s} }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{logSizeDesc, pendingDesc, writesDesc, peersDesc, lagDesc, cosignedDesc, replUpDesc, brainsDesc, policiesDesc} {
		ch <- d
	}
}

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	if s.LogSize != nil {
		ch <- prometheus.MustNewConstMetric(logSizeDesc, prometheus.GaugeValue, float64(s.LogSize()))
	}
	if s.Pending != nil {
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(s.Pending()))
	}
	if s.JournalWrites != nil {
		if w := s.JournalWrites(); w != "" {
			ch <- prometheus.MustNewConstMetric(writesDesc, prometheus.GaugeValue, 1, w)
		}
	}
	if s.Brains != nil {
		ch <- prometheus.MustNewConstMetric(brainsDesc, prometheus.GaugeValue, float64(s.Brains()))
	}
	if s.Policies != nil {
		ch <- prometheus.MustNewConstMetric(policiesDesc, prometheus.GaugeValue, float64(s.Policies()))
	}
	if s.Peers != nil {
		type key struct{ state, inst string }
		counts := map[key]int{}
		for _, p := range s.Peers() {
			counts[key{p.State, p.Institution}]++
		}
		for k, n := range counts {
			ch <- prometheus.MustNewConstMetric(peersDesc, prometheus.GaugeValue, float64(n), k.state, k.inst)
		}
	}
	if s.Replicas != nil {
		for _, r := range s.Replicas() {
			ch <- prometheus.MustNewConstMetric(lagDesc, prometheus.GaugeValue, float64(r.Lag), r.Node, r.Role)
			ch <- prometheus.MustNewConstMetric(cosignedDesc, prometheus.GaugeValue, float64(r.CosignedSize), r.Node, r.Role)
			up := 0.0
			if r.State == "ok" {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(replUpDesc, prometheus.GaugeValue, up, r.Node, r.Role, r.State)
		}
	}
}
