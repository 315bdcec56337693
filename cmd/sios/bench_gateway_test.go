package main

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
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
