package memory

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sios-project/sios/policy"
)

// BenchmarkAdd adds memories in batches of 1000, the way an importer would.
func BenchmarkAdd(b *testing.B) {
	s := openStore(b, b.TempDir())
	defer s.Close()
	g := newTextGen(7)
	ctx := context.Background()
	batches := make([][]NewMemory, 4)
	for k := range batches {
		batches[k] = make([]NewMemory, 1000)
		for i := range batches[k] {
			batches[k][i] = NewMemory{Tenant: "t", Subject: fmt.Sprintf("s%d", i%50), Classification: policy.Official, Source: "bench", Text: g.text(30)}
		}
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := s.AddBatch(ctx, batches[i%len(batches)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*1000)/time.Since(start).Seconds(), "adds/s")
}

// bigStore builds a store of n memories once per benchmark process and copies it for
// each benchmark run, so the 100,000-memory store is built only once.
var bigStores = map[int]string{}

func bigStore(b *testing.B, n int) string {
	b.Helper()
	base, ok := bigStores[n]
	if !ok {
		var err error
		base, err = os.MkdirTemp("", "sios-memory-bench-")
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		s := openStore(b, base)
		fill(b, s, "bench", n, 5000, newTextGen(11))
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		b.Logf("built a store of %d memories in %v", n, time.Since(start).Round(time.Millisecond))
		bigStores[n] = base
	}
	dir := b.TempDir()
	copyDir(b, base, dir)
	return dir
}

func copyDir(tb testing.TB, from, to string) {
	tb.Helper()
	err := filepath.Walk(from, func(path string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		dst := filepath.Join(to, rel)
		if fi.IsDir() {
			return os.MkdirAll(dst, 0o700)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(dst, data, fi.Mode().Perm())
	})
	if err != nil {
		tb.Fatal(err)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range bigStores {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

// BenchmarkSearch runs 2–3 word queries, drawn like the texts, over 100,000 memories.
func BenchmarkSearch(b *testing.B) {
	dir := bigStore(b, 100_000)
	s := openStore(b, dir)
	defer s.Close()
	g := newTextGen(99)
	r := rand.New(rand.NewPCG(3, 4))
	queries := make([]string, 1000)
	for i := range queries {
		queries[i] = strings.TrimSuffix(g.text(2+r.IntN(2)), ".")
	}
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		if _, err := s.Search(ctx, Query{Tenant: "bench", Clearance: policy.TopSecret, Text: queries[i%len(queries)]}); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t0))
	}
	b.StopTimer()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
	b.ReportMetric(ms(lat[len(lat)*99/100]), "p99-ms")
}

// BenchmarkForget forgets a subject of 1,000 memories in a store of 100,000.
func BenchmarkForget(b *testing.B) {
	benchmarkForget(b, false)
}

// BenchmarkExpire expires 1,000 memories (one subject's) in a store of 100,000: the
// retention path, which deletes and purges as Forget does.
func BenchmarkExpire(b *testing.B) {
	benchmarkForget(b, true)
}

func benchmarkForget(b *testing.B, expire bool) {
	dir := bigStore(b, 100_000)
	now := time.Now()
	clock := now
	s, err := Open(dir, Options{Now: func() time.Time { return clock }})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	g := newTextGen(5)
	ctx := context.Background()
	var total, cpu time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		batch := make([]NewMemory, 1000)
		for j := range batch {
			batch[j] = NewMemory{Tenant: "bench", Subject: "forget-me", Classification: policy.Secret, Source: "bench", Text: g.text(30)}
		}
		clock = now.Add(-48 * time.Hour)
		if _, err := s.AddBatch(ctx, batch); err != nil {
			b.Fatal(err)
		}
		clock = now
		b.StartTimer()
		t0, c0 := time.Now(), processCPU()
		var n int
		if expire {
			var fs []Forgotten
			fs, err = s.Expire(ctx, now, Retention{PerTenant: map[string]time.Duration{"bench": 24 * time.Hour}})
			for _, f := range fs {
				n += len(f.IDs)
			}
		} else {
			var f *Forgotten
			if f, err = s.Forget(ctx, "bench", "forget-me"); f != nil {
				n = len(f.IDs)
			}
		}
		total, cpu = total+time.Since(t0), cpu+processCPU()-c0
		if err != nil || n != 1000 {
			b.Fatalf("forgot %d memories: %v", n, err)
		}
	}
	b.ReportMetric(float64(total)/1e6/float64(b.N), "forget-ms")
	b.ReportMetric(float64(cpu)/1e6/float64(b.N), "forget-cpu-ms")
}

// processCPU is this process's CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
