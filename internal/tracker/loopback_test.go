package tracker_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"avalanche/internal/identity"
	"avalanche/internal/netmap"
	"avalanche/internal/redistest"
	"avalanche/internal/tracker"
	"avalanche/internal/tracker/redisstore"
	"avalanche/internal/tracker/storetest"
)

// localClient returns a Client whose connections leave from local address
// ip (any 127.x.y.z works on Linux loopback), so that one test can play
// peers in several networks over real TCP.
func localClient(t *testing.T, url, ip string) *tracker.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	c, err := tracker.NewClient(tracker.ClientConfig{URL: url, Key: identity.Generate(), HTTPClient: &http.Client{Transport: tr, Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestClientOverLoopback runs the peers' whole conversation with a tracker
// over real TCP: announces from three networks, the locality of what comes
// back, a report that bans, and stats.
func TestClientOverLoopback(t *testing.T) {
	var es []netmap.Entry
	for _, e := range []struct {
		p   string
		loc netmap.Location
	}{
		{"127.1.0.0/16", netmap.Location{ISP: "A", Region: "r1"}},
		{"127.2.0.0/16", netmap.Location{ISP: "B", Region: "r1"}},
		{"127.3.0.0/16", netmap.Location{ISP: "C", Region: "r2"}},
	} {
		es = append(es, netmap.Entry{Prefix: netip.MustParsePrefix(e.p), Location: e.loc})
	}
	m, err := netmap.New(es)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := tracker.New(tracker.Config{Map: netmap.Merge(netmap.Default(), m), Interval: time.Second, AddrRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(tr.Handler())
	defer srv.Close()
	ctx := t.Context()
	content := storetest.NewContent()

	// Probe that this machine lets us bind 127.1.0.1.
	if l, err := net.Listen("tcp", "127.1.0.1:0"); err != nil {
		t.Skipf("cannot bind 127.1.0.1 (%v); loopback is not a /8 here", err)
	} else {
		l.Close()
	}

	type peer struct {
		c  *tracker.Client
		ip string
	}
	var peers []peer
	for _, ip := range []string{"127.1.0.1", "127.1.0.2", "127.1.0.3", "127.2.0.1", "127.3.0.1", "127.3.0.2"} {
		p := peer{localClient(t, srv.URL, ip), ip}
		resp, err := p.c.Announce(ctx, tracker.AnnounceRequest{Content: content, Port: 9000, Event: tracker.EventStarted, Left: 10})
		if err != nil {
			t.Fatalf("Announce from %s = %v", ip, err)
		}
		if resp.YourAddr.String() != ip || resp.Interval != time.Second {
			t.Fatalf("Announce from %s: your_addr %v, interval %v", ip, resp.YourAddr, resp.Interval)
		}
		peers = append(peers, p)
	}
	resp, err := peers[0].c.Announce(ctx, tracker.AnnounceRequest{Content: content, Port: 9000, Want: 3, Left: 10})
	if err != nil {
		t.Fatal(err)
	}
	// Want 3: quotas ISP 1, region 1, random 1. The first must be in A.
	if len(resp.Peers) != 3 || resp.Peers[0].ISP != "A" || resp.Peers[0].Addr.Port() != 9000 {
		t.Fatalf("hand-out = %+v, want 3 peers, the first in ISP A on port 9000", resp.Peers)
	}
	if resp.Peers[1].ISP != "A" && resp.Peers[1].Region != "r1" {
		t.Fatalf("second peer %+v, want one in region r1", resp.Peers[1])
	}

	// Peers 1 and 2 report peer 5: it is banned.
	bad := peers[5]
	for i, rep := range peers[1:3] {
		banned, err := rep.c.Report(ctx, content, bad.c.ID(), "bad block")
		if err != nil || banned != (i == 1) {
			t.Fatalf("report %d = %v, %v; want banned %v", i, banned, err, i == 1)
		}
	}
	_, err = bad.c.Announce(ctx, tracker.AnnounceRequest{Content: content, Port: 9000, Left: 10})
	if !errors.Is(err, tracker.ErrBanned) {
		t.Fatalf("banned peer's announce = %v, want ErrBanned", err)
	}
	st, err := peers[0].c.SwarmStats(ctx, content)
	if err != nil || st.Size != 5 || st.Banned != 1 || st.Announces != 7 {
		t.Fatalf("SwarmStats = %+v, %v; want size 5, 1 banned, 7 announces", st, err)
	}
}

// TestTwoTrackersShareRedis: two control nodes over one Redis act as one
// tracker.
func TestTwoTrackersShareRedis(t *testing.T) {
	addr := redistest.Start(t)
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	clk := newClock()
	var ws []*world
	for range 2 {
		w := newWorld(t, func(c *tracker.Config) {
			s, err := redisstore.New(redisstore.Config{Client: rdb, Prefix: "two:"})
			if err != nil {
				t.Fatal(err)
			}
			c.Store = s
			c.Now = clk.Now
		})
		ws = append(ws, w)
	}
	a, b := ws[0], ws[1]
	b.content = a.content

	p1 := a.peer(peerAddr(alpha, 1))
	p1.mustAnnounce(tracker.AnnounceRequest{Left: 1})
	p2 := b.peer(peerAddr(alpha, 2))
	if resp := p2.mustAnnounce(tracker.AnnounceRequest{Left: 1}); len(resp.Peers) != 1 || resp.Peers[0].ID != p1.id {
		t.Fatalf("peer on tracker B got %d peers, want the one announced to A", len(resp.Peers))
	}
	p3 := b.peer(peerAddr(beta, 1))
	p3.mustAnnounce(tracker.AnnounceRequest{Left: 1})
	// One report through each tracker bans p3 everywhere.
	if banned, err := a.attachTo(p1).report(p3); err != nil || banned {
		t.Fatalf("first report = %v, %v", banned, err)
	}
	if banned, err := p2.report(p3); err != nil || !banned {
		t.Fatalf("second report = %v, %v; want banned", banned, err)
	}
	if _, err := a.attachTo(p3).announce(tracker.AnnounceRequest{Left: 1}); !errors.Is(err, tracker.ErrBanned) {
		t.Fatalf("banned peer at tracker A = %v, want ErrBanned", err)
	}
	// Replay protection spans trackers: p2 announced to B at this instant,
	// so the same timestamp is refused by A.
	if _, err := a.attachTo(p2).announce(tracker.AnnounceRequest{Left: 1}); !errors.Is(err, tracker.ErrStale) {
		t.Fatalf("same timestamp at the other tracker = %v, want ErrStale", err)
	}
	stA, _ := a.tr.SwarmStats(context.Background(), a.content)
	stB, _ := b.tr.SwarmStats(context.Background(), b.content)
	if stA != stB || stA.Size != 2 || stA.Banned != 1 {
		t.Fatalf("stats differ or wrong: A %+v, B %+v", stA, stB)
	}
}

// attachTo returns a copy of n that talks to tracker w.
func (w *world) attachTo(n *node) *node {
	m := *n
	m.w = w
	w.attach(&m)
	return &m
}

// countingConn counts the bytes read from a connection.
type countingConn struct {
	net.Conn
	n *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// TestAnnounceAnswersGzipped: a client that accepts gzip (Go's does by
// itself) gets the same hand-out in well under half the bytes on the wire.
func TestAnnounceAnswersGzipped(t *testing.T) {
	tr, err := tracker.New(tracker.Config{Map: netmap.Default(), AddrRate: -1, PeerRate: -1})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(tr.Handler())
	defer srv.Close()
	ctx := t.Context()
	content := storetest.NewContent()
	for i := range 20 {
		c := localClient(t, srv.URL, "127.0.0.1")
		if _, err := c.Announce(ctx, tracker.AnnounceRequest{Content: content, Port: uint16(9000 + i), Event: tracker.EventStarted, Left: 10}); err != nil {
			t.Fatal(err)
		}
	}
	key := identity.Generate()
	announce := func(compress bool) (tracker.AnnounceResponse, int64) {
		var read atomic.Int64
		d := &net.Dialer{Timeout: 5 * time.Second}
		tp := &http.Transport{DisableCompression: !compress, DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return countingConn{c, &read}, nil
		}}
		defer tp.CloseIdleConnections()
		c, err := tracker.NewClient(tracker.ClientConfig{URL: srv.URL, Key: key, HTTPClient: &http.Client{Transport: tp, Timeout: 10 * time.Second}})
		if err != nil {
			t.Fatal(err)
		}
		resp, err := c.Announce(ctx, tracker.AnnounceRequest{Content: content, Port: 9999, Left: 10})
		if err != nil {
			t.Fatal(err)
		}
		return resp, read.Load()
	}
	plain, plainBytes := announce(false)
	zipped, zippedBytes := announce(true)
	if len(plain.Peers) != 20 || len(zipped.Peers) != 20 {
		t.Fatalf("hand-outs of %d and %d peers, want 20 each", len(plain.Peers), len(zipped.Peers))
	}
	if zippedBytes*2 > plainBytes {
		t.Errorf("gzipped answer took %d bytes on the wire, plain %d: want under half", zippedBytes, plainBytes)
	}
	t.Logf("announce answer with 20 peers: %d bytes plain, %d gzipped", plainBytes, zippedBytes)
}
