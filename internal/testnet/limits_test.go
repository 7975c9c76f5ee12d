package testnet

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"avalanche/internal/client"
)

// TestAllowListKeepsSources: a client whose allow list excludes every peer
// (here 10.0.0.0/8, while the peers are on 127.0.0.1) still downloads from
// the origin its sources name (on 127.0.0.2), and exchanges nothing with
// the peers.
func TestAllowListKeepsSources(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	// No per-generation cap: the open peers take the origin's first copy,
	// and the allow-listed client, which may not ask them, needs a second.
	net, err := Start(ctx, Config{Dir: t.TempDir(), Host: "127.0.0.2", SeedCap: -1})
	if err != nil {
		t.Skipf("no second loopback address: %v", err)
	}
	t.Cleanup(net.Close)
	m, err := net.Publish(ctx, "build.bin", randomData(4<<20, 8), 64, 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	open := startPeers(t, ctx, net, m, 2, 0)
	cfg, err := net.ClientConfig(m.ID(), "lan", 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Allow = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	res, err := client.Get(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := res.Progress
	t.Logf("allow-listed client: %d bytes from the origin, %d from peers, %d uploaded, in %v", p.FromOrigin, p.FromPeers, p.Uploaded, p.Elapsed.Round(time.Millisecond))
	if p.FromPeers != 0 || p.Uploaded != 0 {
		t.Errorf("exchanged with peers outside the allow list: from peers %d, uploaded %d", p.FromPeers, p.Uploaded)
	}
	if p.FromOrigin < m.Size {
		t.Errorf("from the origin %d bytes, want the whole %d", p.FromOrigin, m.Size)
	}
	waitComplete(t, ctx, open)
}
