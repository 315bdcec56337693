// Package ratelimit holds the runtime perimeter's token buckets: per principal, per
// brain, and for the calls of all peers together. A refused request learns how long to
// wait (the API answers 429 with Retry-After).
//
// A Limiter is safe for concurrent use and bounded in memory: it keeps at most
// MaxBuckets buckets, dropping idle ones (which would be full again) when it must.
package ratelimit

import (
	"math"
	"sync"
	"time"
)

// MaxBuckets is how many buckets a Limiter keeps before idle ones are dropped.
const MaxBuckets = 100_000

type bucket struct {
	tokens float64
	last   time.Time
}

// Limiter is a set of token buckets by key.
type Limiter struct {
	now func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket // guarded by mu
}

// New returns a Limiter reading the clock now (time.Now if nil).
func New(now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{now: now, buckets: map[string]*bucket{}}
}

// Take spends one token from the bucket named key (perMinute refill, burst capacity).
// When it is empty it returns how long until a token is available. A perMinute of zero
// or less means no limit.
func (l *Limiter) Take(key string, perMinute, burst int) (ok bool, wait time.Duration) {
	if perMinute <= 0 {
		return true, 0
	}
	if burst <= 0 {
		burst = 1
	}
	rate := float64(perMinute) / 60 // tokens per second
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, found := l.buckets[key]
	if !found {
		if len(l.buckets) >= MaxBuckets {
			l.pruneLocked(now)
		}
		b = &bucket{tokens: float64(burst), last: now}
		l.buckets[key] = b
	}
	b.tokens = math.Min(float64(burst), b.tokens+now.Sub(b.last).Seconds()*rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	return false, time.Duration((1 - b.tokens) / rate * float64(time.Second))
}

// pruneLocked drops buckets idle for more than a minute (they would be full again).
func (l *Limiter) pruneLocked(now time.Time) {
	for k, b := range l.buckets {
		if now.Sub(b.last) > time.Minute {
			delete(l.buckets, k)
		}
	}
}
