package testnet

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"avalanche/internal/identity"
	"avalanche/internal/manifest"
	"avalanche/internal/tracker"
	"avalanche/internal/wire"
)

// polluter is a node that speaks the peer protocol correctly, claims to
// hold the whole content, announces itself to the tracker as a seed, and
// answers every want with a well-framed block whose payload is wrong.
type polluter struct {
	key  ed25519.PrivateKey
	m    *manifest.Manifest
	ln   net.Listener
	tc   *tracker.Client
	port uint16

	mu      sync.Mutex
	victims map[identity.ID]*victim // by the dialer's peer ID
	bad     atomic.Int64            // wrong blocks sent, all connections
	banned  atomic.Bool             // the tracker refused an announce as banned
}

// victim is what the polluter saw of one honest neighbour.
type victim struct {
	sent int          // wrong blocks sent before the neighbour said bye
	bye  wire.ByeCode // the neighbour's goodbye, if any
	said bool
}

func startPolluter(t *testing.T, ctx context.Context, n *Net, m *manifest.Manifest) *polluter {
	t.Helper()
	p := &polluter{key: identity.Generate(), m: m, victims: map[identity.ID]*victim{}}
	var err error
	if p.ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	p.port = uint16(p.ln.Addr().(*net.TCPAddr).Port)
	if p.tc, err = tracker.NewClient(tracker.ClientConfig{URL: n.TrackerURL, Key: p.key}); err != nil {
		t.Fatal(err)
	}
	cfg, err := identity.ServerTLS(p.key, wire.ALPN)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { p.ln.Close(); wg.Wait() })
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			c, err := p.ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				p.serve(tls.Server(c, cfg))
			}()
		}
	}()
	// Announce as a complete peer until banned or stopped.
	go func() {
		defer wg.Done()
		ev := tracker.EventStarted
		for ctx.Err() == nil {
			_, err := p.tc.Announce(ctx, tracker.AnnounceRequest{Content: m.ID(), Port: p.port, Event: ev, Left: 0})
			if errors.Is(err, tracker.ErrBanned) {
				p.banned.Store(true)
				return
			}
			ev = tracker.EventProgress
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()
	return p
}

func (p *polluter) serve(c *tls.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if err := c.Handshake(); err != nil {
		return
	}
	id, err := identity.PeerID(c.ConnectionState())
	if err != nil {
		return
	}
	v := &victim{}
	p.mu.Lock()
	p.victims[id] = v
	p.mu.Unlock()
	var buf []byte
	read := func() (wire.Frame, error) {
		body, nb, err := wire.ReadFrame(c, buf)
		buf = nb
		if err != nil {
			return nil, err
		}
		return wire.Decode(body, p.m)
	}
	f, err := read()
	if h, ok := f.(wire.Hello); err != nil || !ok || h.Content != p.m.ID() {
		return
	}
	full := make([]byte, p.m.Generations())
	for g := range full {
		full[g] = byte(p.m.GenerationBlocks(g))
	}
	c.Write(wire.Append(nil, wire.Hello{Version: wire.Version, Role: wire.RolePeer, Content: p.m.ID(), Port: p.port, Complete: true}))
	c.Write(wire.Append(nil, wire.State{Ranks: full}))
	bad := make([]byte, p.m.BlockSize)
	for i := range bad {
		bad[i] = byte(i*7 + 1)
	}
	for {
		f, err := read()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case wire.Want:
			coeffs := append([]byte(nil), f.Coeffs...)
			if f.Any {
				coeffs[0] = 1
			}
			c.Write(wire.Append(nil, wire.Block{Gen: f.Gen, Coeffs: coeffs, Payload: bad}))
			p.bad.Add(1)
			p.mu.Lock()
			v.sent++
			p.mu.Unlock()
		case wire.Request:
			// Offer unit vectors: they look as good as anyone's.
			k := p.m.GenerationBlocks(int(f.Gen))
			var vecs []byte
			for j := 0; j < k && len(vecs)/k < int(f.Count) && len(vecs)/k < wire.MaxOffer; j++ {
				if len(f.Units) > j/8 && f.Units[j/8]&(1<<(j%8)) != 0 {
					continue
				}
				u := make([]byte, k)
				u[j] = 1
				vecs = append(vecs, u...)
			}
			c.Write(wire.Append(nil, wire.Offer{Gen: f.Gen, Vectors: vecs}))
		case wire.Bye:
			p.mu.Lock()
			v.bye, v.said = f.Code, true
			p.mu.Unlock()
			return
		}
	}
}

