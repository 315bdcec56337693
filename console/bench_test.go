package console_test

import (
	"io"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/sios-project/sios/oar"
)

// BenchmarkPages renders each console page for a signed-in admin over loopback HTTP
// with keep-alive, against a real node whose log holds 90 brain requests. Besides
// ns/op it reports the process's CPU time per request (user + system; client and
// server share the process), and the same for the API's /healthz as the baseline of
// HTTP alone, so that the console's own cost is the difference.
//
//	go test -run '^$' -bench Pages -benchtime 2s ./console/
func BenchmarkPages(b *testing.B) {
	tn := startNode(b, nil)
	br := tn.browser(b)
	br.signIn(tn.keys["admin"])
	// 90 requests, spread over OFFICIAL brains within their bursts and the principal's.
	brains := []string{"public-policy", "education", "procurement", "hr-policy", "engineering-safety", "research-literature",
		"formatter", "evaluator", "scheduler", "notifier", "sentiment", "explainer"}
	for sent, i := 0, 0; sent < 90; i++ {
		if i == 10*len(brains) {
			b.Fatalf("only %d requests admitted", sent)
		}
		code, out := tn.api(b, tn.keys["admin"], "POST", "/v1/chat/completions",
			`{"model":"`+brains[i%len(brains)]+`","messages":[{"role":"user","content":"question `+strconv.Itoa(i)+`"}]}`)
		switch code {
		case http.StatusOK:
			sent++
		case http.StatusTooManyRequests: // that brain's burst is spent: the next one
		default:
			b.Fatalf("%d %s", code, out)
		}
	}
	idx := tn.recordIndex(b, func(r *oar.Record) bool { return r.Action == oar.ActionBrainComplete })
	client := br.c
	for _, p := range []struct{ name, path string }{
		{"healthz-baseline", "/healthz"},
		{"signin", "/console/signin"},
		{"node", "/console/node"},
		{"brains", "/console/brains"},
		{"fleet", "/console/fleet"},
		{"audit", "/console/audit"},
		{"record", "/console/audit/record/" + strconv.FormatUint(idx, 10)},
		{"principals", "/console/principals"},
	} {
		b.Run(p.name, func(b *testing.B) {
			get := func() {
				resp, err := client.Get(tn.url + p.path)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("%s: %d", p.path, resp.StatusCode)
				}
			}
			get()
			start := cpuTime()
			b.ResetTimer()
			for b.Loop() {
				get()
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-start).Microseconds())/float64(b.N), "cpu-µs/op")
		})
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
