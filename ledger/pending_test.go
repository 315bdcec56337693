package ledger

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// Every receipted record of a running ledger is visible at once, before any
// checkpoint commits to it (issue 12, item 8).
func TestPendingShowsEveryReceiptedRecordOfARunningLedger(t *testing.T) {
	node := newTestNode(t)
	dir := t.TempDir()
	const batchSize = 64
	l, err := Open(context.Background(), dir, node, Options{CheckpointInterval: 100 * time.Millisecond, TesseraBatchAge: 3 * time.Second, TesseraBatchSize: batchSize})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(context.Background())
	// The reader works at the empty log's checkpoint: everything appended is beyond it.
	r, err := OpenReader(dir, node.ID(), node.Public())
	if err != nil {
		t.Fatal(err)
	}
	receipts, entries := appendN(t, l, 150, 8)
	// Seals are entries too, and how many there are depends on timing: should the
	// log end on a whole Tessera batch, nothing would await integration, so one more
	// record (and its seal) leaves a partial batch behind.
	for i := 150; l.Size()%batchSize == 0; i++ {
		rc, e, err := l.Append(context.Background(), testRecord(i))
		if err != nil {
			t.Fatal(err)
		}
		receipts[rc.Index], entries[rc.Index] = rc, e
	}
	if !WriterRunning(dir) {
		t.Fatal("WriterRunning is false beside an open ledger")
	}
	pending, err := r.Pending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	byIndex := map[uint64]PendingEntry{}
	states := map[string]int{}
	for _, p := range pending {
		byIndex[p.Index] = p
		states[p.State]++
	}
	for i, rc := range receipts {
		p, ok := byIndex[i]
		if !ok {
			t.Fatalf("receipted record %d is not shown", i)
		}
		if !bytes.Equal(p.Entry, entries[i]) || rc.Index != i {
			t.Fatalf("entry %d differs", i)
		}
	}
	if states[PendingCheckpoint] == 0 || states[PendingIntegration] == 0 {
		t.Fatalf("want entries in both states, got %v", states)
	}
}

func TestPendingAfterACrash(t *testing.T) {
	dir, node, size, integrated := crashedLedger(t)
	if WriterRunning(dir) {
		t.Fatal("WriterRunning is true after the writer was killed")
	}
	r, err := OpenReader(dir, node.ID(), node.Public())
	if err != nil {
		t.Fatal(err)
	}
	pending, err := r.Pending(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if uint64(len(pending)) != size-r.Size() {
		t.Fatalf("%d pending entries, want %d", len(pending), size-r.Size())
	}
	for k, p := range pending {
		want := PendingCheckpoint
		if p.Index >= integrated {
			want = PendingIntegration
		}
		if p.Index != r.Size()+uint64(k) || p.State != want {
			t.Fatalf("pending[%d] = entry %d, %s; want %d, %s", k, p.Index, p.State, r.Size()+uint64(k), want)
		}
	}
}
