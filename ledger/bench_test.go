package ledger

import (
	"context"
	"crypto/rand"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
)

// BenchmarkTesseraPOSIX is the baseline: raw entries of a record's size straight into
// Tessera with the ledger's default batching.
func BenchmarkTesseraPOSIX(b *testing.B) {
	node := newTestNode(b)
	driver, err := posix.New(context.Background(), posix.Config{Path: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	ed, _ := node.Key.NoteSigners("bench")
	opts := tessera.NewAppendOptions().WithCheckpointSigner(ed).
		WithBatching(DefaultTesseraBatchSize, DefaultTesseraBatchAge).
		WithCheckpointInterval(100 * time.Millisecond).WithPushback(1 << 20)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	app, shutdown, _, err := tessera.NewAppender(ctx, driver, opts)
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 460)
	rand.Read(data)
	b.ResetTimer()
	futs := make([]tessera.IndexFuture, b.N)
	for i := range b.N {
		e := append([]byte(nil), data...)
		e[0], e[1], e[2] = byte(i), byte(i>>8), byte(i>>16)
		futs[i] = app.Add(ctx, tessera.NewEntry(e))
	}
	for _, f := range futs {
		if _, err := f(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	shutdown(context.Background())
}

// BenchmarkAppend measures sealed, signed appends from 256 concurrent writers until
// everything is integrated into the log.
func BenchmarkAppend(b *testing.B) {
	node := newTestNode(b)
	l, err := Open(context.Background(), b.TempDir(), node, testOptions)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	work := make(chan int, 1024)
	for range 256 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if _, _, err := l.Append(context.Background(), testRecord(i)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	for i := range b.N {
		work <- i
	}
	close(work)
	wg.Wait()
	if err := l.Sync(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	l.Close(context.Background())
}

// nodeOptions are the serving node's seal timings (node.DefaultSealDelay and
// node.DefaultSealInterval), with which seals cover hundreds of records under load.
var nodeOptions = Options{CheckpointInterval: 100 * time.Millisecond, SealMaxDelay: 100 * time.Millisecond, SealInterval: 5 * time.Millisecond}

// BenchmarkVerify measures full verification of a log of 20,000 records, sealed as the
// node seals them.
func BenchmarkVerify(b *testing.B) {
	node := newTestNode(b)
	dir := b.TempDir()
	l, err := Open(context.Background(), dir, node, nodeOptions)
	if err != nil {
		b.Fatal(err)
	}
	const n = 20000
	var wg sync.WaitGroup
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += 64 {
				if _, _, err := l.Append(context.Background(), testRecord(i)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := l.Close(context.Background()); err != nil {
		b.Fatal(err)
	}
	r, err := OpenReader(dir, node.ID(), node.Public())
	if err != nil {
		b.Fatal(err)
	}
	// With a progress callback, as 'sios audit verify' on a terminal and the
	// console run it, and without: the reports must cost nothing measurable.
	for _, c := range []struct {
		name     string
		progress ProgressFunc
	}{{"plain", nil}, {"progress", func(Progress) {}}} {
		b.Run(c.name, func(b *testing.B) {
			for range b.N {
				res, err := r.VerifyWith(context.Background(), VerifyOptions{Progress: c.progress})
				if err != nil || res.Records != n {
					b.Fatal(res, err)
				}
			}
			b.ReportMetric(float64(b.N*int(r.Size()))/b.Elapsed().Seconds(), "entries/s")
		})
	}
}

// BenchmarkAppendLikeTheNode is BenchmarkAppend with the serving node's seal delay and
// the writers of 'sios bench audit': the path whose profile matters.
func BenchmarkAppendLikeTheNode(b *testing.B) {
	node := newTestNode(b)
	l, err := Open(context.Background(), b.TempDir(), node, nodeOptions)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	work := make(chan int, 1024)
	for range 512 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if _, _, err := l.Append(context.Background(), testRecord(i)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	for i := range b.N {
		work <- i
	}
	close(work)
	wg.Wait()
	if err := l.Sync(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(b.N)/float64(l.Size()-uint64(b.N)), "records/seal")
	l.Close(context.Background())
}

// BenchmarkRequestsLikeTheGateway drives the ledger as the node's chat path does at
// 2,000 requests/s: each request writes its admission record and waits until it is
// durable, waits 20 ms (the model), asks for the receipt, and adds its completion
// record without waiting. It reports the process's CPU per request (the figure to
// compare across changes; the goroutines and timers of the load are in it alike) and
// the median time for the admission record to be durable.
func BenchmarkRequestsLikeTheGateway(b *testing.B) {
	node := newTestNode(b)
	opts := nodeOptions
	opts.TesseraBatchAge = 500 * time.Millisecond
	l, err := Open(context.Background(), b.TempDir(), node, opts)
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close(context.Background())
	const rate = 2000
	durable := make([]time.Duration, b.N)
	var wg sync.WaitGroup
	ctx := context.Background()
	// Requests are served by long-lived goroutines, as a server's connections are.
	work := make(chan int)
	for range 256 {
		go func() {
			for i := range work {
				t0 := time.Now()
				w, err := l.Write(ctx, testRecord(i))
				if err != nil {
					b.Error(err)
					wg.Done()
					continue
				}
				durable[i] = time.Since(t0)
				time.Sleep(20 * time.Millisecond)
				if _, err := w.Receipt(ctx); err != nil {
					b.Error(err)
					wg.Done()
					continue
				}
				if err := l.Add(ctx, testRecord(b.N+i), func(error) { wg.Done() }); err != nil {
					b.Error(err)
					wg.Done()
				}
			}
		}()
	}
	b.ResetTimer()
	cpu0 := processCPU()
	start := time.Now()
	for i := range b.N {
		if d := time.Until(start.Add(time.Duration(i) * time.Second / rate)); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		work <- i
	}
	close(work)
	wg.Wait()
	cpu := processCPU() - cpu0
	b.StopTimer()
	slices.Sort(durable)
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/req")
	b.ReportMetric(float64(durable[b.N/2].Microseconds()), "durable-p50-µs")
	b.ReportMetric(float64(durable[b.N*99/100].Microseconds()), "durable-p99-µs")
}

// processCPU is this process's CPU time so far, user and system.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
