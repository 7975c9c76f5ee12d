package testnet

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"avalanche/internal/client"
	"avalanche/internal/wire"
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

// limiterBurst is the burst the engine's token buckets allow above the cap
// (swarm.newLimiter: at least 2 MiB).
const limiterBurst = 2 << 20

// TestDownloadLimit: --download-limit holds a client to its cap (after the
// token bucket's burst) even when the origin could send much faster.
func TestDownloadLimit(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	net := startNet(t, 0)
	size := 6 << 20
	m, err := net.Publish(ctx, "build.bin", randomData(size, 9), 64, 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := net.ClientConfig(m.ID(), "capped", 0)
	if err != nil {
		t.Fatal(err)
	}
	const limit = 1 << 20
	cfg.DownloadLimit = limit
	res, err := client.Get(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	el := res.Progress.Elapsed
	floor := time.Duration(float64(size-limiterBurst) / limit * float64(time.Second))
	t.Logf("6 MiB at a 1 MiB/s download cap: %v (%.2f MiB/s overall; at least %v past a 2 MiB burst)",
		el.Round(time.Millisecond), float64(size)/el.Seconds()/(1<<20), floor)
	if el < floor*9/10 {
		t.Errorf("downloaded in %v, want at least %v at the cap", el, floor)
	}
}

// TestUploadLimitAndSeedRatio: a peer that completed keeps seeding until it
// has uploaded --seed-ratio times the file, at no more than its
// --upload-limit; a second peer, which has only it to download from once
// the origin left, gets the whole file from it.
func TestUploadLimitAndSeedRatio(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	net := startNet(t, 0)
	size := 6 << 20
	m, err := net.Publish(ctx, "build.bin", randomData(size, 10), 64, 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	const limit = 1 << 20
	a, err := net.ClientConfig(m.ID(), "seeder", limit)
	if err != nil {
		t.Fatal(err)
	}
	a.SeedRatio = 1
	completed := make(chan struct{})
	a.Completed = func(*client.Result) { close(completed) }
	type result struct {
		res *client.Result
		err error
		at  time.Time
	}
	aDone := make(chan result, 1)
	go func() {
		r, err := client.Get(ctx, a)
		aDone <- result{r, err, time.Now()}
	}()
	select {
	case <-completed:
	case r := <-aDone:
		t.Fatalf("seeder returned before seeding: %v", r.err)
	case <-ctx.Done():
		t.Fatal("seeder never completed")
	}
	// The origin has sent its one copy (its per-generation cap): the
	// leecher gets the blocks from the seeding peer, the checksums from
	// the origin.
	b, err := net.ClientConfig(m.ID(), "leecher", 0)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	rb, err := client.Get(ctx, b)
	if err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	var ra result
	select {
	case ra = <-aDone:
	case <-time.After(5 * time.Second):
		t.Fatal("the seeder kept seeding after its ratio was met")
	}
	if ra.err != nil {
		t.Fatal(ra.err)
	}
	up := ra.res.Progress.Uploaded
	floor := time.Duration(float64(rb.Progress.FromPeers-limiterBurst) / limit * float64(time.Second))
	t.Logf("seeder uploaded %.2f× the file, left %v after the leecher finished; leecher got %d bytes from peers, %d from the origin, in %v (at least %v at the 1 MiB/s cap past the burst)",
		float64(up)/float64(size), ra.at.Sub(start.Add(el)).Round(time.Millisecond), rb.Progress.FromPeers, rb.Progress.FromOrigin, el.Round(time.Millisecond), floor)
	if up < int64(size) {
		t.Errorf("seeder left after uploading %d bytes, want at least the file (%d)", up, size)
	}
	if rb.Progress.FromPeers < int64(size)*9/10 {
		t.Errorf("leecher got %d bytes from peers, want nearly the whole file", rb.Progress.FromPeers)
	}
	if el < floor*9/10 {
		t.Errorf("leecher done in %v, want at least %v at the seeder's cap", el, floor)
	}
}

// TestSeedTime: with --seed-time the client returns that long after the
// file was complete, not before.
func TestSeedTime(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	net := startNet(t, 0)
	m, err := net.Publish(ctx, "build.bin", randomData(1<<20, 11), 64, 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := net.ClientConfig(m.ID(), "timed", 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg.SeedTime = 2 * time.Second
	var completedAt time.Time
	cfg.Completed = func(*client.Result) { completedAt = time.Now() }
	if _, err := client.Get(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	seeded := time.Since(completedAt)
	t.Logf("seeded %v after completing (--seed-time 2s)", seeded.Round(time.Millisecond))
	if seeded < cfg.SeedTime || seeded > cfg.SeedTime+3*time.Second {
		t.Errorf("seeded %v, want about %v", seeded, cfg.SeedTime)
	}
}

// TestMaxPeers: a client with --max-peers 2 in a swarm of 8 never holds
// more than 2 links it dialed to partial neighbours plus half as many
// accepted (room for newcomers), besides the origin; links to neighbours
// that hold everything come on top, at most 2 more.
func TestMaxPeers(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	net := startNet(t, 2<<20)
	m, err := net.Publish(ctx, "build.bin", randomData(8<<20, 12), 64, 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	ps := startPeers(t, ctx, net, m, 7, 2<<20)
	dir := t.TempDir()
	limited := startPeers(t, ctx, net, m, 1, 2<<20, func(c *client.Config) { c.MaxPeers, c.Output = 2, dir })[0]
	mostPartial, most := 0, 0
	for !limited.complete() && ctx.Err() == nil {
		if s := limited.sw.Load(); s != nil {
			partial, all := 0, 0
			for _, p := range s.Peers() {
				if p.Role != wire.RolePeer {
					continue
				}
				all++
				if !p.Complete {
					partial++
				}
			}
			mostPartial, most = max(mostPartial, partial), max(most, all)
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitComplete(t, ctx, append(ps, limited))
	t.Logf("--max-peers 2: at most %d links to partial peers, %d to peers in all, at once", mostPartial, most)
	if mostPartial > 2+1 {
		t.Errorf("held %d links to partial peers, want at most 3 (2, one more accepted)", mostPartial)
	}
	if most > 2+1+2 {
		t.Errorf("held %d links to peers, want at most 5 (2, one more accepted, 2 to complete ones)", most)
	}
}
