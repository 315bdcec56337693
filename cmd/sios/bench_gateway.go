package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/sios-project/sios/admin"
	"github.com/sios-project/sios/api"
	"github.com/sios-project/sios/backend/mock"
)

const benchBrain = `id: bench
kind: domain
title: Benchmark brain
system_prompt: You code clinical discharge summaries.
model: mock-model
classification: OFFICIAL
max_tokens: 256
timeout: 30s
rate_limit: {requests_per_minute: 6000000, burst: 100000}
`

// nextFindMaxRate is the rate --find-max tries after steps (at least one), or false
// when it is done. It raises the rate by a quarter while every step is sustained (at
// most findMaxRaises steps); after the first that is not, it tries the midpoint of the
// highest sustained rate and the lowest rate that was not, rounded to 25/s, while they
// are more than 5 % apart (at most findMaxHalvings times) — so that a target between two
// quarter steps (3,500/s between 3,125 and 3,906) is tried rather than skipped.
func nextFindMaxRate(steps []rated) (int, bool) {
	firstMiss := slices.IndexFunc(steps, func(st rated) bool { return !st.Sustained })
	if firstMiss < 0 {
		return steps[len(steps)-1].RPS * 5 / 4, len(steps) < findMaxRaises
	}
	pass, fail := 0, 0
	for _, st := range steps {
		switch {
		case st.Sustained:
			pass = max(pass, st.RPS)
		case fail == 0 || st.RPS < fail:
			fail = st.RPS
		}
	}
	halvings := len(steps) - 1 - firstMiss
	mid := (pass + fail) / 2 / 25 * 25
	if pass == 0 || halvings >= findMaxHalvings || fail-pass <= pass/20 || mid <= pass || mid >= fail {
		return 0, false
	}
	return mid, true
}

// --find-max's limits: steps raising the rate by a quarter, then steps halving the gap.
const (
	findMaxRaises   = 10
	findMaxHalvings = 2
)

// maxOverheadP99 is the p99 overhead a rate must stay within to count as sustained.
const maxOverheadP99 = 5 * time.Millisecond

type gatewayBenchResult struct {
	RPS            int     `json:"rps"`
	Requests       int     `json:"requests"` // per phase
	Rounds         int     `json:"rounds"`
	BackendLatency float64 `json:"backend_latency_ms"`
	// With more than one round, every figure below is the median over the rounds
	// (each overhead is taken within its round, then the median of those).
	DirectP50   float64 `json:"direct_p50_us"`
	DirectP99   float64 `json:"direct_p99_us"`
	NodeP50     float64 `json:"node_p50_us"`
	NodeP99     float64 `json:"node_p99_us"`
	OverheadP50 float64 `json:"overhead_p50_us"`
	OverheadP99 float64 `json:"overhead_p99_us"`
	// InNodeP50 and InNodeP99 are from the node's own histogram of the time a chat
	// spends in it (sios_chat_node_seconds: authentication to answer, less the model
	// server's time), interpolated within its buckets: the overhead without the
	// loopback hops and the load generator.
	InNodeP50 float64 `json:"in_node_p50_us"`
	InNodeP99 float64 `json:"in_node_p99_us"`
	// NodeCPU is the node process's CPU time (user and system, every thread) per
	// request of the node phase: the stable figure on a shared machine.
	NodeCPU float64 `json:"node_cpu_us_per_req"`
	// ClientCPU is this process's CPU per request of the node phase: the load generator
	// and the mock backend, what every client pays too.
	ClientCPU float64 `json:"client_cpu_us_per_req"`
	// DirectCPU is this process's CPU per request of the direct phase (the load
	// generator and the mock backend alone): the same run's measure of how fast the
	// shared machine is, which swings by a fifth between runs. NodeCPURatio is NodeCPU
	// over it, the figure to compare across runs and builds.
	DirectCPU    float64 `json:"direct_cpu_us_per_req"`
	NodeCPURatio float64 `json:"node_cpu_ratio"`
	NodeProcs    int     `json:"node_gomaxprocs"`
	MaxSustained int     `json:"max_sustained_rps"` // with --find-max; 0 otherwise
	NodeErrors   int     `json:"node_errors"`
	FirstError   string  `json:"first_error,omitempty"`
	AuditRecords uint64  `json:"audit_entries"`
	FullReceipts bool    `json:"full_receipts"`
	ProfileFile  string  `json:"cpu_profile,omitempty"`
	// ReceiptHeader is the X-Sios-Receipt header's length in an answer.
	ReceiptHeader int `json:"receipt_header_bytes"`
	// Against is the node run from --against's binary, in the same rounds; CPUVsAgainst
	// is the median over the rounds of NodeCPU over its CPU per request (below 1: the
	// node under test uses less).
	Against      *againstResult `json:"against,omitempty"`
	CPUVsAgainst float64        `json:"node_cpu_vs_against,omitempty"`
	PerRound     []roundResult  `json:"per_round,omitempty"`
	Steps        []rated        `json:"steps,omitempty"`
}

