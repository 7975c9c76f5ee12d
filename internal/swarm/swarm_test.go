package swarm

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"avalanche/internal/identity"
	"avalanche/internal/manifest"
	"avalanche/internal/wire"
)

// memFile is an in-memory io.ReaderAt + io.WriterAt.
type memFile struct {
	mu sync.Mutex
	b  []byte
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return copy(p, f.b[off:]), nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return copy(f.b[off:], p), nil
}

func randomData(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func testManifest(t testing.TB, data []byte, k, bs int) *manifest.Manifest {
	t.Helper()
	m, err := manifest.FromReader(bytes.NewReader(data), k, bs, "test", "file.bin", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Sign(ed25519.NewKeyFromSeed(make([]byte, 32))); err != nil {
		t.Fatal(err)
	}
	return m
}

// testNode starts a node listening on loopback.
func testNode(t testing.TB, ctx context.Context, role wire.Role, up int64) (*Node, string) {
	t.Helper()
	n, err := NewNode(ctx, NodeConfig{Key: identity.Generate(), Role: role, UploadLimit: up})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go n.Serve(ln)
	t.Cleanup(func() { n.Close() })
	return n, ln.Addr().String()
}

type testSwarm struct {
	origin     *Swarm
	originAddr PeerAddr
	peers      []*Swarm
	outs       []*memFile
	addrs      []PeerAddr
}

func startSwarm(t *testing.T, ctx context.Context, data []byte, m *manifest.Manifest, npeers int, up int64) *testSwarm {
	t.Helper()
	ts := &testSwarm{}
	on, oaddr := testNode(t, ctx, wire.RoleOrigin, up)
	o, err := on.Join(Config{Manifest: m, Data: bytes.NewReader(data), MasterKey: []byte("master secret"), SeedCap: 1.0})
	if err != nil {
		t.Fatal(err)
	}
	ts.origin = o
	ts.originAddr = PeerAddr{ID: on.ID(), Addr: oaddr, Role: wire.RoleOrigin}
	for i := 0; i < npeers; i++ {
		n, addr := testNode(t, ctx, wire.RolePeer, up)
		out := &memFile{b: make([]byte, len(data))}
		s, err := n.Join(Config{Manifest: m, Data: out, Out: out})
		if err != nil {
			t.Fatal(err)
		}
		ts.peers = append(ts.peers, s)
		ts.outs = append(ts.outs, out)
		ts.addrs = append(ts.addrs, PeerAddr{ID: n.ID(), Addr: addr})
	}
	for _, s := range ts.peers {
		s.AddPeers(append([]PeerAddr{ts.originAddr}, ts.addrs...))
	}
	return ts
}

func waitAll(t *testing.T, ctx context.Context, ss []*Swarm) {
	t.Helper()
	for i, s := range ss {
		select {
		case <-s.Done():
		case <-s.Failed():
			t.Fatalf("peer %d failed: %v", i, s.Err())
		case <-ctx.Done():
			st := s.Stats()
			t.Fatalf("peer %d: timed out with %d/%d generations (%+v)\n%s", i, st.Complete, st.Generations, st, s.DebugState())
		}
	}
}

func TestSwarmSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	data := randomData(3*64*1024+12345, 1)
	m := testManifest(t, data, 16, 4096)
	ts := startSwarm(t, ctx, data, m, 4, 0)
	waitAll(t, ctx, ts.peers)
	for i, out := range ts.outs {
		if !bytes.Equal(out.b, data) {
			t.Errorf("peer %d: data differs", i)
		}
	}
	// Peers traded source blocks as they are: almost nothing to decode.
	var in, units int64
	for _, p := range ts.peers {
		st := p.Stats()
		in, units = in+st.BlocksIn, units+st.UnitsIn
	}
	t.Logf("blocks in %d, of which source blocks as is %d", in, units)
	if units < in*8/10 {
		t.Errorf("only %d of %d blocks received were source blocks as is", units, in)
	}
	// What the origin sent is acknowledged once the peers are done, and
	// never counted as delivered before.
	st := ts.origin.Stats()
	for st.Delivered < st.Sent && ctx.Err() == nil {
		if st.Delivered < 0 || st.Delivered > st.Sent {
			t.Fatalf("delivered %d of %d sent", st.Delivered, st.Sent)
		}
		time.Sleep(10 * time.Millisecond)
		st = ts.origin.Stats()
	}
	if st.Delivered != st.Sent {
		t.Errorf("delivered %d of %d sent after the swarm finished", st.Delivered, st.Sent)
	}
	t.Logf("origin sent %.2f× the file", float64(st.Sent)/float64(len(data)))
}

func TestSwarm20Peers(t *testing.T) {
	if testing.Short() {
		t.Skip("32 MiB to 20 peers")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	data := randomData(32<<20, 2)
	m := testManifest(t, data, 64, 32<<10)
	const up = 4 << 20
	start := time.Now()
	ts := startSwarm(t, ctx, data, m, 20, up)
	stop := make(chan struct{})
	go func() {
		var last int64
		var line []string
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				t.Logf("swarm upload utilisation per second: %v", line)
				return
			case <-tk.C:
			}
			total := ts.origin.Stats().Sent
			done := 0
			for _, p := range ts.peers {
				total += p.Stats().Sent
				if p.Complete() {
					done++
				}
			}
			line = append(line, fmt.Sprintf("%.0f%%(%d)", 100*float64(total-last)/float64(21*up), done))
			last = total
		}
	}()
	waitAll(t, ctx, ts.peers)
	close(stop)
	el := time.Since(start)
	for i, out := range ts.outs {
		if !bytes.Equal(out.b, data) {
			t.Errorf("peer %d: data differs", i)
		}
	}
	st := ts.origin.Stats()
	ratio := float64(st.Sent) / float64(len(data))
	bound := max(float64(len(data))/up, 20*float64(len(data))/(21*up))
	var nonInnov, wasted, in, units int64
	for _, p := range ts.peers {
		ps := p.Stats()
		nonInnov += ps.NonInnovative
		wasted += ps.Wasted
		in += ps.BlocksIn
		units += ps.UnitsIn
	}
	t.Logf("all done in %v (bound %.1fs, %.2f×); origin sent %.2f× the file; blocks in %d (source blocks as is %d), non-innovative %d, wasted %d",
		el.Round(time.Millisecond), bound, el.Seconds()/bound, ratio, in, units, nonInnov, wasted)
	if ratio >= 1.3 {
		t.Errorf("origin egress %.2f× the file, want < 1.3×", ratio)
	}
}

