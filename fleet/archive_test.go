package fleet

import (
	"os"
	"path/filepath"
	"testing"
)

func TestArchiveKeepsFeedsAndForkEvidence(t *testing.T) {
	fx := newFixture(t)
	a := newFeed(t, fx.a1).standard()
	b := newFeed(t, fx.b1).standard()
	l := NewLog()
	mustAdd(t, l, fx.both, a.recs...)
	mustAdd(t, l, fx.both, b.recs...)
	// b1 signs a second record 3: a fork.
	alt := &feedBuilder{t: t, node: fx.b1, key: fx.b1.Key, recs: b.recs[:3:3]}
	if res, err := l.Add(alt.next(KindLimits, &LimitsBody{RequestsPerMinute: 1}), fx.both); err != nil || res.Status != Forked {
		t.Fatalf("fork: %v %v", res, err)
	}
	dir := t.TempDir()
	ar, err := OpenArchive(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{fx.a1.ID(), fx.b1.ID()} {
		if err := ar.Save(l, n); err != nil {
			t.Fatal(err)
		}
		if err := ar.Save(l, n); err != nil { // nothing new: nothing written
			t.Fatal(err)
		}
	}
	if ar.Save(l, "../escape") == nil {
		t.Fatal("a name that is not a node id was accepted as a directory")
	}

	again, err := OpenArchive(dir)
	if err != nil {
		t.Fatal(err)
	}
	l2 := NewLog()
	skipped, err := again.Load(l2, fx.both)
	if err != nil || len(skipped) != 0 {
		t.Fatalf("load: %v %v", skipped, err)
	}
	if len(l2.Forks()) != 1 {
		t.Fatalf("fork evidence lost across the archive: %d forks", len(l2.Forks()))
	}
	for _, n := range []string{fx.a1.ID(), fx.b1.ID()} {
		f1, _ := l.Feed(n)
		f2, ok := l2.Feed(n)
		if !ok || len(f2.Records) != len(f1.Records) || f2.Forked != f1.Forked {
			t.Fatalf("feed %s: %d records forked=%v, want %d forked=%v", n, len(f2.Records), f2.Forked, len(f1.Records), f1.Forked)
		}
	}
	// A root no longer pinned: its feed is skipped, with the file named; the rest loads.
	l3 := NewLog()
	skipped, err = again.Load(l3, fx.onlyA)
	if err != nil || len(skipped) == 0 {
		t.Fatalf("untrusted feed not reported: %v %v", skipped, err)
	}
	if _, ok := l3.Feed(fx.a1.ID()); !ok {
		t.Fatal("trusted feed not loaded beside an untrusted one")
	}
	// A tampered file stops its feed at that record.
	path := filepath.Join(dir, fx.a1.ID(), recordFile(2))
	b2, _ := os.ReadFile(path)
	os.WriteFile(path, replace(t, b2, `"SECRET"`, `"OFFICIAL"`), 0o600)
	l4 := NewLog()
	skipped, _ = again.Load(l4, fx.both)
	if f, _ := l4.Feed(fx.a1.ID()); len(skipped) == 0 || len(f.Records) != 2 {
		t.Fatalf("tampered record: skipped %v, feed has %d records", skipped, len(f.Records))
	}
}
