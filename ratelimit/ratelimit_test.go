package ratelimit

import (
	"fmt"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(0, 0)
	l := New(func() time.Time { return now })
	for i := range 3 {
		if ok, _ := l.Take("k", 60, 3); !ok {
			t.Fatalf("request %d of a burst of 3 refused", i+1)
		}
	}
	ok, wait := l.Take("k", 60, 3)
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("fourth request: ok=%v wait=%v, want refused with ≤1s wait", ok, wait)
	}
	now = now.Add(time.Second)
	if ok, _ := l.Take("k", 60, 3); !ok {
		t.Fatal("a second later one token should have refilled")
	}
	if ok, _ := l.Take("other", 60, 3); !ok {
		t.Fatal("buckets are not separate")
	}
	if ok, _ := l.Take("unlimited", 0, 0); !ok {
		t.Fatal("a zero rate is no limit")
	}
}

func TestLimiterDropsIdleBucketsWhenFull(t *testing.T) {
	now := time.Unix(0, 0)
	l := New(func() time.Time { return now })
	for i := range MaxBuckets {
		l.Take(fmt.Sprint(i), 60, 1)
	}
	now = now.Add(2 * time.Minute)
	l.Take("new", 60, 1)
	if n := len(l.buckets); n != 1 {
		t.Fatalf("%d buckets kept after every other one went idle, want 1", n)
	}
}

func TestUsage(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(func() time.Time { return now })
	if u := l.Usage("b", 60, 10); u.Available != 10 || u.TakenPerMinute != 0 {
		t.Fatalf("an unused bucket: %+v, want full and idle", u)
	}
	for range 12 {
		l.Take("b", 60, 10)
	}
	u := l.Usage("b", 60, 10)
	if u.TakenPerMinute != 10 || u.RefusedPerMinute != 2 || u.Available != 0 {
		t.Fatalf("after 12 requests on a burst of 10: %+v, want 10 taken, 2 refused, none available", u)
	}
	// Half a minute into the next window, half of the previous one still counts.
	now = now.Add(90 * time.Second)
	l.Take("b", 60, 10)
	u = l.Usage("b", 60, 10)
	if u.TakenPerMinute != 6 || u.RefusedPerMinute != 1 {
		t.Fatalf("90 s later, one more: %+v, want 1 + 10/2 taken and 2/2 refused", u)
	}
	if u.Available < 9 || u.Available > 10 {
		t.Fatalf("90 s at 1/s refills the bucket: %+v", u)
	}
	// Usage spends nothing.
	before := l.Usage("b", 60, 10)
	l.Usage("b", 60, 10)
	if after := l.Usage("b", 60, 10); after != before {
		t.Fatalf("Usage changed the bucket: %+v then %+v", before, after)
	}
	now = now.Add(3 * time.Minute)
	if u := l.Usage("b", 60, 10); u.TakenPerMinute != 0 || u.RefusedPerMinute != 0 {
		t.Fatalf("three idle minutes later: %+v, want nothing seen", u)
	}
}
