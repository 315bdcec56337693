package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/node"
	"github.com/sios-project/sios/oar"
	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
)

// benchLedgerOptions are shared by the baseline and the ledger so that both batch alike;
// the seal delay is the one a serving node uses.
func benchLedgerOptions() ledger.Options {
	return ledger.Options{CheckpointInterval: 100 * time.Millisecond, SealMaxDelay: node.DefaultSealDelay, SealInterval: node.DefaultSealInterval}
}

type auditBenchResult struct {
	Records    int `json:"records"`
	EntryBytes int `json:"entry_bytes"`
	Writers    int `json:"writers"`
	Rounds     int `json:"rounds"`
	// Throughput: the best of the rounds for each, baseline and ledger alternating.
	BaselinePerS float64 `json:"baseline_per_s"`
	SignedPerS   float64 `json:"signed_per_s"`
	Ratio        float64 `json:"ratio"`
	Seals        uint64  `json:"seals"`
	// CPU time of this process per entry (baseline, verification) or record (ledger,
	// its seals' work included), from the round with the least of it: steadier than
	// the rates on a shared machine, where other work slows the disk and the cores.
	BaselineCPU float64 `json:"baseline_cpu_us_per_entry"`
	SignedCPU   float64 `json:"signed_cpu_us_per_record"`
	// Receipt latency at a fixed offered rate, measured from each record's scheduled
	// time (so a stall counts against every record it delays).
	Rate         int     `json:"rate"`
	RateAchieved float64 `json:"rate_achieved_per_s"`
	ReceiptP50   float64 `json:"receipt_p50_ms"`
	ReceiptP99   float64 `json:"receipt_p99_ms"`
	// Receipt latency with the writers saturating the ledger.
	SaturatedP50 float64 `json:"saturated_receipt_p50_ms"`
	SaturatedP99 float64 `json:"saturated_receipt_p99_ms"`
	VerifyPerS   float64 `json:"verify_per_s"`
	VerifyCPU    float64 `json:"verify_cpu_us_per_entry"`
}