// againstResult is the baseline build's node, measured in the same rounds.
type againstResult struct {
	Binary      string  `json:"binary"`
	NodeCPU     float64 `json:"node_cpu_us_per_req"`
	CPURatio    float64 `json:"node_cpu_ratio"`
	OverheadP50 float64 `json:"overhead_p50_us"`
	OverheadP99 float64 `json:"overhead_p99_us"`
	InNodeP50   float64 `json:"in_node_p50_us"`
	InNodeP99   float64 `json:"in_node_p99_us"`
	Errors      int     `json:"node_errors"`
}

// roundResult is one round: the direct phase, then the node (and the --against node,
// in turns first and second).
type roundResult struct {
	DirectCPU          float64 `json:"direct_cpu_us_per_req"`
	NodeCPU            float64 `json:"node_cpu_us_per_req"`
	NodeCPURatio       float64 `json:"node_cpu_ratio"`
	OverheadP50        float64 `json:"overhead_p50_us"`
	OverheadP99        float64 `json:"overhead_p99_us"`
	InNodeP50          float64 `json:"in_node_p50_us"`
	InNodeP99          float64 `json:"in_node_p99_us"`
	AgainstCPU         float64 `json:"against_cpu_us_per_req,omitempty"`
	AgainstCPURatio    float64 `json:"against_cpu_ratio,omitempty"`
	AgainstOverheadP50 float64 `json:"against_overhead_p50_us,omitempty"`
	AgainstOverheadP99 float64 `json:"against_overhead_p99_us,omitempty"`
	AgainstInNodeP50   float64 `json:"against_in_node_p50_us,omitempty"`
	AgainstInNodeP99   float64 `json:"against_in_node_p99_us,omitempty"`
}

// rated is one step of the search for the highest sustained rate.
type rated struct {
	RPS         int     `json:"rps"`
	OverheadP99 float64 `json:"overhead_p99_us"`
	NodeCPU     float64 `json:"node_cpu_us_per_req"`
	Errors      int     `json:"errors"`
	Sustained   bool    `json:"sustained"`
}

