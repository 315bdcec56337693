package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"time"

	"github.com/sios-project/sios/node"
)

const benchUsage = `Usage: sios bench SUBCOMMAND

Subcommands:
  audit    the signed audit ledger against raw Tessera POSIX, measured in the same run
  gateway  the node's overhead over calling a mock model backend directly, at a fixed rate
  memory   memory add rate, search latency over 100,000 memories, forget time
  fleet    an N-node fleet on loopback: record spread, failure detection, remote-call overhead
  replication  audit replication between two nodes: entries/s verified, lag under a steady rate
`

func runBench(ctx context.Context, e *env, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(e.stderr, benchUsage)
		return usageError("bench needs a subcommand")
	}
	switch args[0] {
	case "audit":
		return runBenchAudit(ctx, e, args[1:])
	case "gateway":
		return runBenchGateway(ctx, e, args[1:])
	case "memory":
		return runBenchMemory(ctx, e, args[1:])
	case "fleet":
		return runBenchFleet(ctx, e, args[1:])
	case "replication":
		return runBenchReplication(ctx, e, args[1:])
	case "-h", "--help", "help":
		fmt.Fprint(e.stdout, benchUsage)
		return nil
	}
	fmt.Fprint(e.stderr, benchUsage)
	return usageError("unknown bench %q", args[0])
}

// percentile returns the p-th percentile (0..100) of sorted durations.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i]
}

func sortDurations(d []time.Duration) { sort.Slice(d, func(i, j int) bool { return d[i] < d[j] }) }

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// serveInProcess serves an opened node on a loopback port until the returned stop is
// called; stop also closes the node. On failure the node is closed.
func serveInProcess(ctx context.Context, n *node.Node) (addr string, stop func() error, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		n.Close(ctx)
		return "", nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	ready, served := make(chan struct{}), make(chan error, 1)
	go func() { served <- n.Serve(sctx, ln, 5*time.Second, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-served:
		cancel()
		n.Close(ctx)
		return "", nil, err
	}
	return ln.Addr().String(), func() error {
		cancel()
		return errors.Join(<-served, n.Close(ctx))
	}, nil
}
