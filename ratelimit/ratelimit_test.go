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