func runBenchGateway(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench gateway", "bench gateway [--rps N] [--duration D] [--rounds N] [--backend-latency D] [--find-max] [--full-receipts] [--node-gomaxprocs N] [--node-binary PATH] [--against PATH] [--cpuprofile FILE] [--json]")
	rps := fs.Int("rps", 2000, "fixed request rate, in every phase")
	duration := fs.Duration("duration", 5*time.Second, "length of each phase")
	rounds := fs.Int("rounds", 1, "rounds of direct and node phases, alternated; figures are the medians over the rounds")
	latency := fs.Duration("backend-latency", 20*time.Millisecond, "the mock backend's fixed service time")
	findMax := fs.Bool("find-max", false, "then raise the rate by quarters, and halve the gap after the first miss, to find the highest with p99 overhead ≤ 5 ms and no errors")
	fullReceipts := fs.Bool("full-receipts", false, "ask for the full receipt inline in every answer (X-Sios-Receipt: full)")
	procs := fs.Int("node-gomaxprocs", 0, "GOMAXPROCS of the node process (0: the node's own choice)")
	nodeBinary := fs.String("node-binary", "", "run the node with this sios binary instead of this one (to compare builds in one run)")
	against := fs.String("against", "", "also run a node with this sios binary (a baseline build) in every round, alternating with the node under test, and report both")
	asJSON := fs.Bool("json", false, "print JSON")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the node process during the first round's node phase to FILE")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 || *rps < 1 || *duration <= 0 || *procs < 0 || *rounds < 1 || *rounds > 100 {
		return usageError("bench gateway takes --rps ≥ 1, --duration > 0, --rounds from 1 to 100, --node-gomaxprocs ≥ 0, and no arguments")
	}
	n := int(float64(*rps) * duration.Seconds())
	res := gatewayBenchResult{RPS: *rps, Requests: n, Rounds: *rounds, BackendLatency: ms(*latency), FullReceipts: *fullReceipts}

	// The mock model server, on loopback, in this process.
	mockLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mockSrv := &http.Server{Handler: &mock.Server{Latency: *latency, Reply: "The answer is forty-two."}}
	go mockSrv.Serve(mockLn)
	defer mockSrv.Close()
	mockURL := "http://" + mockLn.Addr().String() + "/v1"

	// A fresh node in its own process, whose default backend is the mock: the load
	// generator's garbage collection never lands in the node's figures. With --against,
	// a second one from the baseline binary, on a data directory of its own.
	newNode := func(exe string) (*benchNode, func(), error) {
		dir, err := os.MkdirTemp("", "sios-bench-gateway-")
		if err != nil {
			return nil, nil, err
		}
		nd, err := startBenchNode(dir, mockURL, *rps, *procs, exe)
		if err != nil {
			os.RemoveAll(dir)
			return nil, nil, err
		}
		return nd, func() { nd.stop(); os.RemoveAll(dir) }, nil
	}
	nd, cleanup, err := newNode(*nodeBinary)
	if err != nil {
		return err
	}
	defer cleanup()
	res.NodeProcs = nd.procs
	var base *benchNode
	if *against != "" {
		var cleanupBase func()
		if base, cleanupBase, err = newNode(*against); err != nil {
			return fmt.Errorf("the --against node: %v", err)
		}
		defer cleanupBase()
		res.Against = &againstResult{Binary: *against}
	}

	// The load generator opens at most three quarters of the node's connection cap:
	// through a stall, requests beyond that wait here for a connection, their time
	// counted from when they were due, instead of meeting a full accept queue whose
	// dropped SYNs a client retries only after 1, 3, 7 … 63 s.
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: time.Minute,
		MaxConnsPerHost: api.MaxConnections * 3 / 4}}
	body := []byte(`{"model":"bench","messages":[{"role":"user","content":"Code this discharge summary: community-acquired pneumonia, type 2 diabetes."}]}`)
	var headerBytes sync.Once
	call := func(url, key string) func(int) error {
		return func(int) error {
			req, _ := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if key != "" {
				req.Header.Set("Authorization", "Bearer "+key)
				if *fullReceipts {
					req.Header.Set("X-Sios-Receipt", "full")
				}
			}
			resp, err := client.Do(req)
			if err != nil {
				return err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("status %d", resp.StatusCode)
			}
			if key != "" {
				headerBytes.Do(func() { res.ReceiptHeader = len(resp.Header.Get("X-Sios-Receipt")) })
			}
			return nil
		}
	}
	through := func(nd *benchNode) func(int) error { return call(nd.url+"/v1/chat/completions", nd.key) }
	progress(e, *asJSON, "warming up: %d requests at %d/s", *rps, *rps)
	paced(*rps, *rps, through(nd))
	if base != nil {
		paced(*rps, *rps, through(base))
	}
	ratio := func(a, b float64) float64 {
		if b <= 0 {
			return 0
		}
		return math.Round(a/b*100) / 100
	}
	var direct, node, baseRuns []phase
	for r := range *rounds {
		of := ""
		if *rounds > 1 {
			of = fmt.Sprintf("round %d/%d: ", r+1, *rounds)
		}
		progress(e, *asJSON, "%sdirect: %d requests at %d/s to the mock backend (%s service time)", of, n, *rps, *latency)
		c0 := selfCPU()
		lat, _, _ := paced(n, *rps, call(mockURL+"/chat/completions", ""))
		d := phase{cpu: usPer(selfCPU()-c0, n), p50: us(percentile(lat, 50)), p99: us(percentile(lat, 99))}
		direct = append(direct, d)
		runNode := func() {
			progress(e, *asJSON, "%snode: %d requests at %d/s through auth, policy, routing, perimeter and audit", of, n, *rps)
			var profile chan error
			if *cpuProfile != "" && r == 0 {
				profile = make(chan error, 1)
				secs := int(math.Ceil(duration.Seconds()))
				go func() { profile <- nd.profile(ctx, *cpuProfile, secs) }()
				res.ProfileFile = *cpuProfile
			}
			m := measure(nd, n, *rps, through(nd))
			node = append(node, m.phase())
			if res.NodeErrors += m.errors; res.FirstError == "" {
				res.FirstError = m.first
			}
			if profile != nil {
				if err := <-profile; err != nil {
					progress(e, *asJSON, "no CPU profile: %v", err)
					res.ProfileFile = ""
				}
			}
		}
		runBase := func() {
			progress(e, *asJSON, "%snode from --against: %d requests at %d/s", of, n, *rps)
			m := measure(base, n, *rps, through(base))
			baseRuns = append(baseRuns, m.phase())
			res.Against.Errors += m.errors
		}
		// The two nodes take turns going first, so that a machine slowing through
		// the run weighs on both alike.
		switch {
		case base == nil:
			runNode()
		case r%2 == 0:
			runNode()
			runBase()
		default:
			runBase()
			runNode()
		}
		rr := roundResult{DirectCPU: d.cpu, NodeCPU: node[r].cpu, NodeCPURatio: ratio(node[r].cpu, d.cpu),
			OverheadP50: node[r].p50 - d.p50, OverheadP99: node[r].p99 - d.p99, InNodeP50: node[r].inP50, InNodeP99: node[r].inP99}
		if base != nil {
			b := baseRuns[r]
			rr.AgainstCPU, rr.AgainstCPURatio = b.cpu, ratio(b.cpu, d.cpu)
			rr.AgainstOverheadP50, rr.AgainstOverheadP99 = b.p50-d.p50, b.p99-d.p99
			rr.AgainstInNodeP50, rr.AgainstInNodeP99 = b.inP50, b.inP99
		}
		res.PerRound = append(res.PerRound, rr)
	}
	pick := func(f func(roundResult) float64) float64 {
		v := make([]float64, len(res.PerRound))
		for i, r := range res.PerRound {
			v[i] = f(r)
		}
		return median(v)
	}
	res.DirectCPU = pick(func(r roundResult) float64 { return r.DirectCPU })
	res.NodeCPU = pick(func(r roundResult) float64 { return r.NodeCPU })
	res.NodeCPURatio = pick(func(r roundResult) float64 { return r.NodeCPURatio })
	res.OverheadP50 = pick(func(r roundResult) float64 { return r.OverheadP50 })
	res.OverheadP99 = pick(func(r roundResult) float64 { return r.OverheadP99 })
	res.InNodeP50 = pick(func(r roundResult) float64 { return r.InNodeP50 })
	res.InNodeP99 = pick(func(r roundResult) float64 { return r.InNodeP99 })
	p50 := func(p phase) float64 { return p.p50 }
	p99 := func(p phase) float64 { return p.p99 }
	res.DirectP50, res.DirectP99 = medianOf(direct, p50), medianOf(direct, p99)
	res.NodeP50, res.NodeP99 = medianOf(node, p50), medianOf(node, p99)
	res.ClientCPU = medianOf(node, func(p phase) float64 { return p.client })
	if base != nil {
		res.Against.NodeCPU = pick(func(r roundResult) float64 { return r.AgainstCPU })
		res.Against.CPURatio = pick(func(r roundResult) float64 { return r.AgainstCPURatio })
		res.Against.OverheadP50 = pick(func(r roundResult) float64 { return r.AgainstOverheadP50 })
		res.Against.OverheadP99 = pick(func(r roundResult) float64 { return r.AgainstOverheadP99 })
		res.Against.InNodeP50 = pick(func(r roundResult) float64 { return r.AgainstInNodeP50 })
		res.Against.InNodeP99 = pick(func(r roundResult) float64 { return r.AgainstInNodeP99 })
		res.CPUVsAgainst = pick(func(r roundResult) float64 { return ratio(r.NodeCPU, r.AgainstCPU) })
	}
	if *rounds == 1 {
		res.PerRound = nil
	}

	if *findMax {
		nodeURL := nd.url + "/v1/chat/completions"
		steps := min(int(math.Ceil(duration.Seconds())), 3)
		for rate, ok := *rps, true; ok; rate, ok = nextFindMaxRate(res.Steps) {
			k := rate * steps
			progress(e, *asJSON, "find-max: %d/s for %ds, direct then through the node", rate, steps)
			d, _, _ := paced(k, rate, call(mockURL+"/chat/completions", ""))
			sm := measure(nd, k, rate, call(nodeURL, nd.key))
			st := rated{RPS: rate, OverheadP99: us(percentile(sm.lat, 99)) - us(percentile(d, 99)), NodeCPU: sm.nodeCPU, Errors: sm.errors}
			st.Sustained = st.Errors == 0 && st.OverheadP99 <= us(maxOverheadP99)
			res.Steps = append(res.Steps, st)
			if st.Sustained {
				res.MaxSustained = max(res.MaxSustained, rate)
			}
		}
	}
	res.AuditRecords = nd.logSize(ctx)
	if err := nd.stop(); err != nil {
		return err
	}
	if base != nil {
		if err := base.stop(); err != nil {
			return fmt.Errorf("the --against node: %v", err)
		}
	}
	if *asJSON {
		return printJSON(e.stdout, res)
	}
	fmt.Fprintf(e.stdout, "%d requests at %d/s per phase; mock backend service time %s; node in its own process (GOMAXPROCS %d)\n", n, *rps, *latency, res.NodeProcs)
	if *rounds > 1 {
		fmt.Fprintf(e.stdout, "%d rounds, alternated; each figure is the median over the rounds\n", *rounds)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "node CPU per request\t%.0f µs\ttarget ≤ 200; every request authenticated, governed, audited and receipted\n", res.NodeCPU)
	fmt.Fprintf(tw, "client CPU per request\t%.0f µs\tload generator and mock backend, this process\n", res.ClientCPU)
	fmt.Fprintf(tw, "direct CPU per request\t%.0f µs\tthe same without the node: this run's measure of the machine's speed\n", res.DirectCPU)
	fmt.Fprintf(tw, "node CPU ratio\t%.2f\tnode CPU per request over direct CPU per request: compare this across runs\n", res.NodeCPURatio)
	fmt.Fprintf(tw, "direct p50 / p99\t%.0f / %.0f µs\t\n", res.DirectP50, res.DirectP99)
	fmt.Fprintf(tw, "node p50 / p99\t%.0f / %.0f µs\t\n", res.NodeP50, res.NodeP99)
	fmt.Fprintf(tw, "overhead p50\t%.0f µs\ttarget ≤ 300\n", res.OverheadP50)
	fmt.Fprintf(tw, "overhead p99\t%.0f µs\ttarget ≤ 2000\n", res.OverheadP99)
	fmt.Fprintf(tw, "in the node p50 / p99\t%.0f / %.0f µs\tthe node's own histogram of a chat's time in it, less the model's (sios_chat_node_seconds, interpolated): no loopback hops, no load generator\n", res.InNodeP50, res.InNodeP99)
	if a := res.Against; a != nil {
		fmt.Fprintf(tw, "--against CPU per request\t%.0f µs\tratio %.2f; %s\n", a.NodeCPU, a.CPURatio, a.Binary)
		fmt.Fprintf(tw, "--against overhead p50 / p99\t%.0f / %.0f µs\t\n", a.OverheadP50, a.OverheadP99)
		fmt.Fprintf(tw, "--against in the node p50 / p99\t%.0f / %.0f µs\t\n", a.InNodeP50, a.InNodeP99)
		fmt.Fprintf(tw, "node CPU vs --against\t%.2f\tmedian of the rounds' ratios; below 1: the node under test uses less\n", res.CPUVsAgainst)
		fmt.Fprintf(tw, "--against errors\t%d\t\n", a.Errors)
	}
	for i, r := range res.PerRound {
		line := fmt.Sprintf("ratio %.2f, overhead p50 %.0f µs, p99 %.0f µs", r.NodeCPURatio, r.OverheadP50, r.OverheadP99)
		if base != nil {
			line += fmt.Sprintf("; --against %.0f µs (ratio %.2f)", r.AgainstCPU, r.AgainstCPURatio)
		}
		fmt.Fprintf(tw, "  round %d\t%.0f µs\t%s\n", i+1, r.NodeCPU, line)
	}
	fmt.Fprintf(tw, "receipt header\t%d bytes\t%s\n", res.ReceiptHeader, map[bool]string{true: "full receipts inline", false: "compact; full receipt at /v1/receipts/INDEX"}[res.FullReceipts])
	if *findMax {
		fmt.Fprintf(tw, "max sustained rate\t%d/s\ttarget ≥ 3500; p99 overhead ≤ 5 ms, no errors\n", res.MaxSustained)
		for _, s := range res.Steps {
			fmt.Fprintf(tw, "  %d/s\tp99 overhead %.0f µs, %.0f µs CPU/request, %d errors\t\n", s.RPS, s.OverheadP99, s.NodeCPU, s.Errors)
		}
	}
	fmt.Fprintf(tw, "node errors\t%d\t%s\n", res.NodeErrors, res.FirstError)
	fmt.Fprintf(tw, "audit entries\t%d\trecords and seals written\n", res.AuditRecords)
	if res.ProfileFile != "" {
		fmt.Fprintf(tw, "cpu profile\t%s\tgo tool pprof %s\n", res.ProfileFile, res.ProfileFile)
	}
	return tw.Flush()
}

