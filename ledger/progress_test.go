package ledger

import (
	"context"
	"reflect"
	"testing"

	"github.com/transparency-dev/tessera/api/layout"
)

// progressLog collects the reports of one run.
type progressLog []Progress

func (l *progressLog) fn(p Progress) { *l = append(*l, p) }

// check requires reports that start at from, never go back in Done, Files or Bytes,
// keep one Total, end at Done == Total = total, and number at most max.
func (l progressLog) check(t *testing.T, what string, from, total uint64, max int) {
	t.Helper()
	if len(l) < 2 {
		t.Fatalf("%s: %d progress reports, want a start and an end at least", what, len(l))
	}
	if len(l) > max {
		t.Fatalf("%s: %d progress reports, want at most %d", what, len(l), max)
	}
	if l[0].Done != from {
		t.Fatalf("%s: the first report is at %d, want %d", what, l[0].Done, from)
	}
	for k, p := range l {
		if p.Total != total {
			t.Fatalf("%s: report %d has total %d, want %d", what, k, p.Total, total)
		}
		if p.Done > p.Total {
			t.Fatalf("%s: report %d is at %d of %d", what, k, p.Done, p.Total)
		}
		if k > 0 {
			q := l[k-1]
			if p.Done < q.Done || p.Files < q.Files || p.Bytes < q.Bytes {
				t.Fatalf("%s: report %d %+v goes back from %+v", what, k, p, q)
			}
			if k < len(l)-1 && p.Done == q.Done {
				t.Fatalf("%s: report %d repeats Done %d", what, k, p.Done)
			}
		}
	}
	if last := l[len(l)-1]; last.Done != total {
		t.Fatalf("%s: the last report is at %d of %d", what, last.Done, total)
	}
}

func bundles(n uint64) int { return int((n + layout.EntryBundleWidth - 1) / layout.EntryBundleWidth) }

// However large the run, progress is reported at most ProgressSteps times as it
// advances, plus the start and the end; a run without a callback reports nothing.
func TestProgressIsBounded(t *testing.T) {
	for _, total := range []uint64{0, 1, 255, 256, 1000, 1999, 256_000, 10_000_000, 1<<40 + 7} {
		var l progressLog
		pr := newProgress(l.fn, 0, total)
		for done := uint64(0); done < total; {
			// Steps of one entry bundle, the finest callers report at; huge runs
			// skip ahead so that the test stays quick.
			step := uint64(layout.EntryBundleWidth)
			if total > 1<<30 {
				step = total / 100_000
			}
			done = min(total, done+step)
			pr.read(1, 100)
			pr.advance(done)
		}
		pr.end()
		l.check(t, "a run over entries", 0, total, ProgressSteps+2)
		if total >= 256_000 && len(l) < ProgressSteps/2 {
			t.Errorf("%d entries: only %d reports", total, len(l))
		}
		if last := l[len(l)-1]; total > 0 && last.Files == 0 {
			t.Errorf("%d entries: files not counted: %+v", total, last)
		}
	}
	var none *progress = newProgress(nil, 0, 100)
	if none != nil {
		t.Fatal("a progress without a callback")
	}
	none.read(1, 1)
	none.advance(50)
	none.fetched(1, 1)
	none.end()
	none.stop()
}

