package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/sios-project/sios/node"
)

// benchCommands are the benchmarks; 'sios bench' lists them all.
func benchCommands() []command {
	return []command{
		{"audit", "the signed audit ledger against raw Tessera POSIX, measured in the same run", runBenchAudit},
		{"gateway", "the node's overhead over calling a mock model backend directly, at a fixed rate", runBenchGateway},
		{"memory", "memory add rate, search latency over 100,000 memories, forget time", runBenchMemory},
		{"fleet", "an N-node fleet on loopback: record spread, failure detection, remote-call overhead", runBenchFleet},
		{"replication", "audit replication between two nodes: entries/s verified, lag under a steady rate", runBenchReplication},
		{"decide", "a five-member panel across three nodes: overhead over the slowest member, decisions/s, audit verify --trace", runBenchDecide},
	}
}

// subcommandUsage is the usage text of a command with subcommands.
func subcommandUsage(name string, subs []command) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "Usage: sios [--data DIR] %s SUBCOMMAND\n\nSubcommands:\n", name)
	for _, c := range subs {
		fmt.Fprintf(&sb, "  %-12s %s\n", c.name, c.summary)
	}
	return sb.String()
}

// runSubcommand runs the subcommand args[0] of name.
func runSubcommand(ctx context.Context, e *env, name string, subs []command, args []string) error {
	usage := subcommandUsage(name, subs)
	if len(args) == 0 {
		fmt.Fprint(e.stderr, usage)
		return usageError("%s needs a subcommand", name)
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(e.stdout, usage)
		return nil
	}
	for _, c := range subs {
		if c.name == args[0] {
			return c.run(ctx, e, args[1:])
		}
	}
	fmt.Fprint(e.stderr, usage)
	return usageError("unknown %s subcommand %q", name, args[0])
}

func runBench(ctx context.Context, e *env, args []string) error {
	return runSubcommand(ctx, e, "bench", benchCommands(), args)
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

// usPer is d per item, in µs.
func usPer(d time.Duration, n int) float64 {
	return float64(d.Microseconds()) / float64(max(n, 1))
}

// us is d in microseconds, with its fraction.
func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }

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