// phase is one phase's figures: CPU per request (the node's; the direct phase's is
// this process's), latency percentiles and, through the node, the percentiles of the
// node's own histogram of its time (0 when it could not be read), in µs.
type phase struct{ cpu, client, p50, p99, inP50, inP99 float64 }

// medianOf is the median of f over the phases.
func medianOf(ps []phase, f func(phase) float64) float64 {
	v := make([]float64, len(ps))
	for i, p := range ps {
		v[i] = f(p)
	}
	return median(v)
}

// median is the middle value (the mean of the middle two for an even count); 0 for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// measured is one phase through the node.
type measured struct {
	lat                []time.Duration
	errors             int
	first              string
	nodeCPU, clientCPU float64   // µs per request
	inNode             nodeTimes // the node's histogram over the phase; empty if unread
}

// measure runs n calls at rate and the CPU the node process and this one spent.
func measure(nd *benchNode, n, rate int, call func(int) error) measured {
	t0, terr := nd.nodeTimes()
	n0, c0 := nd.cpu(), selfCPU()
	lat, errs, first := paced(n, rate, call)
	n1, c1 := nd.cpu(), selfCPU()
	m := measured{lat: lat, errors: errs, first: first, nodeCPU: usPer(n1-n0, n), clientCPU: usPer(c1-c0, n)}
	if t1, err := nd.nodeTimes(); err == nil && terr == nil {
		m.inNode = t1.since(t0)
	}
	return m
}

