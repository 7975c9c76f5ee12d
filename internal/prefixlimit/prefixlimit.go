// Package prefixlimit rate-limits clients by network prefix (IPv4 /24,
// IPv6 /48) with token buckets kept in a fixed-size table: prefixes hash
// into a bounded number of buckets, so a flood of spoofed sources cannot
// grow memory, and a collision only makes the limit stricter for the
// prefixes that share a bucket.
package prefixlimit

import (
	"net/netip"
	"sync"
	"time"
)

// Limiter is a table of token buckets keyed by client prefix. It is safe
// for concurrent use.
type Limiter struct {
	rate, burst float64
	perShard    uint64
	shards      [64]shard
}

type shard struct {
	mu      sync.Mutex
	buckets []bucket
}

type bucket struct {
	tokens float64
	last   int64 // unix nanoseconds; 0 = never used
}

// New returns a Limiter allowing rate requests per second per prefix with
// bursts of burst, in a table of about size buckets (at least 64; 64k
// buckets take 1 MiB).
func New(rate, burst float64, size int) *Limiter {
	l := &Limiter{rate: rate, burst: burst, perShard: uint64(max(size/64, 1))}
	for i := range l.shards {
		l.shards[i].buckets = make([]bucket, l.perShard)
	}
	return l
}

// Allow takes one token from the bucket of a's prefix at time now and
// reports whether there was one.
func (l *Limiter) Allow(a netip.Addr, now time.Time) bool {
	h := prefixHash(a)
	sh := &l.shards[h%64]
	b := &sh.buckets[(h>>6)%l.perShard]
	t := now.UnixNano()
	sh.mu.Lock()
	defer sh.mu.Unlock()
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

// prefixHash hashes the /24 (IPv4) or /48 (IPv6) containing a.
func prefixHash(a netip.Addr) uint64 {
	a = a.Unmap()
	var x uint64
	if a.Is4() {
		b := a.As4()
		x = uint64(b[0])<<16 | uint64(b[1])<<8 | uint64(b[2])
	} else {
		b := a.As16()
		x = 1<<63 | uint64(b[0])<<40 | uint64(b[1])<<32 | uint64(b[2])<<24 | uint64(b[3])<<16 | uint64(b[4])<<8 | uint64(b[5])
	}
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
