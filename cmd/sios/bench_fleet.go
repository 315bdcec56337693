package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/sios-project/sios/fleet"
	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/node"
)

// fleetBenchBrain is run locally on one node and remotely on another: the same
// builtin function, so that the difference is the fleet's.
const fleetBenchBrain = `id: %s
kind: domain
title: Fleet benchmark brain
system_prompt: You summarise.
backend: builtin
builtin: summarise
classification: OFFICIAL
rate_limit: {requests_per_minute: 6000000, burst: 100000}
`

type fleetBenchResult struct {
	Nodes               int     `json:"nodes"`
	FormMS              float64 `json:"form_ms"`
	Rounds              int     `json:"rounds"`
	ConvergenceP50MS    float64 `json:"convergence_p50_ms"`
	ConvergenceP99MS    float64 `json:"convergence_p99_ms"`
	FailureDetectMS     float64 `json:"failure_detect_ms"`
	Calls               int     `json:"calls"`
	LocalP50US          float64 `json:"local_p50_us"`
	RemoteP50US         float64 `json:"remote_p50_us"`
	RemoteOverheadP50US float64 `json:"remote_overhead_p50_us"`
}

func runBenchFleet(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench fleet", "bench fleet [--nodes N] [--rounds R] [--calls C] [--json]")
	nodes := fs.Int("nodes", 50, "fleet members, in two institutions, all in this process on 127.0.0.1")
	rounds := fs.Int("rounds", 20, "records published, one at a time, to time their spread")
	calls := fs.Int("calls", 500, "requests to a local and to a remote brain, each")
	asJSON := fs.Bool("json", false, "print JSON")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 || *nodes < 3 || *rounds < 1 || *calls < 1 {
		return usageError("bench fleet takes --nodes ≥ 3, --rounds ≥ 1, --calls ≥ 1 and no arguments")
	}
	tuneForServing()
	dir, err := os.MkdirTemp("", "sios-bench-fleet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	res := fleetBenchResult{Nodes: *nodes, Rounds: *rounds, Calls: *calls}
	if err := benchMembership(ctx, e, dir, &res, *asJSON); err != nil {
		return err
	}
	if err := benchRemoteCalls(ctx, e, dir, &res, *asJSON); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(e.stdout, res)
	}
	fmt.Fprintf(e.stdout, "%d nodes of two institutions on 127.0.0.1, membership over mutual TLS\n", res.Nodes)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "fleet formed\t%.0f ms\tmembers started one after another until every one sees every other alive\n", res.FormMS)
	fmt.Fprintf(tw, "record reaches every node p50 / p99\t%.0f / %.0f ms\ttarget p99 ≤ 2000 (%d records)\n", res.ConvergenceP50MS, res.ConvergenceP99MS, res.Rounds)
	fmt.Fprintf(tw, "killed node marked dead by all\t%.0f ms\ttarget ≤ 6000\n", res.FailureDetectMS)
	fmt.Fprintf(tw, "local / remote brain p50\t%.0f / %.0f µs\t%d calls each, same builtin function\n", res.LocalP50US, res.RemoteP50US, res.Calls)
	fmt.Fprintf(tw, "remote invocation overhead p50\t%.0f µs\ttarget ≤ 3000\n", res.RemoteOverheadP50US)
	return tw.Flush()
}

// benchMembership forms an N-node fleet, times the spread of new records and the
// detection of a killed node.
func benchMembership(ctx context.Context, e *env, dir string, res *fleetBenchResult, quiet bool) error {
	n := res.Nodes
	progress(e, quiet, "enrolling %d nodes under two institution roots", n)
	ids := make([]*identity.Node, n)
	var roots [2]string
	for i := range n {
		inst := i % 2
		r, err := identity.Init(filepath.Join(dir, fmt.Sprintf("n%02d", i)), fmt.Sprintf("n%02d", i), roots[inst], time.Now())
		if err != nil {
			return err
		}
		if roots[inst] == "" {
			roots[inst] = r.RootKeyFile
		}
		ids[i] = r.Node
	}
	trust := fleet.NewTrust(ids[0].Root, ids[1].Root)
	trustFn := func() fleet.Trust { return trust }
	logger := slog.New(slog.DiscardHandler)
	members := make([]*fleet.Fleet, n)
	pubs := make([]*fleet.Publisher, n)
	defer func() {
		var wg sync.WaitGroup
		for _, m := range members {
			if m != nil {
				wg.Go(func() { m.Close(time.Second) })
			}
		}
		wg.Wait()
	}()
	progress(e, quiet, "starting %d members; each joins one random earlier member", n)
	start := time.Now()
	for i := range n {
		p, err := fleet.OpenPublisher(filepath.Join(dir, fmt.Sprintf("n%02d", i), "feed"), ids[i], time.Now())
		if err != nil {
			return err
		}
		pubs[i] = p
		brains := &fleet.BrainsBody{Brains: []fleet.Brain{{ID: fmt.Sprintf("brain-%02d", i), Kind: "domain", Classification: "OFFICIAL"}}}
		if _, err := p.Publish(fleet.KindBrains, brains, time.Now()); err != nil {
			return err
		}
		cfg := fleet.Config{Node: ids[i], Publisher: p, Log: fleet.NewLog(), Trust: trustFn, Listen: "127.0.0.1:0", Logger: logger}
		if i > 0 {
			cfg.Join = []string{members[rand.N(i)].Addr()}
		}
		if members[i], err = fleet.Start(ctx, cfg); err != nil {
			return err
		}
	}
	if err := waitFor(ctx, 120*time.Second, func() bool {
		for _, m := range members {
			if alive(m) != n-1 {
				return false
			}
		}
		return true
	}); err != nil {
		return fmt.Errorf("the fleet did not form: %v", err)
	}
	res.FormMS = ms(time.Since(start))

	progress(e, quiet, "publishing %d records, one at a time, from random members", res.Rounds)
	var spread []time.Duration
	for round := range res.Rounds {
		from := rand.N(n)
		if err := members[from].Publish(fleet.KindLimits, &fleet.LimitsBody{RequestsPerMinute: uint64(1000 + round)}); err != nil {
			return err
		}
		t0 := time.Now()
		seq := pubs[from].Next() - 1
		id := ids[from].ID()
		if err := waitFor(ctx, 30*time.Second, func() bool {
			for _, m := range members {
				if v, ok := m.Log().NodeView(id); !ok || v.Seq < seq {
					return false
				}
			}
			return true
		}); err != nil {
			return fmt.Errorf("record %d of %s did not reach every node: %v", seq, id, err)
		}
		spread = append(spread, time.Since(t0))
	}
	sortDurations(spread)
	res.ConvergenceP50MS, res.ConvergenceP99MS = ms(percentile(spread, 50)), ms(percentile(spread, 99))

	victim := 1 + rand.N(n-1)
	progress(e, quiet, "killing member %d without a goodbye", victim)
	members[victim].Kill()
	t0 := time.Now()
	dead := ids[victim].ID()
	members[victim] = nil
	if err := waitFor(ctx, 60*time.Second, func() bool {
		for _, m := range members {
			if m != nil && stateOf(m, dead) != fleet.StateDead {
				return false
			}
		}
		return true
	}); err != nil {
		return fmt.Errorf("the killed node was not marked dead everywhere: %v", err)
	}
	res.FailureDetectMS = ms(time.Since(t0))
	return nil
}

