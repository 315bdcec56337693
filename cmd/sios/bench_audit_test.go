package main

import (
	"encoding/json"
	"testing"
)

// bench audit, small: every phase runs and every figure is measured, the CPU ones
// included; the ledger's seals are counted and its log verifies.
func TestBenchAuditMeasuresEveryFigure(t *testing.T) {
	if testing.Short() {
		t.Skip("appends 6,000 entries to two logs and offers 2,000 records at a fixed rate")
	}
	out := ok(t, t.TempDir(), "bench", "audit", "--records", "2000", "--writers", "32", "--rounds", "2", "--rate", "1000", "--json")
	var res auditBenchResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if res.Records != 2000 || res.Writers != 32 || res.Rounds != 2 || res.EntryBytes < 100 {
		t.Fatalf("records %d, writers %d, rounds %d, entry bytes %d\n%s", res.Records, res.Writers, res.Rounds, res.EntryBytes, out)
	}
	for name, v := range map[string]float64{
		"baseline_per_s": res.BaselinePerS, "signed_per_s": res.SignedPerS, "ratio": res.Ratio,
		"baseline_cpu_us_per_entry": res.BaselineCPU, "signed_cpu_us_per_record": res.SignedCPU,
		"rate_achieved_per_s": res.RateAchieved, "receipt_p50_ms": res.ReceiptP50, "receipt_p99_ms": res.ReceiptP99,
		"saturated_receipt_p50_ms": res.SaturatedP50, "saturated_receipt_p99_ms": res.SaturatedP99,
		"verify_per_s": res.VerifyPerS, "verify_cpu_us_per_entry": res.VerifyCPU,
	} {
		if v <= 0 {
			t.Errorf("%s is %v: not measured\n%s", name, v, out)
		}
	}
	if res.ReceiptP99 < res.ReceiptP50 || res.SaturatedP99 < res.SaturatedP50 {
		t.Errorf("a p99 below its p50\n%s", out)
	}
	// Each of 2,000 records is under a seal, and no seal covers more than the
	// ledger's 4,096.
	if res.Seals == 0 || res.Seals > 2000 {
		t.Errorf("%d seals for 2,000 records", res.Seals)
	}
}