// phase is m's figures.
func (m measured) phase() phase {
	return phase{cpu: m.nodeCPU, client: m.clientCPU, p50: us(percentile(m.lat, 50)), p99: us(percentile(m.lat, 99)),
		inP50: us(m.inNode.quantile(0.5)), inP99: us(m.inNode.quantile(0.99))}
}

// benchNode is a 'sios up' process the gateway benchmark drives.
type benchNode struct {
	dir, url, key string
	metrics       string // the node's metrics URL ("" if it serves none)
	procs         int
	cmd           *exec.Cmd
	stopped       bool
}

var (
	benchKeyLine   = regexp.MustCompile(`bootstrap admin API key \(shown once; store it now\): (sios_[a-z0-9]+)`)
	benchServeLine = regexp.MustCompile(`serving the OpenAI-compatible API on (http://\S+)/v1`)
	benchProcsLine = regexp.MustCompile(`GOMAXPROCS=(\d+)`)
	// 'sios up' names its metrics listener, when it has one, on the line after the
	// console's.
	benchConsoleLine = regexp.MustCompile(`^console: `)
	benchMetricsLine = regexp.MustCompile(`^metrics: (http://\S+/metrics)$`)
)

// startBenchNode initialises dir with the benchmark brain and room for the rate, and
// starts 'sios up' on it with exe (this binary when empty).
func startBenchNode(dir, backendURL string, rps, procs int, exe string) (*benchNode, error) {
	if err := os.MkdirAll(filepath.Join(dir, "brains"), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "brains", "bench.yaml"), []byte(benchBrain), 0o600); err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`{"backend": %q, "principal_requests_per_minute": %d, "principal_burst": %d}`, backendURL, 60*rps*4, 4*rps)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	if exe == "" {
		var err error
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	cmd := exec.Command(exe, "--data", dir, "up", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--grace", "10s")
	cmd.Env = os.Environ()
	if procs > 0 {
		cmd.Env = append(cmd.Env, "GOMAXPROCS="+strconv.Itoa(procs))
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	nd := &benchNode{dir: dir, cmd: cmd}
	sc := bufio.NewScanner(stdout)
	deadline := time.AfterFunc(60*time.Second, func() { cmd.Process.Kill() })
	for sc.Scan() {
		l := sc.Text()
		if m := benchKeyLine.FindStringSubmatch(l); m != nil {
			nd.key = m[1]
		}
		if m := benchServeLine.FindStringSubmatch(l); m != nil {
			nd.url = m[1]
		}
		if m := benchProcsLine.FindStringSubmatch(l); m != nil {
			nd.procs, _ = strconv.Atoi(m[1])
		}
		if benchConsoleLine.MatchString(l) {
			if sc.Scan() {
				if m := benchMetricsLine.FindStringSubmatch(sc.Text()); m != nil {
					nd.metrics = m[1]
				}
			}
			break
		}
	}
	deadline.Stop()
	go io.Copy(io.Discard, stdout)
	if nd.url == "" || nd.key == "" {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("the node did not start: %s", strings.TrimSpace(stderr.String()))
	}
	return nd, nil
}

// cpu is the node process's CPU time so far: user and system, every thread, from
// /proc/PID/stat (in USER_HZ ticks, 100 per second on Linux).
func (nd *benchNode) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", nd.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count fields after its ')'.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * (time.Second / 100)
}

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// profile writes a CPU profile of the node over the next secs seconds to file.
func (nd *benchNode) profile(ctx context.Context, file string, secs int) error {
	c := admin.Dial(nd.dir)
	if c == nil {
		return errors.New("the node's admin socket does not answer")
	}
	b, err := c.Raw(ctx, fmt.Sprintf("/admin/debug/profile?seconds=%d", secs))
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}

// logSize is the node's audit log size, from its admin socket.
func (nd *benchNode) logSize(ctx context.Context) uint64 {
	var st struct {
		LogSize uint64 `json:"log_size"`
	}
	if c := admin.Dial(nd.dir); c != nil {
		c.Do(ctx, "GET", "/admin/status", nil, &st)
	}
	return st.LogSize
}

// stop ends the node with SIGTERM and waits for it to seal its ledger.
func (nd *benchNode) stop() error {
	if nd.stopped {
		return nil
	}
	nd.stopped = true
	nd.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- nd.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("the node exited with %v", err)
		}
		return nil
	case <-time.After(60 * time.Second):
		nd.cmd.Process.Kill()
		return errors.New("the node did not stop within 60s of SIGTERM")
	}
}

// paced issues n calls at a fixed rate, each in its own goroutine at its scheduled
// time, and returns the sorted latencies measured from the scheduled times (so a stall
// counts against every request it delays) and the number of failed calls.
func paced(n, rate int, call func(i int) error) ([]time.Duration, int, string) {
	lat := make([]time.Duration, n)
	var mu sync.Mutex
	failed, first := 0, ""
	var wg sync.WaitGroup
	interval := time.Second / time.Duration(rate)
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := call(i)
			lat[i] = time.Since(due)
			if err != nil {
				mu.Lock()
				if failed++; first == "" {
					first = err.Error()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sortDurations(lat)
	return lat, failed, first
}
