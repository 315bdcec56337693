package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/node"
	"github.com/sios-project/sios/replication"
)

type replicationBenchResult struct {
	Backlog         int     `json:"backlog_records"`
	ReplicatedPerS  float64 `json:"replicated_per_s"`
	CadenceMS       float64 `json:"cadence_ms"`
	Rate            int     `json:"append_rate_per_s"`
	LagP50MS        float64 `json:"lag_p50_ms"`
	LagP99MS        float64 `json:"lag_p99_ms"`
	SteadyEntries   uint64  `json:"steady_entries"`
	ReplicaVerified uint64  `json:"replica_size"`
}

func runBenchReplication(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench replication", "bench replication [--records N] [--rate R] [--duration D] [--cadence D] [--json]")
	records := fs.Int("records", 100000, "backlog the replica catches up on (throughput phase)")
	rate := fs.Int("rate", 2000, "sustained append rate of the lag phase, records/s")
	duration := fs.Duration("duration", 10*time.Second, "length of the lag phase")
	cadence := fs.Duration("cadence", time.Second, "how often the source tells the replica its checkpoint")
	asJSON := fs.Bool("json", false, "print JSON")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 || *records < 1 || *rate < 1 || *duration <= 0 || *cadence <= 0 {
		return usageError("bench replication takes --records ≥ 1, --rate ≥ 1, --duration > 0, --cadence > 0 and no arguments")
	}
	tuneForServing()
	dir, err := os.MkdirTemp("", "sios-bench-replication-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	res := replicationBenchResult{Backlog: *records, Rate: *rate, CadenceMS: ms(*cadence)}

	dirA, dirB := filepath.Join(dir, "source"), filepath.Join(dir, "replica")
	if _, _, err := node.Bootstrap(dirA, time.Now()); err != nil {
		return err
	}
	if _, err := identity.Init(dirB, "replica", filepath.Join(dirA, identity.RootKeyFile), time.Now()); err != nil {
		return err
	}
	if _, _, err := node.Bootstrap(dirB, time.Now()); err != nil {
		return err
	}
	idB, err := identity.LoadCertificate(filepath.Join(dirB, identity.NodeCertFile))
	if err != nil {
		return err
	}
	logger := slog.New(slog.DiscardHandler)
	open := func(dir string, cfg node.Config) (*node.Node, error) {
		cfg.FleetListen = "127.0.0.1:0"
		return node.Open(ctx, node.Options{DataDir: dir, Logger: logger, Config: cfg})
	}
	a, err := open(dirA, node.Config{Replicas: []replication.ReplicaConfig{{Node: idB.NodeID, Cadence: cadence.String()}}})
	if err != nil {
		return err
	}
	progress(e, *asJSON, "appending a backlog of %d records to the source", *records)
	if err := appendConcurrently(ctx, a, *records, nil); err != nil {
		return err
	}
	_, stopA, err := serveInProcess(ctx, a)
	if err != nil {
		return err
	}
	defer stopA()
	b, err := open(dirB, node.Config{Join: []string{a.Fleet().Addr()}})
	if err != nil {
		return err
	}
	copySize := func() uint64 {
		for _, s := range b.Replication().Statuses() {
			if s.Role == "source" {
				return s.Size
			}
		}
		return 0
	}
	start := time.Now()
	_, stopB, err := serveInProcess(ctx, b)
	if err != nil {
		return err
	}
	defer stopB()
	// Timed from the source's first notification, not from start-up: the wait for the
	// first cadence tick is not replication.
	if err := waitFor(ctx, time.Minute+2*(*cadence), func() bool {
		for _, s := range b.Replication().Statuses() {
			if s.Role == "source" {
				return true
			}
		}
		return false
	}); err != nil {
		return fmt.Errorf("the source never notified the replica: %v", err)
	}
	start = time.Now()
	progress(e, *asJSON, "replica catching up on %d entries (every entry, seal and tile verified)", a.Ledger().Size())
	target := a.Ledger().Size()
	if err := waitFor(ctx, 10*time.Minute, func() bool { return copySize() >= target }); err != nil {
		return fmt.Errorf("the replica did not catch up: %v", err)
	}
	res.ReplicatedPerS = float64(target) / time.Since(start).Seconds()

	progress(e, *asJSON, "appending %d records/s for %s; sampling the replica's lag", *rate, *duration)
	var mu sync.Mutex
	var reached []stamp // when the source's size first reached each value
	lctx, cancel := context.WithTimeout(ctx, *duration)
	defer cancel()
	var lags []time.Duration
	var sampling sync.WaitGroup
	sampling.Go(func() {
		for lctx.Err() == nil {
			time.Sleep(20 * time.Millisecond)
			s, now := copySize(), time.Now()
			mu.Lock()
			// The lag is how long ago the source first held more than the copy does.
			i := len(reached) - 1
			for i >= 0 && reached[i].size > s {
				i--
			}
			switch {
			case len(reached) == 0:
			case i+1 < len(reached):
				lags = append(lags, now.Sub(reached[i+1].at))
			default:
				lags = append(lags, 0)
			}
			mu.Unlock()
		}
	})
	before := a.Ledger().Size()
	err = pacedAppend(lctx, a, *rate, func() {
		mu.Lock()
		if size := a.Ledger().Size(); len(reached) == 0 || size > reached[len(reached)-1].size {
			reached = append(reached, stamp{size, time.Now()})
		}
		mu.Unlock()
	})
	sampling.Wait()
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	res.SteadyEntries = a.Ledger().Size() - before
	res.ReplicaVerified = copySize()
	sortDurations(lags)
	res.LagP50MS, res.LagP99MS = ms(percentile(lags, 50)), ms(percentile(lags, 99))
	if *asJSON {
		return printJSON(e.stdout, res)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "replicated and verified\t%.0f entries/s\ttarget ≥ 20,000 (backlog of %d records, over mutual TLS on loopback)\n", res.ReplicatedPerS, res.Backlog)
	fmt.Fprintf(tw, "lag p50 / p99\t%.0f / %.0f ms\ttarget p99 ≤ 2 × cadence = %.0f ms (%d records/s for %s)\n", res.LagP50MS, res.LagP99MS, 2*res.CadenceMS, res.Rate, *duration)
	return tw.Flush()
}

type stamp struct {
	size uint64
	at   time.Time
}

// appendConcurrently appends n benchmark records with 64 writers, so that they share seals.
func appendConcurrently(ctx context.Context, n *node.Node, count int, after func()) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 64 {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(count) {
					return
				}
				if _, _, err := n.Ledger().Append(ctx, benchRecord(int(i))); err != nil {
					errs <- err
					return
				}
				if after != nil {
					after()
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// pacedAppend appends at a fixed rate until ctx ends, calling after for each durable record.
func pacedAppend(ctx context.Context, n *node.Node, rate int, after func()) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	perTick := max(1, rate/100)
	var wg sync.WaitGroup
	defer wg.Wait()
	for i := 0; ; i += perTick {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		for k := range perTick {
			wg.Go(func() {
				if _, _, err := n.Ledger().Append(context.WithoutCancel(ctx), benchRecord(i+k)); err == nil {
					after()
				}
			})
		}
	}
}
