package node

import (
	"math"
	"sync"
	"time"
)

// The runtime perimeter's rate limits: token buckets per principal and per brain.
// A refused request learns how long to wait (429 with Retry-After).

// DefaultPrincipalRate is each principal's request budget across all brains.
const (
	DefaultPrincipalPerMinute = 600
	DefaultPrincipalBurst     = 100
	// DefaultPeerRequestsPerMinute is the rate of calls from peers a node serves (and
	// states in its limits record) unless configured.
	DefaultPeerRequestsPerMinute = 6000
	maxBuckets                   = 100_000 // buckets kept before idle ones are dropped
)

type bucket struct {
	tokens float64
	last   time.Time
}

type limiter struct {
	now func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket // guarded by mu
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, buckets: map[string]*bucket{}}
}

// take spends one token from the bucket named key (perMinute refill, burst capacity).
// When it is empty it returns how long until a token is available.
func (l *limiter) take(key string, perMinute, burst int) (ok bool, wait time.Duration) {
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
		if len(l.buckets) >= maxBuckets {
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
func (l *limiter) pruneLocked(now time.Time) {
	for k, b := range l.buckets {
		if now.Sub(b.last) > time.Minute {
			delete(l.buckets, k)
		}
	}
}