func alive(m *fleet.Fleet) int {
	k := 0
	for _, p := range m.Peers() {
		if p.State == fleet.StateAlive {
			k++
		}
	}
	return k
}

func stateOf(m *fleet.Fleet, id string) string {
	for _, p := range m.Peers() {
		if p.NodeID == id {
			return p.State
		}
	}
	return ""
}

// waitFor polls cond every few milliseconds until it holds.
func waitFor(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			return fmt.Errorf("gave up after %s", limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
	return nil
}

// benchRemoteCalls runs two full nodes and times the same builtin brain served
// locally and by the peer, through the OpenAI-compatible API of the first.
func benchRemoteCalls(ctx context.Context, e *env, dir string, res *fleetBenchResult, quiet bool) error {
	dirA, dirC := filepath.Join(dir, "node-a"), filepath.Join(dir, "node-c")
	_, key, err := node.Bootstrap(dirA, time.Now())
	if err != nil {
		return err
	}
	if _, err := identity.Init(dirC, "node-c", filepath.Join(dirA, identity.RootKeyFile), time.Now()); err != nil {
		return err
	}
	if _, _, err := node.Bootstrap(dirC, time.Now()); err != nil {
		return err
	}
	for _, b := range []struct{ dir, id string }{{dirA, "bench-local"}, {dirC, "bench-remote"}} {
		if err := os.MkdirAll(filepath.Join(b.dir, "brains"), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(b.dir, "brains", "bench.yaml"), []byte(fmt.Sprintf(fleetBenchBrain, b.id)), 0o600); err != nil {
			return err
		}
	}
	logger := slog.New(slog.DiscardHandler)
	start := func(dir string, join []string) (*node.Node, string, func() error, error) {
		nd, err := node.Open(ctx, node.Options{DataDir: dir, Logger: logger, Config: node.Config{
			FleetListen: "127.0.0.1:0", Join: join, PrincipalRequestsPerMinute: 6000000, PrincipalBurst: 100000}})
		if err != nil {
			return nil, "", nil, err
		}
		addr, stop, err := serveInProcess(ctx, nd)
		return nd, addr, stop, err
	}
	progress(e, quiet, "starting two full nodes; node c offers bench-remote")
	a, apiA, stopA, err := start(dirA, nil)
	if err != nil {
		return err
	}
	defer stopA()
	_, _, stopC, err := start(dirC, []string{a.Fleet().Addr()})
	if err != nil {
		return err
	}
	defer stopC()
	if err := waitFor(ctx, 30*time.Second, func() bool { return len(a.Fleet().Candidates("bench-remote")) > 0 }); err != nil {
		return fmt.Errorf("node a never learnt a route to bench-remote: %v", err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	call := func(model string) (time.Duration, error) {
		body := []byte(`{"model":"` + model + `","messages":[{"role":"user","content":"Summarise: the ward round found the patient stable. Observations normal."}]}`)
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+apiA+"/v1/chat/completions", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		t0 := time.Now()
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("%s answered %d", model, resp.StatusCode)
		}
		return time.Since(t0), nil
	}
	progress(e, quiet, "%d calls each to bench-local and bench-remote, alternating", res.Calls)
	for range 20 { // warm connections and caches
		if _, err := call("bench-local"); err != nil {
			return err
		}
		if _, err := call("bench-remote"); err != nil {
			return err
		}
	}
	var local, remote []time.Duration
	for range res.Calls {
		d, err := call("bench-local")
		if err != nil {
			return err
		}
		local = append(local, d)
		if d, err = call("bench-remote"); err != nil {
			return err
		}
		remote = append(remote, d)
	}
	sortDurations(local)
	sortDurations(remote)
	res.LocalP50US, res.RemoteP50US = us(percentile(local, 50)), us(percentile(remote, 50))
	res.RemoteOverheadP50US = res.RemoteP50US - res.LocalP50US
	return nil
}
