package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"
)

// bench gateway, briefly, as an operator comparing two builds runs it: two rounds,
// the node under test against a second node (the same binary here), JSON out. Every
// request must be served, every figure measured, and each median must lie within its
// rounds' values.
func TestBenchGatewayRoundsAgainst(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two nodes and sends about 1,000 requests")
	}
	out := ok(t, t.TempDir(), "bench", "gateway", "--rps", "200", "--duration", "1s", "--rounds", "2",
		"--against", siosBin, "--json")
	var res gatewayBenchResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if res.Rounds != 2 || len(res.PerRound) != 2 || res.Requests != 200 {
		t.Fatalf("rounds %d, per-round %d, requests %d: want 2, 2, 200\n%s", res.Rounds, len(res.PerRound), res.Requests, out)
	}
	if res.NodeErrors != 0 || res.Against == nil || res.Against.Errors != 0 {
		t.Fatalf("errors: node %d (%s), against %+v", res.NodeErrors, res.FirstError, res.Against)
	}
	if res.Against.Binary != siosBin || res.ReceiptHeader == 0 || res.AuditRecords < 400 {
		t.Fatalf("against %q, receipt header %d bytes, %d audit entries (want ≥ 400: two rounds and the warm-up of 200 requests each)",
			res.Against.Binary, res.ReceiptHeader, res.AuditRecords)
	}
	within := func(name string, median float64, f func(roundResult) float64) {
		t.Helper()
		var v []float64
		for _, r := range res.PerRound {
			if f(r) <= 0 && name != "overhead p50" && name != "overhead p99" {
				t.Errorf("%s is %v in a round: not measured", name, f(r))
			}
			v = append(v, f(r))
		}
		if median < slices.Min(v) || median > slices.Max(v) {
			t.Errorf("%s: median %v is outside the rounds' %v", name, median, v)
		}
	}
	within("node CPU", res.NodeCPU, func(r roundResult) float64 { return r.NodeCPU })
	within("direct CPU", res.DirectCPU, func(r roundResult) float64 { return r.DirectCPU })
	within("node CPU ratio", res.NodeCPURatio, func(r roundResult) float64 { return r.NodeCPURatio })
	within("overhead p50", res.OverheadP50, func(r roundResult) float64 { return r.OverheadP50 })
	within("overhead p99", res.OverheadP99, func(r roundResult) float64 { return r.OverheadP99 })
	within("--against CPU", res.Against.NodeCPU, func(r roundResult) float64 { return r.AgainstCPU })
	within("in-node p50", res.InNodeP50, func(r roundResult) float64 { return r.InNodeP50 })
	within("in-node p99", res.InNodeP99, func(r roundResult) float64 { return r.InNodeP99 })
	within("--against in-node p50", res.Against.InNodeP50, func(r roundResult) float64 { return r.AgainstInNodeP50 })
	for _, r := range res.PerRound {
		if r.InNodeP50 > r.InNodeP99 {
			t.Errorf("in-node p50 %v above its p99 %v", r.InNodeP50, r.InNodeP99)
		}
	}
	if res.CPUVsAgainst <= 0 {
		t.Errorf("node CPU vs --against is %v", res.CPUVsAgainst)
	}
}

