package invoke

import (
	"context"
	"testing"

	"github.com/sios-project/sios/oar"
)

// Every record of an invocation made with SECRET data is SECRET: a reader cleared
// below it may read none of them (audit.read decides on the classification).
func TestEveryRecordOfAnInvocationCarriesItsClassification(t *testing.T) {
	h := newHarness(t, "builtin", nil)
	inv := ask("calculator", "(2+3)*7")
	inv.Classification = "SECRET"
	if err := h.p.Chat(context.Background(), inv, &sink{}); err != nil {
		t.Fatal(err)
	}
	h.p.Wait()
	for _, action := range []string{oar.ActionBrainInvoke, oar.ActionBrainComplete} {
		recs := h.rec.byAction(action)
		if len(recs) != 1 || recs[0].Classification != "SECRET" {
			t.Fatalf("%s records: %+v, want one classified SECRET", action, recs)
		}
	}
}
