package testnet

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"avalanche/internal/client"
	"avalanche/internal/manifest"
	"avalanche/internal/swarm"
)

func randomData(n int, seed uint64) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{byte(seed)}).Read(b)
	return b
}

func fileHash(t *testing.T, path string) [32]byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	io.Copy(h, f)
	return [32]byte(h.Sum(nil))
}

func startNet(t *testing.T, originUp int64) *Net {
	t.Helper()
	n, err := Start(t.Context(), Config{Dir: t.TempDir(), OriginUpload: originUp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

// peerRun is one client downloading in the background.
type peerRun struct {
	name   string
	cfg    client.Config
	cancel context.CancelFunc
	done   chan struct{}
	err    error
	final  atomic.Pointer[client.Result] // set once the file is complete
	rank   atomic.Int64                  // blocks held, from progress reports
	sw     atomic.Pointer[swarm.Swarm]
}

// startPeers starts n clients; they seed until stopped. tweak, if given,
// adjusts each client's configuration.
func startPeers(t *testing.T, ctx context.Context, net *Net, m *manifest.Manifest, n int, upload int64, tweak ...func(*client.Config)) []*peerRun {
	t.Helper()
	var ps []*peerRun
	for i := 0; i < n; i++ {
		cfg, err := net.ClientConfig(m.ID(), fmt.Sprintf("peer%02d", i), upload)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range tweak {
			f(&cfg)
		}
		pctx, cancel := context.WithCancel(ctx)
		p := &peerRun{name: cfg.Output, cfg: cfg, cancel: cancel, done: make(chan struct{})}
		cfg.SeedTime = time.Hour
		cfg.Completed = func(r *client.Result) { p.final.Store(r) }
		cfg.Progress = func(pr client.Progress) { p.rank.Store(pr.Rank) }
		cfg.Joined = func(s *swarm.Swarm) { p.sw.Store(s) }
		go func() {
			defer close(p.done)
			_, p.err = client.Get(pctx, cfg)
		}()
		ps = append(ps, p)
	}
	t.Cleanup(func() {
		for _, p := range ps {
			p.cancel()
			<-p.done
		}
	})
	return ps
}

func (p *peerRun) complete() bool { return p.final.Load() != nil }

// waitComplete waits until every peer in ps completed, or fails.
func waitComplete(t *testing.T, ctx context.Context, ps []*peerRun) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		all := true
		for _, p := range ps {
			if !p.complete() {
				all = false
				select {
				case <-p.done:
					if p.err != nil {
						t.Fatalf("%s: %v", p.name, p.err)
					}
				default:
				}
			}
		}
		if all {
			return time.Since(start)
		}
		select {
		case <-ctx.Done():
			n := 0
			for _, p := range ps {
				if p.complete() {
					n++
				}
			}
			for _, p := range ps {
				if s := p.sw.Load(); s != nil && !p.complete() {
					t.Logf("%s:\n%s", p.name, s.DebugState())
					break
				}
			}
			t.Fatalf("timed out: %d of %d peers complete", n, len(ps))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func checkCopies(t *testing.T, ps []*peerRun, m *manifest.Manifest) {
	t.Helper()
	for _, p := range ps {
		if got := fileHash(t, filepath.Join(p.cfg.Output, m.Name)); got != m.FileHash {
			t.Errorf("%s: copy differs from the published file", p.name)
		}
		if _, err := os.Stat(filepath.Join(p.cfg.Output, m.Name+".partial")); err == nil {
			t.Errorf("%s: .partial left behind", p.name)
		}
	}
}

func originEgress(net *Net, m *manifest.Manifest) float64 {
	return float64(net.Seeder.Swarm(m.ID()).Stats().Sent) / float64(m.Size)
}

// TestTwentyPeers: one origin and 20 peers, 32 MiB: every copy is
// byte-identical and the origin sends less than 1.3 times the file.
func TestTwentyPeers(t *testing.T) {
	peers, size := 20, 32<<20
	if testing.Short() {
		peers, size = 6, 8<<20
	}
	const up = 4 << 20
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	net := startNet(t, up)
	m, err := net.Publish(ctx, "build.bin", randomData(size, 1), 64, 32<<10)
	if err != nil {
		t.Fatal(err)
	}
	ps := startPeers(t, ctx, net, m, peers, up)
	el := waitComplete(t, ctx, ps)
	checkCopies(t, ps, m)
	eg := originEgress(net, m)
	bound := max(float64(size)/up, float64(peers*size)/float64((peers+1)*up))
	t.Logf("%d peers, %d MiB: all done in %v (%.2f× the fluid bound); origin egress %.3f× the file",
		peers, size>>20, el.Round(time.Millisecond), el.Seconds()/bound, eg)
	if eg >= 1.3 {
		t.Errorf("origin egress %.2f× the file, want < 1.3×", eg)
	}
}

// TestOriginLeaves: the origin stops seeding as soon as it has sent one
// copy of the file (the issue asks for 1.1; with its per-generation cap the
// origin never needs to send more than 1.0, so we test the harder case);
// every peer still completes from what the swarm holds.
func TestOriginLeaves(t *testing.T) {
	peers, size := 12, 16<<20
	if testing.Short() {
		peers, size = 5, 6<<20
	}
	const up = 3 << 20
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	net := startNet(t, up)
	m, err := net.Publish(ctx, "build.bin", randomData(size, 2), 64, 32<<10)
	if err != nil {
		t.Fatal(err)
	}
	ps := startPeers(t, ctx, net, m, peers, up)
	sw := net.Seeder.Swarm(m.ID())
	for sw.Stats().Sent < int64(size) {
		select {
		case <-ctx.Done():
			t.Fatal("origin never sent the whole file")
		case <-time.After(5 * time.Millisecond):
		}
	}
	sent := sw.Stats().Sent
	net.Seeder.Remove(m.ID())
	t.Logf("origin left after sending %.3f× the file", float64(sent)/float64(size))
	stop := logProgress(t, ps, int64(size/(32<<10)))
	waitComplete(t, ctx, ps)
	stop()
	checkCopies(t, ps, m)
}

// TestPeersLeave: 30% of the peers leave halfway; the rest complete.
func TestPeersLeave(t *testing.T) {
	peers, size := 10, 16<<20
	if testing.Short() {
		peers, size = 6, 6<<20
	}
	const up = 3 << 20
	ctx, cancel := context.WithTimeout(t.Context(), 45*time.Second)
	defer cancel()
	net := startNet(t, up)
	m, err := net.Publish(ctx, "build.bin", randomData(size, 3), 64, 32<<10)
	if err != nil {
		t.Fatal(err)
	}
	ps := startPeers(t, ctx, net, m, peers, up)
	blocks := int64(size / (32 << 10))
	leaving := ps[:peers*3/10]
	for _, p := range leaving {
		for p.rank.Load() < blocks/2 && !p.complete() {
			select {
			case <-ctx.Done():
				t.Fatal("peers never got halfway")
			case <-time.After(10 * time.Millisecond):
			}
		}
		p.cancel()
	}
	staying := ps[len(leaving):]
	waitComplete(t, ctx, staying)
	checkCopies(t, staying, m)
}

// logProgress logs, every second, the share of all blocks the peers hold.
func logProgress(t *testing.T, ps []*peerRun, blocks int64) func() {
	done, exited := make(chan struct{}), make(chan struct{})
	var line []string
	go func() {
		defer close(exited)
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
			}
			var sum int64
			for _, p := range ps {
				sum += p.rank.Load()
			}
			line = append(line, fmt.Sprintf("%.0f%%", 100*float64(sum)/float64(blocks*int64(len(ps)))))
		}
	}()
	return func() {
		close(done)
		<-exited
		t.Logf("blocks held, per second: %v", line)
	}
}

// TestHTTPFallback: when peers (here only a slow origin) deliver less than
// the minimum rate, whole generations come over HTTP ranges, within the
// budget, and are counted apart.
func TestHTTPFallback(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	net := startNet(t, 512<<10) // the origin's peer uplink: 512 KiB/s, below the minimum rate
	size := 6 << 20
	m, err := net.Publish(ctx, "build.bin", randomData(size, 5), 64, 16<<10) // 1 MiB generations
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := net.ClientConfig(m.ID(), "solo", 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg.MinRate = 1 << 20
	cfg.FallbackDelay = time.Second
	cfg.FallbackBudget = 4 << 20
	res, err := client.Get(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := res.Progress
	t.Logf("from origin (peer protocol) %d, over HTTP %d bytes in %v", p.FromOrigin, p.FromHTTP, p.Elapsed.Round(time.Millisecond))
	if p.FromHTTP == 0 || p.FromHTTP > cfg.FallbackBudget {
		t.Errorf("HTTP fallback bytes %d, want between 1 and the %d budget", p.FromHTTP, cfg.FallbackBudget)
	}
	if fileHash(t, filepath.Join(cfg.Output, m.Name)) != m.FileHash {
		t.Error("copy differs")
	}
}

// TestEdgeSuperSeed: an edge fetches each generation from the origin once
// (HTTP ranges through its cache) and seeds the swarm; peers that know
// only the edge download from it and from each other, and the origin sends
// about one copy in all.
func TestEdgeSuperSeed(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	net := startNet(t, 512<<10) // the origin's own peer uplink is slow
	e, err := net.StartEdge(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	size := 16 << 20
	m, err := net.Publish(ctx, "build.bin", randomData(size, 6), 64, 32<<10)
	if err != nil {
		t.Fatal(err)
	}
	before := net.OriginHTTPBytes.Load()
	ps := startPeers(t, ctx, net, m, 6, 4<<20, func(c *client.Config) { c.Sources = []string{e.URL} })
	waitComplete(t, ctx, ps)
	checkCopies(t, ps, m)
	var fromEdge, fromOrigin int64
	for _, p := range ps {
		fromEdge += p.final.Load().Progress.FromEdge
		fromOrigin += p.final.Load().Progress.FromOrigin
	}
	httpOut := net.OriginHTTPBytes.Load() - before
	peerOut := net.Seeder.Swarm(m.ID()).Stats().Sent
	t.Logf("origin: %.2f× the file over HTTP (to the edge), %.2f× as a seed; edge seeded %.2f×; peers got %.2f× from the edge, %.2f× from the origin",
		float64(httpOut)/float64(size), float64(peerOut)/float64(size), float64(e.Seeder.Swarm(m.ID()).Stats().Sent)/float64(size),
		float64(fromEdge)/float64(size), float64(fromOrigin)/float64(size))
	if httpOut > int64(size)*11/10 {
		t.Errorf("origin served %d bytes over HTTP, want about one copy (%d)", httpOut, size)
	}
	if e.Seeder.Swarm(m.ID()).Stats().Sent == 0 {
		t.Error("the edge seeded nothing")
	}
}

// TestSeedsAskedBesideTheManifest: a client asks its sources for the
// swarm's seeds while it waits for the manifest, not after: the first
// link, to the origin, waits on them. The sources here hold the manifest
// back until the seeds have been asked for (or 5 s).
func TestSeedsAskedBesideTheManifest(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	n := startNet(t, 0)
	m, err := n.Publish(ctx, "build.bin", randomData(1<<20, 11), 64, 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	target, err := url.Parse(n.OriginURL)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	asked := make(chan struct{})
	var once sync.Once
	var heldBack atomic.Bool
	src := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/swarm/"):
			once.Do(func() { close(asked) })
		case strings.HasPrefix(r.URL.Path, "/v1/manifest/"):
			select {
			case <-asked:
			case <-time.After(5 * time.Second):
				heldBack.Store(true)
			}
		}
		proxy.ServeHTTP(w, r)
	}))
	defer src.Close()
	cfg, err := n.ClientConfig(m.ID(), "eager", 0)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Sources, cfg.Tracker = []string{src.URL}, nil
	res, err := client.Get(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if heldBack.Load() {
		t.Error("the seeds were asked for only after the manifest came")
	}
	if res.Progress.FromOrigin == 0 {
		t.Error("nothing came from the origin the seeds named")
	}
}
