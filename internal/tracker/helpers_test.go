package tracker_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"avalanche/internal/identity"
	"avalanche/internal/manifest"
	"avalanche/internal/netmap"
	"avalanche/internal/tracker"
	"avalanche/internal/tracker/storetest"
)

// clock is a settable clock shared by a test's tracker and clients.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: storetest.T0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// inProcess is an http.RoundTripper that serves each request with h
// directly, as if it came from remote. It lets one test play peers at many
// addresses without a network.
type inProcess struct {
	h      http.Handler
	remote string
}

func (rt inProcess) RoundTrip(req *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	r := req.Clone(req.Context())
	r.RemoteAddr = rt.remote
	r.RequestURI = req.URL.RequestURI()
	rt.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// The synthetic world: two ISPs in Europe, two in the US, one ISP alone
// in its region, and the infrastructure's own network.
var worldEntries = []struct {
	prefix string
	loc    netmap.Location
}{
	{"10.1.0.0/16", netmap.Location{ISP: "Alpha", ASN: 64501, Region: "eu-west", Country: "FR", Lat: 48.85, Lon: 2.35}},
	{"10.2.0.0/16", netmap.Location{ISP: "Beta", ASN: 64502, Region: "eu-west", Country: "GB", Lat: 51.51, Lon: -0.13}},
	{"10.3.0.0/16", netmap.Location{ISP: "Gamma", ASN: 64503, Region: "us-east", Country: "US", Lat: 40.71, Lon: -74.0}},
	{"10.4.0.0/16", netmap.Location{ISP: "Delta", ASN: 64504, Region: "us-east", Country: "US", Lat: 42.36, Lon: -71.06}},
	{"10.5.0.0/16", netmap.Location{ISP: "Lonely", ASN: 64505, Region: "ap-south", Country: "IN", Lat: 19.08, Lon: 72.88}},
	{"10.9.0.0/16", netmap.Location{ISP: "Infra", ASN: 64509, Region: "us-east", Country: "US", Lat: 39.0, Lon: -77.5}},
}

// Network numbers of the world's ISPs: peer addresses are 10.<n>.x.y.
const (
	alpha  = 1
	beta   = 2
	gamma  = 3
	delta  = 4
	lonely = 5
)

var ispName = map[int]string{alpha: "Alpha", beta: "Beta", gamma: "Gamma", delta: "Delta", lonely: "Lonely"}

func worldMap(t testing.TB) *netmap.Map {
	t.Helper()
	var es []netmap.Entry
	for _, e := range worldEntries {
		es = append(es, netmap.Entry{Prefix: netip.MustParsePrefix(e.prefix), Location: e.loc})
	}
	m, err := netmap.New(es)
	if err != nil {
		t.Fatal(err)
	}
	return netmap.Merge(netmap.Default(), m)
}

// peerAddr returns the i-th address in ISP isp.
func peerAddr(isp, i int) string { return fmt.Sprintf("10.%d.%d.%d", isp, i/250, i%250+1) }

// world is a tracker under test with helpers to play nodes.
type world struct {
	t       testing.TB
	clock   *clock
	tr      *tracker.Tracker
	h       http.Handler
	content manifest.ID
	origin  *node
	edges   []*node // edgeEU in Alpha's network, edgeUS in Gamma's
}

// node is one simulated node.
type node struct {
	w      *world
	key    ed25519.PrivateKey
	id     identity.ID
	ip     string
	port   uint16
	role   tracker.Role
	client *tracker.Client
}

// newWorld returns a tracker over the synthetic world with rate limits off;
// mod may change the config. Infrastructure keys are created first so the
// config can trust them.
func newWorld(t testing.TB, mod func(*tracker.Config)) *world {
	t.Helper()
	w := &world{t: t, clock: newClock(), content: storetest.NewContent()}
	w.origin = &node{w: w, key: identity.Generate(), ip: "10.9.0.1", port: 7001, role: tracker.RoleOrigin}
	w.edges = []*node{
		{w: w, key: identity.Generate(), ip: "10.1.200.1", port: 7002, role: tracker.RoleEdge},
		{w: w, key: identity.Generate(), ip: "10.3.200.1", port: 7003, role: tracker.RoleEdge},
	}
	cfg := tracker.Config{
		Map:            worldMap(t),
		Now:            w.clock.Now,
		AddrRate:       -1,
		PeerRate:       -1,
		Infrastructure: []identity.ID{identity.Self(w.origin.key), identity.Self(w.edges[0].key), identity.Self(w.edges[1].key)},
	}
	if mod != nil {
		mod(&cfg)
	}
	tr, err := tracker.New(cfg)
	if err != nil {
		t.Fatalf("New = %v", err)
	}
	w.tr, w.h = tr, tr.Handler()
	for _, n := range append([]*node{w.origin}, w.edges...) {
		w.attach(n)
	}
	return w
}

func (w *world) attach(n *node) {
	n.id = identity.Self(n.key)
	c, err := tracker.NewClient(tracker.ClientConfig{
		URL:        "http://tracker.test",
		Key:        n.key,
		HTTPClient: &http.Client{Transport: inProcess{w.h, netip.AddrPortFrom(netip.MustParseAddr(n.ip), 40000).String()}},
		Now:        w.clock.Now,
	})
	if err != nil {
		w.t.Fatal(err)
	}
	n.client = c
}

// peer returns a new peer node at ip.
func (w *world) peer(ip string) *node {
	n := &node{w: w, key: identity.Generate(), ip: ip, port: 4000, role: tracker.RolePeer}
	w.attach(n)
	return n
}

// populate announces count peers in ISP isp and returns them.
func (w *world) populate(isp, count int) []*node {
	w.t.Helper()
	var out []*node
	for i := range count {
		n := w.peer(peerAddr(isp, i))
		n.mustAnnounce(tracker.AnnounceRequest{Event: tracker.EventStarted, Left: 100})
		out = append(out, n)
	}
	return out
}

// infra announces the origin and the edges.
func (w *world) infra() {
	w.t.Helper()
	for _, n := range append([]*node{w.origin}, w.edges...) {
		n.mustAnnounce(tracker.AnnounceRequest{Event: tracker.EventStarted})
	}
}

func (n *node) announce(req tracker.AnnounceRequest) (tracker.AnnounceResponse, error) {
	if req.Content == (manifest.ID{}) {
		req.Content = n.w.content
	}
	if req.Port == 0 {
		req.Port = n.port
	}
	if req.Role == "" {
		req.Role = n.role
	}
	return n.client.Announce(context.Background(), req)
}

func (n *node) mustAnnounce(req tracker.AnnounceRequest) tracker.AnnounceResponse {
	n.w.t.Helper()
	resp, err := n.announce(req)
	if err != nil {
		n.w.t.Fatalf("Announce(%s at %s) = %v", n.role, n.ip, err)
	}
	return resp
}

func (n *node) report(offender *node) (bool, error) {
	return n.client.Report(context.Background(), n.w.content, offender.id, "bad block")
}

// split separates a hand-out into ordinary peers and infrastructure.
func split(ps []tracker.PeerInfo) (peers, infra []tracker.PeerInfo) {
	for _, p := range ps {
		if p.Role.Infra() {
			infra = append(infra, p)
		} else {
			peers = append(peers, p)
		}
	}
	return peers, infra
}

func contains(ps []tracker.PeerInfo, id identity.ID) bool {
	for _, p := range ps {
		if p.ID == id {
			return true
		}
	}
	return false
}

// isp returns the world ISP number of a handed-out peer.
func isp(p tracker.PeerInfo) int {
	return int(p.Addr.Addr().As4()[1])
}