func runBenchAudit(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench audit", "bench audit [--records N] [--writers W] [--json]")
	records := fs.Int("records", 100000, "records to append in each phase")
	writers := fs.Int("writers", 512, "concurrent appenders in the throughput phase")
	rounds := fs.Int("rounds", 2, "alternating baseline and ledger rounds; the best of each counts")
	rate := fs.Int("rate", 20000, "offered records per second in the latency phase")
	asJSON := fs.Bool("json", false, "print JSON")
	args, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if *records < 1 || *writers < 1 || *rounds < 1 || *rate < 1 {
		return usageError("--records, --writers, --rounds and --rate must be at least 1")
	}
	tmp, err := os.MkdirTemp("", "sios-bench-audit-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	res := auditBenchResult{Records: *records, Writers: *writers, Rounds: *rounds, Rate: *rate}
	sample := benchRecord(0)
	sample.V, sample.Kind, sample.Node, sample.Time = oar.Version, oar.KindRecord, "node_aaaaaaaaaaaaaaaaaaaaaaaaaa", oar.FormatTime(time.Now())
	enc, err := sample.Encode()
	if err != nil {
		return err
	}
	res.EntryBytes = len(enc)

	for round := 1; round <= *rounds; round++ {
		progress(e, *asJSON, "round %d/%d baseline: %d raw entries of %d bytes into Tessera POSIX", round, *rounds, *records, res.EntryBytes)
		base, cpu, err := benchBaseline(ctx, filepath.Join(tmp, fmt.Sprint("baseline", round)), *records, res.EntryBytes)
		if err != nil {
			return fmt.Errorf("baseline: %v", err)
		}
		res.BaselinePerS = max(res.BaselinePerS, base)
		res.BaselineCPU = minPositive(res.BaselineCPU, cpu)
		progress(e, *asJSON, "round %d/%d ledger: %d sealed, signed records from %d writers", round, *rounds, *records, *writers)
		if err := benchSigned(ctx, filepath.Join(tmp, fmt.Sprint("node", round)), *records, *writers, round == *rounds, &res); err != nil {
			return fmt.Errorf("ledger: %v", err)
		}
	}
	res.Ratio = res.SignedPerS / res.BaselinePerS
	paced := min(*records, 3**rate)
	progress(e, *asJSON, "latency: %d records offered at %d/s", paced, *rate)
	if err := benchPaced(ctx, filepath.Join(tmp, "paced"), paced, *rate, &res); err != nil {
		return fmt.Errorf("latency: %v", err)
	}

	if *asJSON {
		return printJSON(e.stdout, res)
	}
	fmt.Fprintf(e.stdout, "%d records of %d bytes; %d writers; best of %d rounds\n", res.Records, res.EntryBytes, res.Writers, res.Rounds)
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "baseline_per_s\t%.0f\traw Tessera POSIX as upstream writes it (each file synced), same batching, no signing\n", res.BaselinePerS)
	fmt.Fprintf(tw, "signed_per_s\t%.0f\ttarget ≥ 20000\n", res.SignedPerS)
	fmt.Fprintf(tw, "ratio\t%.2f\ttarget ≥ 0.75\n", res.Ratio)
	fmt.Fprintf(tw, "CPU per entry\t%.1f / %.1f µs\tbaseline / ledger (a record and its share of its seal); ratio %.2f\n", res.BaselineCPU, res.SignedCPU, res.BaselineCPU/res.SignedCPU)
	fmt.Fprintf(tw, "seals\t%d\t%.0f records per seal\n", res.Seals, float64(res.Records)/float64(max(res.Seals, 1)))
	fmt.Fprintf(tw, "receipt_p50_ms\t%.2f\tat %d/s offered (%.0f/s achieved)\n", res.ReceiptP50, res.Rate, res.RateAchieved)
	fmt.Fprintf(tw, "receipt_p99_ms\t%.2f\ttarget ≤ 20\n", res.ReceiptP99)
	fmt.Fprintf(tw, "saturated p50/p99\t%.2f / %.2f ms\twith %d writers flat out\n", res.SaturatedP50, res.SaturatedP99, res.Writers)
	fmt.Fprintf(tw, "verify_per_s\t%.0f\ttarget ≥ 250000; %.1f µs of CPU per entry\n", res.VerifyPerS, res.VerifyCPU)
	tw.Flush()
	return nil
}

func progress(e *env, quiet bool, format string, a ...any) {
	if !quiet {
		fmt.Fprintf(e.stderr, "sios: bench: "+format+"\n", a...)
	}
}

func benchRecord(i int) *oar.Record {
	return &oar.Record{
		Tenant: "bench-tenant", Actor: oar.Actor{ID: fmt.Sprintf("svc-%04d", i%1000), Clearance: "OFFICIAL"},
		Action: oar.ActionBrainInvoke, Resource: "brain/clinical-coding", Classification: "OFFICIAL",
		Decision: &oar.Decision{Effect: "allow", Policies: []string{"permit-clearance-at-or-above"}},
		Inputs:   []oar.Digest{oar.DigestOf("prompt", []byte(fmt.Sprintf("prompt %d", i)))},
	}
}

// minPositive is the least of a and b, where 0 means none yet.
func minPositive(a, b float64) float64 {
	if a == 0 {
		return b
	}
	return min(a, b)
}

// benchBaseline appends n random entries of the given size straight into Tessera with
// the ledger's batching and returns entries integrated per second and the process's
// CPU time per entry in µs.
func benchBaseline(ctx context.Context, dir string, n, size int) (float64, float64, error) {
	key, err := identity.GenerateKey(identity.KindNode)
	if err != nil {
		return 0, 0, err
	}
	driver, err := posix.New(ctx, posix.Config{Path: dir})
	if err != nil {
		return 0, 0, err
	}
	ed, _ := key.NoteSigners("bench/baseline")
	o := benchLedgerOptions()
	opts := tessera.NewAppendOptions().WithCheckpointSigner(ed).
		WithBatching(ledger.DefaultTesseraBatchSize, ledger.DefaultTesseraBatchAge).
		WithCheckpointInterval(o.CheckpointInterval).WithPushback(1 << 20)
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	app, shutdown, _, err := tessera.NewAppender(tctx, driver, opts)
	if err != nil {
		return 0, 0, err
	}
	data := make([][]byte, n)
	for i := range data {
		data[i] = make([]byte, size)
		rand.Read(data[i])
	}
	start, cpu0 := time.Now(), selfCPU()
	futs := make([]tessera.IndexFuture, n)
	for i := range data {
		futs[i] = app.Add(tctx, tessera.NewEntry(data[i]))
	}
	for _, f := range futs {
		if _, err := f(); err != nil {
			return 0, 0, err
		}
	}
	elapsed, cpu := time.Since(start), selfCPU()-cpu0
	if err := shutdown(ctx); err != nil {
		return 0, 0, err
	}
	return float64(n) / elapsed.Seconds(), usPer(cpu, n), nil
}

