package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/sios-project/sios/admin"
	"github.com/sios-project/sios/backend/mock"
	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/node"
	"github.com/sios-project/sios/trace"
)

// decideBenchBrain is a panel member served by its own model on its node's mock server.
const decideBenchBrain = `id: %s
kind: domain
title: Decision benchmark member
description: A panel member for sios bench decide.
system_prompt: Decide.
classification: OFFICIAL
model: %s
arbitration: true
max_tokens: 64
timeout: 30s
rate_limit: {requests_per_minute: 6000000, burst: 100000}
`

type decideBenchResult struct {
	ServiceMS      float64 `json:"model_service_ms"`
	Decisions      int     `json:"decisions"`
	DecisionP50MS  float64 `json:"decision_p50_ms"`
	DecisionP99MS  float64 `json:"decision_p99_ms"`
	OverheadP50MS  float64 `json:"overhead_over_slowest_member_p50_ms"`
	OverheadP99MS  float64 `json:"overhead_over_slowest_member_p99_ms"`
	OverModelP50MS float64 `json:"overhead_over_model_p50_ms"`
	OverModelP99MS float64 `json:"overhead_over_model_p99_ms"`
	// The same, measured in the same run, for the panel without its member at another
	// institution (four members, one institution: no consent grant found, used or
	// carried), and the difference the cross-institution member makes at p50.
	WithinDecisionP50MS float64 `json:"within_institution_decision_p50_ms"`
	WithinOverheadP50MS float64 `json:"within_institution_overhead_over_slowest_member_p50_ms"`
	WithinOverheadP99MS float64 `json:"within_institution_overhead_over_slowest_member_p99_ms"`
	CrossCostP50MS      float64 `json:"cross_institution_member_added_overhead_p50_ms"`
	Clients             int     `json:"saturation_clients"`
	DecisionsPerSecond  float64 `json:"decisions_per_second"`
	TraceRecords        int     `json:"trace_records"`
	TraceBytes          int     `json:"trace_bytes"`
	VerifyP50MS         float64 `json:"verify_trace_p50_ms"`
	VerifyP99MS         float64 `json:"verify_trace_p99_ms"`
}

