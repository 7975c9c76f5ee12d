package traffic_test

import (
	"context"
	"fmt"
	"net/netip"
	"testing"

	"avalanche/internal/traffic"
)

// benchClients are 4096 client addresses spread over the world's networks
// and beyond, so that lookups, hashing and sticky bindings all vary.
func benchClients() []netip.Addr {
	nets := []string{"203.0.113.%d", "198.51.100.%d", "192.0.2.%d", "100.%d.7.1", "2001:db8:64::%x"}
	out := make([]netip.Addr, 4096)
	for i := range out {
		out[i] = netip.MustParseAddr(fmt.Sprintf(nets[i%len(nets)], (i/len(nets))%256))
	}
	return out
}

// BenchmarkRoute measures routing decisions on the synthetic world: one
// decision per op, with the default performance policy plus every business
// rule (sticky bindings in the in-memory store), and with a nested
// geographic/weighted policy. Run with -cpu=1 for decisions per second per
// core (target: at least 100k).
func BenchmarkRoute(b *testing.B) {
	for _, bc := range []struct{ name, policy string }{
		{"performance+rules", `{"name":"p"}`},
		{"geo-weighted", geoPolicy},
		{"no-sticky", `{"name":"p","rules":{"sticky_seconds":0}}`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w := newWorld(b)
			w.policy(b, bc.policy)
			clients := benchClients()
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, err := w.m.Route(ctx, traffic.Query{Property: "p", Path: "f.bin", Client: clients[i%len(clients)]}); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
		})
	}
}
