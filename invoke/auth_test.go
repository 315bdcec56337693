package invoke

import (
	"context"
	"strings"
	"testing"
)

func TestWrongKeysAreRecordedAggregated(t *testing.T) {
	h := newHarness(t, "builtin", nil)
	ctx := context.Background()
	for range 50 {
		if _, err := h.p.Authenticate(ctx, "sios_wrong"); err == nil {
			t.Fatal("a wrong key authenticated")
		}
		if !h.p.RefuseAuthentication(ctx, "192.0.2.7:5000", "a key the node does not know") {
			t.Fatal("not recorded")
		}
	}
	h.p.RefuseAuthentication(ctx, "198.51.100.1:6000", "no API key")
	recs := h.rec.byAction("auth.refuse")
	if len(recs) != 2 {
		t.Fatalf("%d records for 51 refusals from two addresses, want 2 (one each, the rest counted)", len(recs))
	}
	h.p.FlushRefusals(ctx, true)
	recs = h.rec.byAction("auth.refuse")
	if len(recs) != 3 || recs[2].Resource != "address/192.0.2.7" || detailOf(t, recs[2])["refusals"] != float64(49) {
		t.Fatalf("after the flush: %d records, last %+v", len(recs), recs[len(recs)-1])
	}
	for _, r := range recs {
		if d := string(r.Detail); len(d) == 0 || strings.Contains(d, "sios_wrong") {
			t.Fatalf("a record holds the key: %s", d)
		}
	}
}
