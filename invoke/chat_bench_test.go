package invoke

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sios-project/sios/brain"
	"github.com/sios-project/sios/ledger"
)

// benchBrain is the quick brain with room for a million requests at once: rate limits
// are not what BenchmarkChat measures.
const benchBrain = `id: bench
kind: operational
title: Bench
description: A brain on the scripted model server for BenchmarkChat.
system_prompt: Answer quickly.
classification: OFFICIAL
max_tokens: 256
timeout: 5s
rate_limit: {requests_per_minute: 6000000, burst: 1000000}
`

// BenchmarkChat: one chat through every stage on a brain of a model server (scripted,
// without HTTP, answering after 20 ms as the mock of 'sios bench gateway' does), from 64
// goroutines at once, with the serving node's seal timing: the pipeline's own CPU and
// allocations per request — policy, admission record durable, receipt, completion
// record — without the API's or the model server's HTTP. Its ns/op is wall time over
// 64 requests in flight; profile it with -cpuprofile or -memprofile.
func BenchmarkChat(b *testing.B) {
	h := newHarness(b, "http://model", func(c *Config) { c.PrincipalPerMinute = 0 })
	if err := os.WriteFile(filepath.Join(h.dir, "brains", "bench.yaml"), []byte(benchBrain), 0o600); err != nil {
		b.Fatal(err)
	}
	brains, err := brain.Load(h.dir)
	if err != nil {
		b.Fatal(err)
	}
	h.p.cfg.Brains = brain.NewLive(brains)
	ctx := context.Background()
	l, err := ledger.Open(ctx, b.TempDir(), h.id, ledger.Options{SealMaxDelay: 100 * time.Millisecond, SealInterval: 5 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close(ctx)
	h.rec.l = l
	h.server.turns = []turn{{content: "The committee met.", delay: 20 * time.Millisecond}}
	b.ReportAllocs()
	b.SetParallelism(32) // requests in flight, as at a few thousand a second
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			s := &sink{}
			if err := h.p.Chat(ctx, ask("bench", "Summarise: the audit committee met."), s); err != nil {
				b.Error(err)
				return
			}
			if s.receipt == nil {
				b.Error("no receipt")
				return
			}
		}
	})
	h.p.Wait()
}