// TestPolluterInSwarm: a node announced to the tracker as a complete peer
// answers wants with well-framed blocks carrying a wrong payload. Every
// honest peer that asks it catches it on the first such block (exactly one
// failed check per victim), closes the link with bye(pollution) and reports
// it; the tracker bans it; every honest copy is byte-identical to the
// published file (generations are written only once verified, so no wrong
// byte reaches a peer's disk).
func TestPolluterInSwarm(t *testing.T) {
	peers, size := 8, 8<<20
	if testing.Short() {
		peers, size = 4, 4<<20
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	// A slow origin, so that the "complete peer" looks worth asking.
	net := startNet(t, 1<<20)
	m, err := net.Publish(ctx, "build.bin", randomData(size, 7), 64, 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	pol := startPolluter(t, ctx, net, m)
	// Let the tracker know the polluter before the honest peers arrive.
	time.Sleep(300 * time.Millisecond)
	ps := startPeers(t, ctx, net, m, peers, 4<<20)
	waitComplete(t, ctx, ps)
	checkCopies(t, ps, m)

	victims := 0
	for _, p := range ps {
		st := p.sw.Load().Stats()
		if st.Polluted > 1 {
			t.Errorf("%s checked %d polluted blocks, want at most 1 (caught on the first)", p.name, st.Polluted)
		}
		if st.Polluted == 1 {
			victims++
		}
	}
	pol.mu.Lock()
	byes := 0
	for id, v := range pol.victims {
		if v.sent > 0 && (!v.said || v.bye != wire.ByePollution) {
			t.Errorf("victim %s: got %d wrong blocks, said bye %v (code %d), want bye(pollution)", id.Short(), v.sent, v.said, v.bye)
		}
		if v.said && v.bye == wire.ByePollution {
			byes++
		}
	}
	pol.mu.Unlock()
	t.Logf("polluter sent %d wrong blocks; %d honest peers caught it, each on its first block; %d said bye(pollution)", pol.bad.Load(), victims, byes)
	if victims < 2 {
		t.Fatalf("only %d peers asked the polluter; the test did not exercise the defence", victims)
	}

	// Two reports ban it at the tracker: it is refused and handed out to
	// nobody.
	deadline := time.Now().Add(5 * time.Second)
	for !pol.banned.Load() && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !pol.banned.Load() {
		t.Error("the tracker still accepts the polluter's announces")
	}
	fresh, err := tracker.NewClient(tracker.ClientConfig{URL: net.TrackerURL, Key: identity.Generate()})
	if err != nil {
		t.Fatal(err)
	}
	resp, err := fresh.Announce(ctx, tracker.AnnounceRequest{Content: m.ID(), Port: 1, Event: tracker.EventStarted, Left: uint64(m.Size), Want: 200})
	if err != nil {
		t.Fatal(err)
	}
	polID := identity.Self(pol.key)
	for _, p := range resp.Peers {
		if p.ID == polID || p.Addr == netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), pol.port) {
			t.Error("the tracker still hands out the polluter")
		}
	}
	st, err := fresh.SwarmStats(ctx, m.ID())
	if err != nil {
		t.Fatal(err)
	}
	if st.Banned != 1 {
		t.Errorf("tracker stats: %d banned, want 1", st.Banned)
	}
}
