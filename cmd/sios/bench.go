package main

import (
	"context"
	"fmt"
	"sort"
	"time"
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