func TestVerifyReportsProgress(t *testing.T) {
	node := newTestNode(t)
	src := pristine(t, node, 3000)
	r, err := OpenReader(src, node.ID(), node.Public())
	if err != nil {
		t.Fatal(err)
	}
	plain, err := r.Verify(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	var l progressLog
	res, err := r.VerifyWith(context.Background(), VerifyOptions{Progress: l.fn})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(res, plain) {
		t.Fatalf("verification with progress found %+v, without %+v", res, plain)
	}
	total := max(res.Integrated, res.JournalEnd, res.Entries)
	l.check(t, "verify", 0, total, bundles(total)+2)
	if last := l[len(l)-1]; last.Files != res.Files || last.Bytes == 0 {
		t.Fatalf("the last report counts %d files (%d bytes), verification %d", last.Files, last.Bytes, res.Files)
	}

	// A failing verification does not claim to have finished.
	bad := copyDir(t, src)
	path := bundlePath(bad, 2, res.Entries)
	es := readBundleFile(t, path)
	es[7] = append([]byte(nil), es[7]...)
	es[7][len(es[7])-2] ^= 1
	writeBundleFile(t, path, es)
	rb, err := OpenReader(bad, node.ID(), node.Public())
	if err != nil {
		t.Fatal(err)
	}
	l = nil
	if _, err := rb.VerifyWith(context.Background(), VerifyOptions{Progress: l.fn}); err == nil {
		t.Fatal("an altered entry verifies")
	}
	if len(l) == 0 || l[len(l)-1].Done == l[len(l)-1].Total {
		t.Fatalf("a failed verification reported %+v", l)
	}
}

func TestExportReportsProgress(t *testing.T) {
	node := newTestNode(t)
	src := pristine(t, node, 3000)
	r, err := OpenReader(src, node.ID(), node.Public())
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name     string
		from, to uint64
	}{{"whole log", 0, 0}, {"a middle range", 700, 1500}} {
		t.Run(c.name, func(t *testing.T) {
			var l progressLog
			b, err := r.ExportWith(context.Background(), node.Cert, c.from, c.to, ExportOptions{Progress: l.fn})
			if err != nil {
				t.Fatal(err)
			}
			plain, err := r.Export(context.Background(), node.Cert, c.from, c.to)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(b, plain) {
				t.Fatal("the export with progress differs from the one without")
			}
			total := r.Size() - b.Start
			// One report per entry bundle read for the bundle's entries, and per
			// level-0 tile after them, at most.
			l.check(t, "export", 0, total, 2*bundles(total)+4)
			if last := l[len(l)-1]; last.Files == 0 || last.Bytes == 0 {
				t.Fatalf("the last report counts no files: %+v", last)
			}

			var vl progressLog
			res, err := b.VerifyWith(BundleVerifyOptions{Progress: vl.fn})
			if err != nil {
				t.Fatal(err)
			}
			n := uint64(len(b.Entries))
			if res.End-res.Start != n {
				t.Fatalf("bundle of %d entries verified as %d..%d", n, res.Start, res.End)
			}
			vl.check(t, "bundle verify", 0, n, bundles(n)+2)
		})
	}
}

func TestReplicaUpdateReportsProgress(t *testing.T) {
	ctx := context.Background()
	node := newTestNode(t)
	src := t.TempDir()
	growLog(t, src, node, 3000)
	size := sourceSize(t, src)

	// A whole catch-up in one call: from 0 to the source's size.
	r := openReplica(t, t.TempDir(), node)
	var l progressLog
	res, err := r.UpdateWith(ctx, serve(src, nil, nil), UpdateOptions{Progress: l.fn})
	if err != nil {
		t.Fatal(err)
	}
	l.check(t, "catch-up", 0, size, bundles(size)+2)
	if last := l[len(l)-1]; last.Bytes != uint64(res.Bytes)-uint64(len(r.Checkpoint())) || last.Files == 0 {
		t.Fatalf("the last report %+v, the update fetched %d bytes", last, res.Bytes)
	}
	// Up to date: nothing to report.
	l = nil
	if _, err := r.UpdateWith(ctx, serve(src, nil, nil), UpdateOptions{Progress: l.fn}); err != nil || len(l) != 0 {
		t.Fatalf("an update with nothing new: %v, reports %+v", err, l)
	}

	// With back pressure the session spans calls: each reports where the copy's
	// verified entries stand, the last one reaches the source's size.
	r = openReplica(t, t.TempDir(), node)
	var at uint64
	for calls := 0; r.Size() < size; calls++ {
		if calls > 100 {
			t.Fatal("the replica does not catch up")
		}
		l = nil
		res, err := r.UpdateWith(ctx, serve(src, nil, nil), UpdateOptions{MaxEntries: 1000, Progress: l.fn})
		if err != nil {
			t.Fatal(err)
		}
		if res.To < size {
			// A call that stops short ends at res.To, not at the total.
			if len(l) < 2 || l[0].Done != at || l[len(l)-1].Done != res.To || l[len(l)-1].Total != size {
				t.Fatalf("a call from %d to %d reported %+v", at, res.To, l)
			}
		} else {
			l.check(t, "the last call of a session", at, size, bundles(size-at)+2)
		}
		at = res.To
	}
}
