package tracker

import (
	"math"
	"net/netip"
	"sync"
	"time"
)

// limiter is a set of token buckets, one per key, each refilled at rate
// tokens per second up to burst. Buckets that have refilled completely are
// forgotten, so memory follows the number of recently active keys. It is
// safe for concurrent use. A nil limiter allows everything.
type limiter[K comparable] struct {
	rate  float64
	burst float64

	mu        sync.Mutex
	buckets   map[K]*bucket
	nextSweep time.Time
}

type bucket struct {
	tokens float64
	last   time.Time
}

// maxBuckets bounds a limiter's memory; past it, the limiter sweeps early.
const maxBuckets = 1 << 20

// newLimiter returns a limiter, or nil (no limit) for a negative rate.
func newLimiter[K comparable](rate float64, burst int) *limiter[K] {
	if rate < 0 || math.IsNaN(rate) || math.IsInf(rate, 0) {
		return nil
	}
	return &limiter[K]{rate: rate, burst: float64(max(burst, 1)), buckets: make(map[K]*bucket)}
}

// allow takes a token for key at now. When none is left it reports false
// and how long until one will be.
func (l *limiter[K]) allow(key K, now time.Time) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if !now.Before(l.nextSweep) || len(l.buckets) >= maxBuckets {
		l.sweep(now)
	}
	b := l.buckets[key]
	if b == nil {
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = math.Min(l.burst, b.tokens+dt*l.rate)
		b.last = now
	}
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	if l.rate == 0 {
		return false, time.Hour
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return false, max(wait, time.Millisecond)
}

func (l *limiter[K]) sweep(now time.Time) {
	l.nextSweep = now.Add(time.Minute)
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// addrKey returns the rate-limiting key of a source address: the address
// itself for IPv4, its /64 for IPv6 (a host usually owns a whole /64).
func addrKey(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}
