package ledger

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sios-project/sios/identity"
	"github.com/sios-project/sios/oar"
)

var testOptions = Options{CheckpointInterval: 100 * time.Millisecond}

func newTestNode(t testing.TB) *identity.Node {
	t.Helper()
	res, err := identity.Init(t.TempDir(), "test-node", "", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return res.Node
}

func openTest(t testing.TB, dir string, node *identity.Node) *Ledger {
	t.Helper()
	l, err := Open(context.Background(), dir, node, testOptions)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func testRecord(i int) *oar.Record {
	return &oar.Record{Tenant: "t1", Actor: oar.Actor{ID: fmt.Sprintf("user-%d", i)}, Action: "test.append",
		Resource: fmt.Sprintf("res-%d", i)}
}

// appendN appends n records from w goroutines and returns receipts and entries by index.
func appendN(t testing.TB, l *Ledger, n, w int) (map[uint64]*oar.Receipt, map[uint64][]byte) {
	t.Helper()
	var mu sync.Mutex
	receipts := map[uint64]*oar.Receipt{}
	entries := map[uint64][]byte{}
	var wg sync.WaitGroup
	errs := make(chan error, w)
	for g := range w {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += w {
				rc, e, err := l.Append(context.Background(), testRecord(i))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if _, dup := receipts[rc.Index]; dup {
					mu.Unlock()
					errs <- fmt.Errorf("index %d handed out twice", rc.Index)
					return
				}
				receipts[rc.Index], entries[rc.Index] = rc, e
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return receipts, entries
}

func TestConcurrentAppendsNoLossNoDuplicate(t *testing.T) {
	node := newTestNode(t)
	dir := t.TempDir()
	l := openTest(t, dir, node)
	const n = 2000
	receipts, entries := appendN(t, l, n, 32)
	if len(receipts) != n {
		t.Fatalf("got %d receipts, want %d", len(receipts), n)
	}
	for i, rc := range receipts {
		if _, err := rc.Verify(node.Public(), entries[i]); err != nil {
			t.Fatalf("receipt %d: %v", i, err)
		}
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, res := verifiedLog(t, dir, node)
	if res.Records != n || res.Entries != n+res.Seals {
		t.Fatalf("verify: %+v, want %d records", res, n)
	}
	for i, e := range entries {
		got, err := r.Entry(context.Background(), i)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(e) {
			t.Fatalf("entry %d differs from what was appended", i)
		}
	}
}

func TestReopenContinuesTheSealChain(t *testing.T) {
	node := newTestNode(t)
	dir := t.TempDir()
	for round := range 3 {
		l := openTest(t, dir, node)
		rs, _ := appendN(t, l, 10, 2)
		if len(rs) != 10 {
			t.Fatalf("round %d: %d receipts", round, len(rs))
		}
		if err := l.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	r, res := verifiedLog(t, dir, node)
	if res.Records != 30 {
		t.Fatalf("verified %d records, want 30", res.Records)
	}
	// A fresh Verify records the checkpoint as seen; a later one checks consistency.
	if err := r.NoteSeen(node); err != nil {
		t.Fatal(err)
	}
	res, err := r.Verify(context.Background(), false)
	if err != nil || res.SeenSize != r.Size() {
		t.Fatalf("second verify: %+v, %v", res, err)
	}
}

func TestSecondWriterIsRefused(t *testing.T) {
	node := newTestNode(t)
	dir := t.TempDir()
	l := openTest(t, dir, node)
	defer l.Close(context.Background())
	_, err := Open(context.Background(), dir, node, testOptions)
	le, ok := err.(*LockedError)
	if !ok {
		t.Fatalf("second Open: %v, want a LockedError", err)
	}
	if le.Dir != dir {
		t.Fatalf("LockedError names %q, want %q", le.Dir, dir)
	}
}

func TestAppendAfterCloseFails(t *testing.T) {
	node := newTestNode(t)
	l := openTest(t, t.TempDir(), node)
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Append(context.Background(), testRecord(1)); err != ErrClosed {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}
}

func TestInvalidRecordIsRefusedAndNothingLogged(t *testing.T) {
	node := newTestNode(t)
	dir := t.TempDir()
	l := openTest(t, dir, node)
	for name, rec := range map[string]*oar.Record{
		"no actor":       {Action: "a"},
		"no action":      {Actor: oar.Actor{ID: "u"}},
		"bad class":      {Actor: oar.Actor{ID: "u"}, Action: "a", Classification: "PUBLIC"},
		"long resource":  {Actor: oar.Actor{ID: "u"}, Action: "a", Resource: string(make([]byte, oar.MaxFieldLen+1))},
		"bad digest hex": {Actor: oar.Actor{ID: "u"}, Action: "a", Inputs: []oar.Digest{{Name: "x", SHA256: "zz"}}},
	} {
		if _, _, err := l.Append(context.Background(), rec); err == nil {
			t.Errorf("%s: appended, want an error", name)
		}
	}
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if l.Size() != 0 {
		t.Fatalf("log holds %d entries after only invalid appends", l.Size())
	}
}

func TestReceiptRejectsTampering(t *testing.T) {
	node := newTestNode(t)
	l := openTest(t, t.TempDir(), node)
	defer l.Close(context.Background())
	rc, entry, err := l.Append(context.Background(), testRecord(7))
	if err != nil {
		t.Fatal(err)
	}
	other := newTestNode(t)
	cases := map[string]func(r oar.Receipt) (oar.Receipt, []byte, identity.PublicKey){
		"other record": func(r oar.Receipt) (oar.Receipt, []byte, identity.PublicKey) {
			return r, append([]byte(nil), entry[:len(entry)-2]...), node.Public()
		},
		"wrong key": func(r oar.Receipt) (oar.Receipt, []byte, identity.PublicKey) { return r, entry, other.Public() },
		"wrong index": func(r oar.Receipt) (oar.Receipt, []byte, identity.PublicKey) {
			r.Index++
			return r, entry, node.Public()
		},
		"bad proof": func(r oar.Receipt) (oar.Receipt, []byte, identity.PublicKey) {
			r.InclusionProof = append([]string{hex.EncodeToString(make([]byte, 32))}, r.InclusionProof...)
			return r, entry, node.Public()
		},
	}
	for name, mutate := range cases {
		r, e, pub := mutate(*rc)
		if _, err := r.Verify(pub, e); err == nil {
			t.Errorf("%s: receipt verified", name)
		}
	}
	if _, err := rc.Verify(node.Public(), entry); err != nil {
		t.Fatalf("untouched receipt: %v", err)
	}
	_ = filepath.Join
}

// Light traffic has its receipts after about one fdatasync, not after SealMaxDelay:
// a seal is made as soon as the journal is free while the seal budget lasts.
func TestLightTrafficIsSealedAtOnce(t *testing.T) {
	node := newTestNode(t)
	l, err := Open(context.Background(), t.TempDir(), node, Options{SealMaxDelay: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(context.Background())
	for i := range sealBurst {
		start := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		rc, _, err := l.Append(ctx, testRecord(i))
		cancel()
		if err != nil {
			t.Fatalf("record %d: no receipt within 5 s (it waited for the 10 s seal delay): %v", i, err)
		}
		if rc.SealIndex != rc.Index+1 {
			t.Fatalf("record %d at %d sealed by %d: want a seal of its own", i, rc.Index, rc.SealIndex)
		}
		t.Logf("record %d receipted in %v", i, time.Since(start))
	}
}

// A record added with Add is durable once then is called, exactly once; after Close
// Add fails and then is never called.
func TestAddThen(t *testing.T) {
	node := newTestNode(t)
	dir := t.TempDir()
	l, err := Open(context.Background(), dir, node, Options{SealMaxDelay: 20 * time.Millisecond, SealInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	const n = 100
	var calls [n]atomic.Int32
	var wg sync.WaitGroup
	wg.Add(n)
	for i := range n {
		if err := l.Add(context.Background(), testRecord(i), func(err error) {
			if err != nil {
				t.Errorf("record %d: %v", i, err)
			}
			calls[i].Add(1)
			wg.Done()
		}); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	if err := l.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if c := calls[i].Load(); c != 1 {
			t.Fatalf("record %d: then called %d times", i, c)
		}
	}
	if err := l.Add(context.Background(), testRecord(n), func(error) { t.Error("then called after Close") }); !errors.Is(err, ErrClosed) {
		t.Fatalf("Add after Close: %v", err)
	}
	r, err := OpenReader(dir, node.ID(), node.Public())
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Verify(context.Background(), false)
	if err != nil || res.Records != n {
		t.Fatalf("the log after %d Adds: %+v %v", n, res, err)
	}
}

// When receipts are asked for some time after their records were written (an answer's
// receipt, once the model has answered), the open group is sealed ahead of that — not
// at once, not at SealMaxDelay — and a receipt asked for sooner is sealed at once.
func TestSealsAheadOfReceipts(t *testing.T) {
	node := newTestNode(t)
	l, err := Open(context.Background(), t.TempDir(), node, Options{SealMaxDelay: time.Minute, SealInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close(context.Background())
	for range lagSamples {
		l.noteLag(2 * time.Second) // receipts are asked for 2 s after their Write: lead 1.5 s
	}
	ctx := context.Background()
	w, err := l.Write(ctx, testRecord(0))
	if err != nil {
		t.Fatal(err)
	}
	written := time.Now()
	journaled := l.assigned.Load()
	time.Sleep(200 * time.Millisecond)
	if got := l.assigned.Load(); got != journaled {
		t.Fatalf("sealed within 200 ms although its receipt is expected 2 s after: %d entries, was %d", got, journaled)
	}
	for l.assigned.Load() == journaled {
		if time.Since(written) > 30*time.Second {
			t.Fatal("not sealed ahead of its receipt: waiting for SealMaxDelay")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("sealed %v after its Write (lead 1.5 s)", time.Since(written).Round(time.Millisecond))
	if _, err := w.Receipt(ctx); err != nil {
		t.Fatal(err)
	}

	w, err = l.Write(ctx, testRecord(1))
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := w.Receipt(ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("a receipt asked for at once took %v: it waited for the lead", d)
	}
}

// The seal lead follows a low percentile of how long after their Write receipts are
// asked for, not the shortest: a few callers that ask at once do not take it away.
func TestSealLead(t *testing.T) {
	l := &Ledger{}
	if d := l.lead(); d != 0 {
		t.Fatalf("lead without samples: %v", d)
	}
	for range 4 {
		l.noteLag(0)
	}
	if d := l.lead(); d != 0 {
		t.Fatalf("lead after 4 receipts asked at once: %v", d)
	}
	for range lagSamples - 4 {
		l.noteLag(20 * time.Millisecond)
	}
	if d := l.lead(); d != 15*time.Millisecond {
		t.Fatalf("lead with 28 of 32 receipts asked 20 ms after their Write: %v, want 15ms", d)
	}
	for range lagSamples {
		l.noteLag(time.Millisecond)
	}
	if d := l.lead(); d != 750*time.Microsecond {
		t.Fatalf("lead after the lags fell to 1 ms: %v", d)
	}
}

// verifiedLog opens the ledger in dir read-only and verifies all of it, failing the
// test on any error.
func verifiedLog(t *testing.T, dir string, node *identity.Node) (*Reader, *VerifyResult) {
	t.Helper()
	r, err := OpenReader(dir, node.ID(), node.Public())
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Verify(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	return r, res
}
