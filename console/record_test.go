package console

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/ledger"
	"github.com/sios-project/sios/oar"
	"github.com/sios-project/sios/policy"
)

// readsAll is a pipeline under which every record may be read: the test is of what
// readEntryWith computes, not of who may read.
type readsAll struct{ Pipeline }

func (readsAll) MayReadRecord(*policy.Principal, uint64, *oar.Record) bool { return true }

// A record read without its receipt is the record read with it, links resolved alike,
// less the receipt (the decision page's read); with it, the receipt is the record's.
func TestReadEntryReceipt(t *testing.T) {
	id, err := identity.Init(t.TempDir(), "test-node", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "ledger")
	ctx := context.Background()
	l, err := ledger.Open(ctx, dir, id.Node, ledger.Options{CheckpointInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	req := &oar.Record{Tenant: "hospital", Actor: oar.Actor{ID: "dr.official"}, Action: oar.ActionDecisionRequest, Resource: "decision/d1"}
	reqRc, reqEntry, err := l.Append(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	out := &oar.Record{Tenant: "hospital", Actor: oar.Actor{ID: "dr.official"}, Action: oar.ActionDecisionOutcome, Resource: "decision/d1",
		Links: []oar.Link{{Rel: "request", RecordHash: hex.EncodeToString(oar.RecordHash(reqEntry))}}}
	rc, _, err := l.Append(ctx, out)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	c := &Console{cfg: Config{Pipeline: readsAll{}, OpenLog: func() (*ledger.Reader, error) {
		return ledger.OpenReader(dir, id.Node.ID(), id.Node.Public())
	}}}
	v := &View{c: c, r: httptest.NewRequest("GET", "/console/decisions/d1", nil)}

	_, with, err := v.readEntryWith(rc.Index, true)
	if err != nil {
		t.Fatal(err)
	}
	var got oar.Receipt
	if err := json.Unmarshal([]byte(with.Receipt), &got); err != nil || got.Index != rc.Index || got.RecordHash != with.Hash {
		t.Fatalf("the receipt of record %d: %v\n%s (%s)", rc.Index, err, with.Receipt, with.ReceiptErr)
	}
	_, without, err := v.readEntryWith(rc.Index, false)
	if err != nil {
		t.Fatal(err)
	}
	if without.Receipt != "" || without.ReceiptErr != "" {
		t.Fatalf("read without its receipt, record %d has a receipt of %d bytes, or the error %q", rc.Index, len(without.Receipt), without.ReceiptErr)
	}
	if len(without.Links) != 1 || without.Links[0].Index == nil || *without.Links[0].Index != reqRc.Index {
		t.Fatalf("the request link, read without the receipt: %+v", without.Links)
	}
	with.Receipt = ""
	a, _ := json.Marshal(with)
	b, _ := json.Marshal(without)
	if string(a) != string(b) {
		t.Fatalf("read with and without the receipt, the record differs:\n%s\n%s", a, b)
	}
}
