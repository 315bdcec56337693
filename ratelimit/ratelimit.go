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
	// What the bucket has seen, for Usage: takes and refusals in the one-minute window
	// that started at window, and in the minute before it.
	window                 time.Time
	taken, refused         int
	prevTaken, prevRefused int
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
	b.roll(now)
	if b.tokens >= 1 {
		b.tokens--
		b.taken++
		return true, 0
	}
	b.refused++
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

// roll moves the bucket's counts on to the window holding now.
func (b *bucket) roll(now time.Time) {
	switch d := now.Sub(b.window); {
	case d < time.Minute && d >= 0:
	case d >= time.Minute && d < 2*time.Minute:
		b.prevTaken, b.prevRefused = b.taken, b.refused
		b.taken, b.refused = 0, 0
		b.window = b.window.Add(time.Minute)
	default: // a bucket not used for two minutes, or the clock went back
		b.prevTaken, b.prevRefused, b.taken, b.refused = 0, 0, 0, 0
		b.window = now
	}
}

// Usage is what one bucket has seen and holds: the requests it let through and refused
// over the last minute, and the tokens available now. The rates are a sliding estimate
// from two one-minute windows (the current one, plus the previous one weighted by how
// much of it the last minute still covers).
type Usage struct {
	TakenPerMinute   float64
	RefusedPerMinute float64
	Available        float64
}

// Usage reports the bucket named key without spending from it (perMinute and burst as
// for Take). A bucket never used, or dropped while idle, is full and has seen nothing.
func (l *Limiter) Usage(key string, perMinute, burst int) Usage {
	if perMinute <= 0 {
		return Usage{Available: math.Inf(1)}
	}
	if burst <= 0 {
		burst = 1
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		return Usage{Available: float64(burst)}
	}
	rate := float64(perMinute) / 60
	u := Usage{Available: math.Min(float64(burst), b.tokens+now.Sub(b.last).Seconds()*rate)}
	d := now.Sub(b.window)
	switch {
	case d < 0 || d >= 2*time.Minute:
	case d < time.Minute:
		w := 1 - d.Seconds()/60
		u.TakenPerMinute = float64(b.taken) + float64(b.prevTaken)*w
		u.RefusedPerMinute = float64(b.refused) + float64(b.prevRefused)*w
	default: // the current window's counts are the previous minute's now
		w := 1 - (d-time.Minute).Seconds()/60
		u.TakenPerMinute = float64(b.taken) * w
		u.RefusedPerMinute = float64(b.refused) * w
	}
	return u
}
