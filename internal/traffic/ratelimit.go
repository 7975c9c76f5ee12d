package traffic

import (
	"net/netip"
	"sync"
	"time"
)

// prefixLimiter is a token bucket per client prefix (IPv4 /24, IPv6 /48)
// in a fixed table: prefixes hash into a bounded number of buckets, so a
// flood of spoofed sources cannot grow memory, and a collision only makes
// the limit stricter for the prefixes that share a bucket.
type prefixLimiter struct {
	rate, burst float64
	shards      [64]limiterShard
	perShard    int
}

type limiterShard struct {
	mu      sync.Mutex
	buckets []bucket
}

type bucket struct {
	tokens float64
	last   int64 // unix nanoseconds; 0 = never used
}

func newPrefixLimiter(rate, burst float64, size int) *prefixLimiter {
	l := &prefixLimiter{rate: rate, burst: burst, perShard: max(size/64, 1)}
	for i := range l.shards {
		l.shards[i].buckets = make([]bucket, l.perShard)
	}
	return l
}

// allow takes one token from a's prefix bucket and reports whether there
// was one.
func (l *prefixLimiter) allow(a netip.Addr, now time.Time) bool {
	bits := 48
	if a.Is4() {
		bits = 24
	}
	p, _ := a.Prefix(bits)
	h := prefixHash("", p)
	sh := &l.shards[h%64]
	i := int((h >> 6) % uint64(l.perShard))
	t := now.UnixNano()
	sh.mu.Lock()
	defer sh.mu.Unlock()
	b := &sh.buckets[i]
	if b.last == 0 {
		b.tokens = l.burst
	} else if dt := float64(t-b.last) / 1e9; dt > 0 {
		b.tokens = min(l.burst, b.tokens+dt*l.rate)
	}
	b.last = t
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