// TestDenyList: a node that denies loopback neither accepts nor dials
// loopback peers; one that allows only loopback does.
func TestDenyList(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	data := randomData(64<<10, 4)
	m := testManifest(t, data, 4, 4096)
	start := func(allow, deny []netip.Prefix) (*Node, *Swarm, string) {
		n, err := NewNode(ctx, NodeConfig{Key: identity.Generate(), Allow: allow, Deny: deny})
		if err != nil {
			t.Fatal(err)
		}
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		go n.Serve(ln)
		t.Cleanup(func() { n.Close() })
		out := &memFile{b: make([]byte, len(data))}
		s, err := n.Join(Config{Manifest: m, Data: out, Out: out})
		if err != nil {
			t.Fatal(err)
		}
		return n, s, ln.Addr().String()
	}
	loop := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	denyN, denyS, denyAddr := start(nil, loop)
	_, allowS, allowAddr := start(loop, nil)
	_, plainS, _ := start(nil, nil)
	plainS.AddPeers([]PeerAddr{{ID: denyN.ID(), Addr: denyAddr}, {Addr: allowAddr}})
	denyS.AddPeers([]PeerAddr{{Addr: allowAddr}})
	time.Sleep(1500 * time.Millisecond)
	if n := denyS.Stats().Peers; n != 0 {
		t.Errorf("denying node has %d peers, want 0", n)
	}
	if n := allowS.Stats().Peers; n != 1 {
		t.Errorf("loopback-only node has %d peers, want 1 (the plain node)", n)
	}
}

// TestResendOnLeave: a downloader that leaves with fresh blocks nobody else
// took makes the seed send them again to the next downloader at once, and
// that downloader completes from the seed alone.
func TestResendOnLeave(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	data := randomData(64*4096*4, 7) // 4 generations of 64 blocks
	m := testManifest(t, data, 64, 4096)
	on, oaddr := testNode(t, ctx, wire.RoleOrigin, 0)
	o, err := on.Join(Config{Manifest: m, Data: bytes.NewReader(data), MasterKey: []byte("master secret"), SeedCap: 1.0})
	if err != nil {
		t.Fatal(err)
	}
	seed := PeerAddr{ID: on.ID(), Addr: oaddr, Role: wire.RoleOrigin}

	// The leaver downloads slowly, from the origin only, and leaves early.
	ln, err := NewNode(ctx, NodeConfig{Key: identity.Generate(), DownloadLimit: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	lout := &memFile{b: make([]byte, len(data))}
	leaver, err := ln.Join(Config{Manifest: m, Data: lout, Out: lout})
	if err != nil {
		t.Fatal(err)
	}
	leaver.AddPeers([]PeerAddr{seed})
	for leaver.Stats().Received[FromOrigin] < 8*4096 {
		if ctx.Err() != nil {
			t.Fatal("the leaver got nothing from the origin")
		}
		time.Sleep(5 * time.Millisecond)
	}
	ln.Close()

	n, _ := testNode(t, ctx, wire.RolePeer, 0)
	out := &memFile{b: make([]byte, len(data))}
	s, err := n.Join(Config{Manifest: m, Data: out, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	s.AddPeers([]PeerAddr{seed})
	waitAll(t, ctx, []*Swarm{s})
	if !bytes.Equal(out.b, data) {
		t.Fatal("data differs")
	}
	st := o.Stats()
	t.Logf("origin sent %.2f× the file, %d blocks again", float64(st.Sent)/float64(len(data)), st.Resent)
	if st.Resent == 0 {
		t.Error("the origin sent nothing again after the leaver left")
	}
	if budget := int64(len(data) / 4096 / 20); st.Resent > budget+1 {
		t.Errorf("the origin sent %d blocks again, more than its budget of %d", st.Resent, budget+1)
	}
}

// Downloaders that finish learn that their neighbours finished too, even
// neighbours that finished each generation before them (whose ranks were
// never announced to them), and close the links that serve neither side.
func TestFinishedNeighboursLetGo(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	data := randomData(512<<10, 6)
	m := testManifest(t, data, 8, 4096)
	ts := startSwarm(t, ctx, data, m, 4, 0)
	waitAll(t, ctx, ts.peers)
	deadline := time.After(5 * time.Second)
	for _, s := range ts.peers {
		for s.Stats().Peers > 0 {
			select {
			case <-deadline:
				t.Fatalf("finished downloaders still linked: %d links\n%s", s.Stats().Peers, s.DebugState())
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
}
