package prefixlimit

import (
	"net/netip"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tests := []struct {
		name      string
		addrs     []string
		at        []time.Duration
		wantAllow []bool
	}{
		{"burst then refused", []string{"198.51.100.1", "198.51.100.2", "198.51.100.3"}, []time.Duration{0, 0, 0}, []bool{true, true, false}},
		{"refills at rate", []string{"198.51.100.1", "198.51.100.1", "198.51.100.1", "198.51.100.1"}, []time.Duration{0, 0, 0, 600 * time.Millisecond}, []bool{true, true, false, true}},
		{"other prefixes unaffected", []string{"198.51.100.1", "198.51.100.1", "198.51.101.1", "2001:db8::1"}, []time.Duration{0, 0, 0, 0}, []bool{true, true, true, true}},
		{"ipv6 by /48", []string{"2001:db8:1::1", "2001:db8:1:ffff::1", "2001:db8:1::2"}, []time.Duration{0, 0, 0}, []bool{true, true, false}},
		{"mapped v4 is v4", []string{"::ffff:198.51.100.1", "198.51.100.9", "198.51.100.1"}, []time.Duration{0, 0, 0}, []bool{true, true, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := New(2, 2, 1<<16)
			for i, a := range tc.addrs {
				if got := l.Allow(netip.MustParseAddr(a), t0.Add(tc.at[i])); got != tc.wantAllow[i] {
					t.Errorf("request %d from %s: Allow = %v, want %v", i, a, got, tc.wantAllow[i])
				}
			}
		})
	}
}

func BenchmarkAllow(b *testing.B) {
	l := New(1e9, 1e9, 1<<16)
	a := netip.MustParseAddr("198.51.100.1")
	now := time.Now()
	b.ReportAllocs()
	b.SetBytes(1)
	for range b.N {
		l.Allow(a, now)
	}
}
