package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/pprof"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sios-project/sios/memory"
	"github.com/sios-project/sios/policy"
)

type memoryBenchResult struct {
	Memories  int     `json:"memories"`
	AddPerS   float64 `json:"add_per_s"`
	SearchP50 float64 `json:"search_p50_ms"` // across the tenant: every part of the index
	SearchP99 float64 `json:"search_p99_ms"`
	// A search of one subject (100 memories), which reads one part of the index.
	SubjectSearchP50 float64 `json:"subject_search_p50_ms"`
	SubjectSearchP99 float64 `json:"subject_search_p99_ms"`
	Searches         int     `json:"searches"`
	ForgetMS         float64 `json:"forget_ms"`
	ForgetCPUMS      float64 `json:"forget_cpu_ms"` // this process's CPU time during the forget
	ForgetCount      int     `json:"forget_memories"`
}

// Forget targets: the bound the benchmark holds forget to, and the time it aims for.
const (
	forgetTargetMS = 1000
	forgetAimMS    = 300
)

func runBenchMemory(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "bench memory", "bench memory [--memories N] [--searches N] [--cpuprofile FILE] [--json]")
	n := fs.Int("memories", 100000, "memories in the store")
	searches := fs.Int("searches", 1000, "queries to time")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the forget to FILE")
	asJSON := fs.Bool("json", false, "print JSON")
	rest, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 || *n < 2000 || *searches < 1 {
		return usageError("bench memory takes --memories ≥ 2000 and --searches ≥ 1")
	}
	dir, err := os.MkdirTemp("", "sios-bench-memory-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	st, err := memory.Open(dir, memory.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	vocab := make([]string, 5000)
	for i := range vocab {
		vocab[i] = fmt.Sprintf("%s%d", []string{"ward", "claim", "contract", "patient", "invoice", "audit", "supplier", "asset"}[i%8], i)
	}
	sentence := func() string {
		w := make([]string, 30)
		for i := range w {
			w[i] = vocab[rng.IntN(len(vocab))]
		}
		return strings.Join(w, " ")
	}
	res := memoryBenchResult{Memories: *n, Searches: *searches, ForgetCount: 1000}
	progress(e, *asJSON, "adding %d memories in batches of 1000", *n)
	start := time.Now()
	for added := 0; added < *n; {
		batch := make([]memory.NewMemory, 0, 1000)
		for len(batch) < 1000 && added+len(batch) < *n {
			i := added + len(batch)
			subject := fmt.Sprintf("subject-%d", i%1000)
			if i < res.ForgetCount {
				subject = "forget-me"
			}
			batch = append(batch, memory.NewMemory{Tenant: "bench", Subject: subject, Classification: policy.Level(1 + i%3),
				Source: "bench", Text: sentence()})
		}
		if _, err := st.AddBatch(ctx, batch); err != nil {
			return err
		}
		added += len(batch)
	}
	res.AddPerS = float64(*n) / time.Since(start).Seconds()
	progress(e, *asJSON, "searching %d times across the tenant, then %d times in one subject", *searches, *searches)
	lat := make([]time.Duration, *searches)
	for i := range lat {
		q := vocab[rng.IntN(len(vocab))] + " " + vocab[rng.IntN(len(vocab))]
		t := time.Now()
		if _, err := st.Search(ctx, memory.Query{Tenant: "bench", Clearance: policy.Secret, Text: q, Limit: 10}); err != nil {
			return err
		}
		lat[i] = time.Since(t)
	}
	sortDurations(lat)
	res.SearchP50, res.SearchP99 = ms(percentile(lat, 50)), ms(percentile(lat, 99))
	for i := range lat {
		q := vocab[rng.IntN(len(vocab))] + " " + vocab[rng.IntN(len(vocab))]
		subject := fmt.Sprintf("subject-%d", 1+rng.IntN(999))
		t := time.Now()
		if _, err := st.Search(ctx, memory.Query{Tenant: "bench", Subject: subject, Clearance: policy.Secret, Text: q, Limit: 10}); err != nil {
			return err
		}
		lat[i] = time.Since(t)
	}
	sortDurations(lat)
	res.SubjectSearchP50, res.SubjectSearchP99 = ms(percentile(lat, 50)), ms(percentile(lat, 99))
	progress(e, *asJSON, "forgetting a subject with %d memories", res.ForgetCount)
	var prof *os.File
	if *cpuProfile != "" {
		if prof, err = os.Create(*cpuProfile); err != nil {
			return err
		}
		defer prof.Close()
		if err := pprof.StartCPUProfile(prof); err != nil {
			return fmt.Errorf("cpu profile %s: %w", *cpuProfile, err)
		}
	}
	t, c := time.Now(), selfCPU()
	f, err := st.Forget(ctx, "bench", "forget-me")
	wall, cpu := time.Since(t), selfCPU()-c
	if prof != nil {
		pprof.StopCPUProfile()
	}
	if err != nil {
		return err
	}
	res.ForgetMS, res.ForgetCPUMS, res.ForgetCount = ms(wall), ms(cpu), len(f.IDs)
	if *asJSON {
		return printJSON(e.stdout, res)
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "add_per_s\t%.0f\ttarget ≥ 5000\n", res.AddPerS)
	fmt.Fprintf(tw, "search_p50_ms\t%.2f\tover %d memories\n", res.SearchP50, res.Memories)
	fmt.Fprintf(tw, "search_p99_ms\t%.2f\ttarget ≤ 20\n", res.SearchP99)
	fmt.Fprintf(tw, "subject_search_p50_ms\t%.2f\tone subject of about %d memories\n", res.SubjectSearchP50, *n/1000)
	fmt.Fprintf(tw, "subject_search_p99_ms\t%.2f\t\n", res.SubjectSearchP99)
	fmt.Fprintf(tw, "forget_ms\t%.0f\t%d memories; target ≤ %d, aim ≤ %d\n", res.ForgetMS, res.ForgetCount, forgetTargetMS, forgetAimMS)
	fmt.Fprintf(tw, "forget_cpu_ms\t%.0f\tCPU time of this process during the forget\n", res.ForgetCPUMS)
	if *cpuProfile != "" {
		fmt.Fprintf(tw, "cpu profile\t%s\tgo tool pprof %s\n", *cpuProfile, *cpuProfile)
	}
	return tw.Flush()
}