// benchSigned appends n records through the ledger from w writers, measuring each
// receipt's latency and the rate until everything is integrated, then verifies.
func benchSigned(ctx context.Context, dir string, n, w int, verify bool, res *auditBenchResult) error {
	init, err := identity.Init(dir, "bench", "", time.Now())
	if err != nil {
		return err
	}
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	l, err := ledger.Open(ctx, filepath.Join(dir, "ledger"), init.Node, benchLedgerOptions())
	if err != nil {
		return err
	}
	// The records are made before the clock starts, as the baseline's entries are:
	// making them is the caller's work, not the ledger's (a fifth of this phase's CPU
	// when it was timed).
	records := make([]*oar.Record, n)
	for i := range records {
		records[i] = benchRecord(i)
	}
	start, cpu0 := time.Now(), selfCPU()
	var wg sync.WaitGroup
	for range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t := time.Now()
				if _, _, err := l.Append(ctx, records[i]); err != nil {
					errOnce.Do(func() { firstErr = err })
					return
				}
				lat[i] = time.Since(t)
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		l.Close(ctx)
		return firstErr
	}
	if err := l.Sync(ctx); err != nil {
		return err
	}
	elapsed, cpu := time.Since(start), selfCPU()-cpu0
	res.SignedCPU = minPositive(res.SignedCPU, usPer(cpu, n))
	entries := l.Size()
	if err := l.Close(ctx); err != nil {
		return err
	}
	sortDurations(lat)
	if rate := float64(n) / elapsed.Seconds(); rate > res.SignedPerS {
		res.SignedPerS, res.Seals = rate, entries-uint64(n)
		res.SaturatedP50, res.SaturatedP99 = ms(percentile(lat, 50)), ms(percentile(lat, 99))
	}
	if !verify {
		return nil
	}

	r, err := ledger.OpenReader(filepath.Join(dir, "ledger"), init.Node.ID(), init.Node.Public())
	if err != nil {
		return err
	}
	restore := tuneForVerifying() // as 'audit verify' runs
	defer restore()
	vstart, vcpu := time.Now(), selfCPU()
	vr, err := r.Verify(ctx, false)
	if err != nil {
		return err
	}
	res.VerifyPerS = float64(vr.Entries) / time.Since(vstart).Seconds()
	res.VerifyCPU = usPer(selfCPU()-vcpu, int(vr.Entries))
	return nil
}

// benchPaced offers n records at a fixed rate, each from its own goroutine at its
// scheduled time, and records receipt latency from that scheduled time.
func benchPaced(ctx context.Context, dir string, n, rate int, res *auditBenchResult) error {
	init, err := identity.Init(dir, "bench-paced", "", time.Now())
	if err != nil {
		return err
	}
	l, err := ledger.Open(ctx, filepath.Join(dir, "ledger"), init.Node, benchLedgerOptions())
	if err != nil {
		return err
	}
	start := time.Now()
	lat, failed, first := paced(n, rate, func(i int) error {
		_, _, err := l.Append(ctx, benchRecord(i))
		return err
	})
	elapsed := time.Since(start)
	if err := l.Close(ctx); err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d appends failed, the first with: %s", failed, first)
	}
	res.RateAchieved = float64(n) / elapsed.Seconds()
	res.ReceiptP50, res.ReceiptP99 = ms(percentile(lat, 50)), ms(percentile(lat, 99))
	return nil
}