func runBenchDecide(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench decide", "bench decide [--decisions N] [--clients C] [--seconds S] [--latency D] [--json]")
	decisions := fs.Int("decisions", 200, "decisions made one after another, to time each")
	clients := fs.Int("clients", 16, "concurrent clients at saturation")
	seconds := fs.Int("seconds", 10, "how long to run at saturation")
	latency := fs.Duration("latency", 20*time.Millisecond, "the mock models' service time")
	asJSON := fs.Bool("json", false, "print JSON")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 || *decisions < 1 || *clients < 1 || *seconds < 1 {
		return usageError("bench decide takes --decisions ≥ 1, --clients ≥ 1, --seconds ≥ 1 and no arguments")
	}
	tuneForServing()
	dir, err := os.MkdirTemp("", "sios-bench-decide-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	res := decideBenchResult{ServiceMS: ms(*latency), Decisions: *decisions, Clients: *clients}

	progress(e, *asJSON, "three nodes in two institutions on 127.0.0.1, each before a mock model server (%s per answer)", *latency)
	f, err := startDecideFleet(ctx, dir, *latency)
	if err != nil {
		return err
	}
	defer f.stop()
	panel := func(members ...string) []byte {
		b, _ := json.Marshal(map[string]any{"question": "Approve the purchase order?", "options": []string{"approve", "reject", "escalate"},
			"members": members, "deadline": "30s"})
		return b
	}
	// opinion@* is B's, of another institution: asked under the principal's grant.
	body := panel("triage", "pharmacy", "radiology", "coding@"+f.idA, "opinion@*")
	within := panel("triage", "pharmacy", "radiology", "coding@"+f.idA)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	decideWith := func(body []byte, ballots int) (wall, members time.Duration, outIndex uint64, err error) {
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+f.api+"/v1/decisions", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+f.key)
		req.Header.Set("Content-Type", "application/json")
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, 0, 0, err
		}
		data, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		wall = time.Since(t0)
		var out struct {
			Ballots []json.RawMessage `json:"ballots"`
			Record  struct {
				Index uint64 `json:"index"`
			} `json:"record"`
			Timing struct {
				MembersMS float64 `json:"members_ms"`
			} `json:"timing"`
		}
		if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &out) != nil || len(out.Ballots) != ballots {
			return 0, 0, 0, fmt.Errorf("a decision did not get %d ballots: %d %.300s", ballots, resp.StatusCode, data)
		}
		return wall, time.Duration(out.Timing.MembersMS * float64(time.Millisecond)), out.Record.Index, nil
	}
	decide := func() (time.Duration, time.Duration, uint64, error) { return decideWith(body, 5) }

	progress(e, *asJSON, "%d decisions of a five-member panel (two remote), one at a time", res.Decisions)
	for range 10 { // warm connections, caches and the route to each peer
		if _, _, _, err := decide(); err != nil {
			return err
		}
	}
	var walls, overSlowest, overModel []time.Duration
	var last uint64
	for range res.Decisions {
		wall, members, idx, err := decide()
		if err != nil {
			return err
		}
		walls, overSlowest, overModel = append(walls, wall), append(overSlowest, wall-members), append(overModel, wall-*latency)
		last = idx
	}
	for _, d := range [][]time.Duration{walls, overSlowest, overModel} {
		sortDurations(d)
	}
	res.DecisionP50MS, res.DecisionP99MS = ms(percentile(walls, 50)), ms(percentile(walls, 99))
	res.OverheadP50MS, res.OverheadP99MS = ms(percentile(overSlowest, 50)), ms(percentile(overSlowest, 99))
	res.OverModelP50MS, res.OverModelP99MS = ms(percentile(overModel, 50)), ms(percentile(overModel, 99))

	progress(e, *asJSON, "%d decisions of the panel without its member at another institution, one at a time", res.Decisions)
	var withinWalls, withinOver []time.Duration
	for range res.Decisions {
		wall, members, _, err := decideWith(within, 4)
		if err != nil {
			return err
		}
		withinWalls, withinOver = append(withinWalls, wall), append(withinOver, wall-members)
	}
	sortDurations(withinWalls)
	sortDurations(withinOver)
	res.WithinDecisionP50MS = ms(percentile(withinWalls, 50))
	res.WithinOverheadP50MS, res.WithinOverheadP99MS = ms(percentile(withinOver, 50)), ms(percentile(withinOver, 99))
	res.CrossCostP50MS = res.OverheadP50MS - res.WithinOverheadP50MS

	progress(e, *asJSON, "%d clients deciding as fast as the node lets them for %ds", res.Clients, *seconds)
	var done atomic.Int64
	var failed atomic.Value
	until := time.Now().Add(time.Duration(*seconds) * time.Second)
	start := time.Now()
	var wg sync.WaitGroup
	for range res.Clients {
		wg.Go(func() {
			for time.Now().Before(until) {
				if _, _, _, err := decide(); err != nil {
					failed.Store(err)
					return
				}
				done.Add(1)
			}
		})
	}
	wg.Wait()
	if err, _ := failed.Load().(error); err != nil {
		return err
	}
	res.DecisionsPerSecond = float64(done.Load()) / time.Since(start).Seconds()

	progress(e, *asJSON, "tracing decision record %d and verifying the trace offline", last)
	var tr admin.TraceResponse
	if err := admin.Dial(f.dirO).Do(ctx, "POST", "/admin/audit/trace", admin.TraceRequest{Record: fmt.Sprint(last)}, &tr); err != nil {
		return fmt.Errorf("audit trace: %v", err)
	}
	var verifies []time.Duration
	for range 50 {
		t0 := time.Now()
		c, err := trace.Verify(tr.Trace, trace.Options{Evidence: traceEvidence})
		if err != nil {
			return fmt.Errorf("the trace does not verify: %v", err)
		}
		verifies = append(verifies, time.Since(t0))
		res.TraceRecords = len(c.Records)
	}
	sortDurations(verifies)
	res.TraceBytes = len(tr.Trace)
	res.VerifyP50MS, res.VerifyP99MS = ms(percentile(verifies, 50)), ms(percentile(verifies, 99))

	if *asJSON {
		return printJSON(e.stdout, res)
	}
	fmt.Fprintf(e.stdout, "a five-member panel (three brains of the origin, one of a peer of its institution, one of another institution's peer); models answer in %.0f ms\n", res.ServiceMS)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "decision p50 / p99\t%.1f / %.1f ms\t%d decisions, one at a time\n", res.DecisionP50MS, res.DecisionP99MS, res.Decisions)
	fmt.Fprintf(tw, "overhead over the slowest member's answer p50 / p99\t%.1f / %.1f ms\ttarget p50 ≤ 10 (request record, authorisation, count, signed outcome and its record, HTTP)\n", res.OverheadP50MS, res.OverheadP99MS)
	fmt.Fprintf(tw, "overhead over the model's answer p50 / p99\t%.1f / %.1f ms\tthe above plus the members' own records, signatures and the fleet's round trips\n", res.OverModelP50MS, res.OverModelP99MS)
	fmt.Fprintf(tw, "without the member at another institution: decision p50, overhead p50 / p99\t%.1f ms, %.1f / %.1f ms\tfour members of one institution: no consent grant found, used (fsync, consent.use record) or carried\n",
		res.WithinDecisionP50MS, res.WithinOverheadP50MS, res.WithinOverheadP99MS)
	fmt.Fprintf(tw, "overhead the member at another institution adds, p50\t%.1f ms\t\n", res.CrossCostP50MS)
	fmt.Fprintf(tw, "decisions per second at saturation\t%.0f\t%d clients\n", res.DecisionsPerSecond, res.Clients)
	fmt.Fprintf(tw, "audit verify --trace p50 / p99\t%.1f / %.1f ms\ttarget < 50 (%d records, %d bytes, five contributors on three nodes)\n", res.VerifyP50MS, res.VerifyP99MS, res.TraceRecords, res.TraceBytes)
	return tw.Flush()
}