// Bad arguments are refused naming what is allowed, before any node starts.
func TestBenchGatewayRefusesBadRounds(t *testing.T) {
	for _, args := range [][]string{{"--rounds", "0"}, {"--rounds", "101"}, {"--rps", "0"}} {
		r := sios(t, t.TempDir(), append([]string{"bench", "gateway"}, args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, "--rounds from 1 to 100") {
			t.Errorf("bench gateway %v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
}

// The node's histogram of its own time is read from the Prometheus text the node
// serves, and its quantiles are interpolated within buckets as Prometheus's
// histogram_quantile does.
func TestNodeTimesQuantiles(t *testing.T) {
	text := `# HELP sios_chat_node_seconds Time a chat completion spent in the node itself.
# TYPE sios_chat_node_seconds histogram
sios_chat_node_seconds_bucket{le="0.0001"} 0
sios_chat_node_seconds_bucket{le="0.00025"} 50
sios_chat_node_seconds_bucket{le="0.0005"} 90
sios_chat_node_seconds_bucket{le="0.001"} 99
sios_chat_node_seconds_bucket{le="+Inf"} 100
sios_chat_node_seconds_sum 0.03
sios_chat_node_seconds_count 100
sios_chats_total{brain="bench",code="ok"} 100
`
	before, err := readNodeTimes(strings.NewReader(strings.NewReplacer(" 50\n", " 10\n", " 90\n", " 10\n", " 99\n", " 10\n", " 100\n", " 10\n").Replace(text)))
	if err != nil {
		t.Fatal(err)
	}
	now, err := readNodeTimes(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		h    nodeTimes
		q    float64
		want time.Duration
	}{
		{now, 0.5, 250 * time.Microsecond},    // the 50th of 100: the top of the second bucket
		{now, 0.25, 175 * time.Microsecond},   // halfway through the second bucket
		{now, 0.9, 500 * time.Microsecond},    // the top of the third
		{now, 0.995, 1000 * time.Microsecond}, // beyond every bound: the highest finite one
		// Since before: 0, 40, 80, 89, 90. The 45th of 90 is 5 into the 40 in (250, 500] µs.
		{now.since(before), 0.5, 281250 * time.Nanosecond},
		{now.since(before), 0.75, 421875 * time.Nanosecond},
		{nodeTimes{}, 0.5, 0},
	} {
		if got := c.h.quantile(c.q); got != c.want {
			t.Errorf("quantile %v of %v: %v, want %v", c.q, c.h.counts, got, c.want)
		}
	}
	for _, bad := range []string{"", "sios_chat_node_seconds_bucket{le=\"0.1\"} 1\n", "sios_chat_node_seconds_bucket{le=\"0.1\"} 1\nsios_chat_node_seconds_bucket{le=\"0.05\"} 2\n"} {
		if _, err := readNodeTimes(strings.NewReader(bad)); err == nil {
			t.Errorf("readNodeTimes(%q) took it", bad)
		}
	}
}

// --find-max raises the rate by quarters until a step misses, then halves the gap
// between the highest rate held and the lowest missed, twice at most and not below a
// 5 % gap, so that 3,500/s is tried between 3,125 and 3,906.
func TestFindMaxSteps(t *testing.T) {
	run := func(start int, holds func(int) bool) []int {
		var steps []rated
		for rate, ok := start, true; ok; rate, ok = nextFindMaxRate(steps) {
			steps = append(steps, rated{RPS: rate, Sustained: holds(rate)})
			if len(steps) > 20 {
				t.Fatal("find-max does not stop")
			}
		}
		var rates []int
		for _, s := range steps {
			rates = append(rates, s.RPS)
		}
		return rates
	}
	for _, tc := range []struct {
		start int
		limit int // the highest rate that holds
		want  []int
	}{
		{2000, 3600, []int{2000, 2500, 3125, 3906, 3500, 3700}},
		{2000, 3400, []int{2000, 2500, 3125, 3906, 3500, 3300}},
		{2000, 1000, []int{2000}},
		{2000, 2100, []int{2000, 2500, 2250, 2125}},
		{2000, 2050, []int{2000, 2500, 2250, 2125}},
		{2800, 4000, []int{2800, 3500, 4375, 3925, 4150}},
		{100, 1 << 30, []int{100, 125, 156, 195, 243, 303, 378, 472, 590, 737}},
	} {
		got := run(tc.start, func(r int) bool { return r <= tc.limit })
		if !slices.Equal(got, tc.want) {
			t.Errorf("from %d/s, holding up to %d/s: steps %v, want %v", tc.start, tc.limit, got, tc.want)
		}
	}
}
