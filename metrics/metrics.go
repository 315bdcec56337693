// Package metrics is a node's Prometheus instruments and the handler that serves them
// on the operator's metrics listener (`sios up --metrics-listen ADDR`, docs/operating.md).
//
// Every series is named sios_… and documented in docs/metrics.md, which a test keeps
// equal to what the registry exposes. Labels take only values the node bounds: routes
// are the API's patterns, brains the loaded catalogue's ids (or "unknown"), outcome
// codes invoke's, policy ids the operator's policy files', peers the fleet log's nodes,
// which trust admits. No label ever carries a principal, a prompt or a caller's bytes.
//
// A nil *Metrics is valid and records nothing, so that tests and tools that build a
// pipeline without a node need no registry.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Buckets for latencies: from 100 µs (a policy decision, a cached read) to 5 minutes
// (a long model answer).
var (
	fastBuckets = []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}
	slowBuckets = []float64{0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300}
)

// Metrics holds a node's instruments. Its methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	httpRequests *prometheus.CounterVec   // route, status
	httpDuration *prometheus.HistogramVec // route
	chats        *prometheus.CounterVec   // brain, code
	overhead     prometheus.Histogram
	backend      *prometheus.HistogramVec // kind
	decisions    *prometheus.CounterVec   // action, effect, policy
	ledgerAppend prometheus.Histogram
	ledgerSeal   prometheus.Histogram
	ledgerFsync  prometheus.Histogram
	memoryOps    *prometheus.CounterVec   // op, outcome
	memoryTime   *prometheus.HistogramVec // op
	reloads      *prometheus.CounterVec   // outcome
}

// New returns a node's instruments in a registry of their own, with the Go runtime's
// and the process's collectors.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	m.httpRequests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sios_http_requests_total",
		Help: "API requests answered, by route pattern and HTTP status."}, []string{"route", "status"})
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sios_http_request_duration_seconds",
		Help: "Time to answer an API request, by route pattern (a streamed answer: to its last byte).", Buckets: slowBuckets}, []string{"route"})
	m.chats = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sios_brain_requests_total",
		Help: "Chat completions, by brain and outcome code (ok, or the error code the caller saw)."}, []string{"brain", "code"})
	m.overhead = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sios_chat_node_seconds",
		Help: "Time a chat completion spent in the node itself: authentication to answer, less the time waiting for the model server or peer.", Buckets: fastBuckets})
	m.backend = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sios_chat_backend_seconds",
		Help: "Time a chat completion waited for its model server (kind model) or the peer serving it (kind peer).", Buckets: slowBuckets}, []string{"kind"})
	m.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sios_policy_decisions_total",
		Help: "Cedar decisions, by action, effect (allow, deny) and determining policy id (default-deny when no policy decided; error when a policy failed)."}, []string{"action", "effect", "policy"})
	m.ledgerAppend = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sios_ledger_append_seconds",
		Help: "Time to append an audit record until it is durable (what a request waits for its admission record).", Buckets: fastBuckets})
	m.ledgerSeal = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sios_ledger_seal_seconds",
		Help: "Time to sign and integrate one seal (a batch of records) into the log.", Buckets: fastBuckets})
	m.ledgerFsync = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "sios_ledger_fsync_seconds",
		Help: "Time of one fsync of the ledger's journal.", Buckets: fastBuckets})
	m.memoryOps = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sios_memory_operations_total",
		Help: "Memory operations, by operation (add, search, export, forget, expire) and outcome (ok, error)."}, []string{"op", "outcome"})
	m.memoryTime = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sios_memory_operation_seconds",
		Help: "Time of a memory operation, its audit record included.", Buckets: fastBuckets}, []string{"op"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sios_reloads_total",
		Help: "Reloads of policies, brains and trust (SIGHUP), by outcome (ok, error)."}, []string{"outcome"})
	m.reg.MustRegister(m.httpRequests, m.httpDuration, m.chats, m.overhead, m.backend, m.decisions,
		m.ledgerAppend, m.ledgerSeal, m.ledgerFsync, m.memoryOps, m.memoryTime, m.reloads,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the registry in the Prometheus text (or protobuf, as negotiated)
// exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorLog: nil, Registry: m.reg, MaxRequestsInFlight: 4})
}

// Register adds collectors that read the node's state at each scrape (Gauges).
func (m *Metrics) Register(cs ...prometheus.Collector) error {
	if m == nil {
		return nil
	}
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// HTTPRequest counts an answered API request.
func (m *Metrics) HTTPRequest(route string, status int, d time.Duration) {
	if m == nil {
		return
	}
	m.httpRequests.WithLabelValues(route, statusText(status)).Inc()
	m.httpDuration.WithLabelValues(route).Observe(d.Seconds())
}

// Chat counts a chat completion: its brain ("unknown" when none was resolved), its
// outcome code, the time in the node and the time waiting for a model server or peer
// (kind "model" or "peer"; zero when none was asked).
func (m *Metrics) Chat(brain, code string, total, waited time.Duration, kind string) {
	if m == nil {
		return
	}
	if brain == "" {
		brain = "unknown"
	}
	m.chats.WithLabelValues(brain, code).Inc()
	if waited > 0 {
		m.backend.WithLabelValues(kind).Observe(waited.Seconds())
	}
	if own := total - waited; own >= 0 {
		m.overhead.Observe(own.Seconds())
	}
}

// Decision counts a policy decision: each determining policy once.
func (m *Metrics) Decision(action string, allow bool, policies []string, failed bool) {
	if m == nil {
		return
	}
	effect := "deny"
	if allow {
		effect = "allow"
	}
	switch {
	case failed && len(policies) == 0:
		m.decisions.WithLabelValues(action, effect, "error").Inc()
	case len(policies) == 0:
		m.decisions.WithLabelValues(action, effect, "default-deny").Inc()
	}
	for _, p := range policies {
		m.decisions.WithLabelValues(action, effect, p).Inc()
	}
}

// LedgerAppend observes the time an append took to become durable.
func (m *Metrics) LedgerAppend(d time.Duration) {
	if m != nil {
		m.ledgerAppend.Observe(d.Seconds())
	}
}

// LedgerSeal observes the time to sign and integrate one seal.
func (m *Metrics) LedgerSeal(d time.Duration) {
	if m != nil {
		m.ledgerSeal.Observe(d.Seconds())
	}
}

// LedgerFsync observes one fsync of the journal.
func (m *Metrics) LedgerFsync(d time.Duration) {
	if m != nil {
		m.ledgerFsync.Observe(d.Seconds())
	}
}

// Memory counts a memory operation.
func (m *Metrics) Memory(op string, d time.Duration, err error) {
	if m == nil {
		return
	}
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	m.memoryOps.WithLabelValues(op, outcome).Inc()
	m.memoryTime.WithLabelValues(op).Observe(d.Seconds())
}

// Reload counts a reload of policies, brains and trust.
func (m *Metrics) Reload(err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.reloads.WithLabelValues("error").Inc()
		return
	}
	m.reloads.WithLabelValues("ok").Inc()
}

// statusText is an HTTP status as a label value: the three digits.
func statusText(code int) string {
	if code < 100 || code > 999 {
		return "other"
	}
	return string([]byte{byte('0' + code/100), byte('0' + code/10%10), byte('0' + code%10)})
}