// decideFleet is the benchmark's three nodes.
type decideFleet struct {
	api, key, dirO, idA string
	stops               []func() error
	mocks               []*http.Server
}

func (f *decideFleet) stop() {
	for i := len(f.stops) - 1; i >= 0; i-- {
		f.stops[i]()
	}
	for _, m := range f.mocks {
		m.Close()
	}
}

func startDecideFleet(ctx context.Context, dir string, latency time.Duration) (*decideFleet, error) {
	f := &decideFleet{dirO: filepath.Join(dir, "o")}
	dirA, dirB := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	_, key, err := node.Bootstrap(f.dirO, time.Now())
	if err != nil {
		return nil, err
	}
	f.key = key
	if _, err := identity.Init(dirA, "a", filepath.Join(f.dirO, identity.RootKeyFile), time.Now()); err != nil {
		return nil, err
	}
	for _, d := range []string{dirA, dirB} {
		if _, _, err := node.Bootstrap(d, time.Now()); err != nil {
			return nil, err
		}
	}
	// O and A trust B's institution, and B theirs.
	certO, _ := identity.LoadCertificate(filepath.Join(f.dirO, identity.NodeCertFile))
	certB, _ := identity.LoadCertificate(filepath.Join(dirB, identity.NodeCertFile))
	for _, p := range []struct {
		dirs []string
		root identity.Certificate
	}{{[]string{f.dirO, dirA}, certB}, {[]string{dirB}, certO}} {
		rf, _ := json.Marshal(fleet.ExportRoot(p.root))
		for _, d := range p.dirs {
			if _, err := fleet.AddRoot(d, rf); err != nil {
				return nil, err
			}
		}
	}
	brains := map[string][]string{f.dirO: {"triage", "pharmacy", "radiology"}, dirA: {"coding"}, dirB: {"opinion"}}
	logger := slog.New(slog.DiscardHandler)
	var join []string
	var origin *node.Node
	for _, d := range []string{f.dirO, dirA, dirB} {
		for _, b := range brains[d] {
			if err := os.MkdirAll(filepath.Join(d, "brains"), 0o700); err != nil {
				return nil, err
			}
			if err := os.WriteFile(filepath.Join(d, "brains", b+".yaml"), []byte(fmt.Sprintf(decideBenchBrain, b, "m-"+b)), 0o600); err != nil {
				return nil, err
			}
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		m := &http.Server{Handler: &mock.Server{Latency: latency}}
		go m.Serve(ln)
		f.mocks = append(f.mocks, m)
		nd, err := node.Open(ctx, node.Options{DataDir: d, Logger: logger, Config: node.Config{
			FleetListen: "127.0.0.1:0", Join: join, Backend: "http://" + ln.Addr().String() + "/v1", Model: "bench",
			PrincipalRequestsPerMinute: 6000000, PrincipalBurst: 100000, PeerRequestsPerMinute: 6000000}})
		if err != nil {
			return nil, err
		}
		addr, stop, err := serveInProcess(ctx, nd)
		if err != nil {
			return nil, err
		}
		f.stops = append(f.stops, stop)
		if d == f.dirO {
			f.api, origin = addr, nd
		}
		if d == dirA {
			f.idA = nd.ID()
		}
		join = []string{nd.Fleet().Addr()}
	}
	if err := waitFor(ctx, 30*time.Second, func() bool {
		fl := origin.Fleet()
		return len(fl.Candidates("coding")) > 0 && len(fl.Candidates("opinion")) > 0
	}); err != nil {
		return nil, fmt.Errorf("the fleet did not form: %v", err)
	}
	// The question goes to B's opinion, of another institution, only under a consent
	// grant of the principal's (docs/consent.md section 10.8).
	grant, _ := json.Marshal(map[string]any{"to": certB.RootID, "action": "invoke", "brain": "opinion", "max_classification": "OFFICIAL",
		"purpose": "sios bench decide", "expires_in": 86400})
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+f.api+"/v1/consents", bytes.NewReader(grant))
	req.Header.Set("Authorization", "Bearer "+f.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("consent grant: %v", err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("consent grant: %d %.300s", resp.StatusCode, out)
	}
	return f, nil
}
