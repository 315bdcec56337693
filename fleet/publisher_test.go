package fleet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPublisher(t *testing.T) {
	fx := newFixture(t)
	dir := filepath.Join(t.TempDir(), "feed")
	p, err := OpenPublisher(dir, fx.b1, t0)
	if err != nil {
		t.Fatal(err)
	}
	if p.Next() != 1 {
		t.Fatalf("a new feed starts with its identity record: next = %d", p.Next())
	}
	if _, err := p.Publish(KindPosture, &PostureBody{Classification: "OFFICIAL-SENSITIVE"}, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Publish(KindBrains, &BrainsBody{Brains: []Brain{{"legal", "domain", "OFFICIAL"}}}, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Publish(KindPosture, &PostureBody{Classification: "NOPE"}, t0); err == nil {
		t.Fatal("invalid record published")
	}
	// A restart reopens the same feed and continues it.
	q, err := OpenPublisher(dir, fx.b1, t0)
	if err != nil {
		t.Fatal(err)
	}
	if q.Next() != 3 {
		t.Fatalf("after restart next = %d, want 3", q.Next())
	}
	if _, err := q.Publish(KindLimits, &LimitsBody{RequestsPerMinute: 60}, t0); err != nil {
		t.Fatal(err)
	}
	l := NewLog()
	mustAdd(t, l, fx.both, q.Records(0)...)
	if v := l.View()[0]; v.Posture != "OFFICIAL-SENSITIVE" || len(v.Brains) != 1 || v.RequestsPerMinute != 60 || v.Seq != 3 {
		t.Fatalf("view = %+v", v)
	}
	if len(q.Records(2)) != 2 || q.Records(9) != nil {
		t.Fatal("Records(seq)")
	}
	// Leftover temporary files are ignored; a gap or someone else's feed is refused.
	os.WriteFile(filepath.Join(dir, ".00000000000000000004.json.tmp123"), []byte("x"), 0o600)
	if _, err := OpenPublisher(dir, fx.b1, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenPublisher(dir, fx.a1, t0); err == nil || !strings.Contains(err.Error(), "does not continue the feed") {
		t.Fatalf("another node's feed: %v", err)
	}
	os.Remove(filepath.Join(dir, recordFile(1)))
	if _, err := OpenPublisher(dir, fx.b1, t0); err == nil || !strings.Contains(err.Error(), "record 1 is missing") {
		t.Fatalf("gap: %v", err)
	}
}
