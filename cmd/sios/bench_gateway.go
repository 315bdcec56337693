package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/sios-project/sios/backend/mock"
	"github.com/sios-project/sios/node"
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

type gatewayBenchResult struct {
	RPS            int     `json:"rps"`
	Requests       int     `json:"requests"`
	BackendLatency float64 `json:"backend_latency_ms"`
	DirectP50      float64 `json:"direct_p50_us"`
	DirectP99      float64 `json:"direct_p99_us"`
	NodeP50        float64 `json:"node_p50_us"`
	NodeP99        float64 `json:"node_p99_us"`
	OverheadP50    float64 `json:"overhead_p50_us"`
	OverheadP99    float64 `json:"overhead_p99_us"`
	NodeErrors     int     `json:"node_errors"`
	FirstError     string  `json:"first_error,omitempty"`
	AuditRecords   uint64  `json:"audit_entries"`
}

func runBenchGateway(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench gateway", "bench gateway [--rps N] [--duration D] [--backend-latency D] [--json]")
	rps := fs.Int("rps", 2000, "fixed request rate, in both phases")
	duration := fs.Duration("duration", 5*time.Second, "length of each phase")
	latency := fs.Duration("backend-latency", 20*time.Millisecond, "the mock backend's fixed service time")
	asJSON := fs.Bool("json", false, "print JSON")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the node phase to FILE")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 || *rps < 1 || *duration <= 0 {
		return usageError("bench gateway takes --rps ≥ 1 and --duration > 0, and no arguments")
	}
	tuneForServing()
	n := int(float64(*rps) * duration.Seconds())
	res := gatewayBenchResult{RPS: *rps, Requests: n, BackendLatency: ms(*latency)}

	// The mock model server, on loopback.
	mockLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	mockSrv := &http.Server{Handler: &mock.Server{Latency: *latency, Reply: "The answer is forty-two."}}
	go mockSrv.Serve(mockLn)
	defer mockSrv.Close()
	mockURL := "http://" + mockLn.Addr().String() + "/v1"

	// A fresh node whose default backend is the mock.
	dir, err := os.MkdirTemp("", "sios-bench-gateway-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	_, key, err := node.Bootstrap(dir, time.Now())
	if err != nil {
		return err
	}
	// A brain with room for the offered rate: the benchmark measures overhead, not limits.
	if err := os.MkdirAll(filepath.Join(dir, "brains"), 0o700); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "brains", "bench.yaml"), []byte(benchBrain), 0o600); err != nil {
		return err
	}
	nd, err := node.Open(ctx, node.Options{DataDir: dir, Config: node.Config{Backend: mockURL,
		PrincipalRequestsPerMinute: 60 * *rps * 2, PrincipalBurst: *rps},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		return err
	}
	nodeLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	served := make(chan error, 1)
	go func() { served <- nd.Serve(sctx, nodeLn, 10*time.Second, nil) }()

	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 4096, MaxIdleConnsPerHost: 4096, IdleConnTimeout: time.Minute}}
	body := []byte(`{"model":"bench","messages":[{"role":"user","content":"Code this discharge summary: community-acquired pneumonia, type 2 diabetes."}]}`)
	call := func(url, key string) func(int) error {
		return func(int) error {
			req, _ := http.NewRequestWithContext(ctx, "POST", url, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			if key != "" {
				req.Header.Set("Authorization", "Bearer "+key)
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
			return nil
		}
	}
	progress(e, *asJSON, "direct: %d requests at %d/s to the mock backend (%s service time)", n, *rps, *latency)
	direct, _, _ := paced(n, *rps, call(mockURL+"/chat/completions", ""))
	progress(e, *asJSON, "node: %d requests at %d/s through auth, policy, routing, perimeter and audit", n, *rps)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
	}
	through, errs, first := paced(n, *rps, call("http://"+nodeLn.Addr().String()+"/v1/chat/completions", key))
	res.NodeErrors, res.FirstError = errs, first
	if *cpuProfile != "" {
		pprof.StopCPUProfile()
	}

	stop()
	<-served
	res.AuditRecords = nd.Ledger().Size()
	if err := nd.Close(ctx); err != nil {
		return err
	}
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
	res.DirectP50, res.DirectP99 = us(percentile(direct, 50)), us(percentile(direct, 99))
	res.NodeP50, res.NodeP99 = us(percentile(through, 50)), us(percentile(through, 99))
	res.OverheadP50, res.OverheadP99 = res.NodeP50-res.DirectP50, res.NodeP99-res.DirectP99
	if *asJSON {
		return printJSON(e.stdout, res)
	}
	fmt.Fprintf(e.stdout, "%d requests at %d/s; mock backend service time %s\n", n, *rps, *latency)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "direct p50 / p99\t%.0f / %.0f µs\t\n", res.DirectP50, res.DirectP99)
	fmt.Fprintf(tw, "node p50 / p99\t%.0f / %.0f µs\tevery request authenticated, governed, audited and receipted\n", res.NodeP50, res.NodeP99)
	fmt.Fprintf(tw, "overhead p50\t%.0f µs\ttarget ≤ 200\n", res.OverheadP50)
	fmt.Fprintf(tw, "overhead p99\t%.0f µs\ttarget ≤ 2000\n", res.OverheadP99)
	fmt.Fprintf(tw, "node errors\t%d\t%s\n", res.NodeErrors, res.FirstError)
	fmt.Fprintf(tw, "audit entries\t%d\trecords and seals written\n", res.AuditRecords)
	return tw.Flush()
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
