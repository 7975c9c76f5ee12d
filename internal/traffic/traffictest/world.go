// Package traffictest provides a synthetic world for testing and
// benchmarking the traffic manager: six edges in three regions, four ISPs,
// client networks with known locations, per-edge egress costs that vary by
// time of day, and real HTTP edge servers with /healthz that can be killed.
package traffictest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"avalanche/internal/netmap"
	"avalanche/internal/traffic"
)

// Regions, ISPs and their ASNs in the world.
const (
	EU   = "eu-west"
	US   = "us-east"
	AP   = "ap-south"
	Eir  = "EirNet"     // AS64500, Ireland
	Atl  = "AtlantiCom" // AS64510, United States
	Lion = "LionNet"    // AS64520, Singapore
	Glob = "GlobalTel"  // AS64530, everywhere
)

// Clients are addresses with known places, by name.
var Clients = map[string]netip.Addr{
	"dublin-eir":     netip.MustParseAddr("203.0.113.10"),  // EirNet, IE, eu-west
	"cork-global":    netip.MustParseAddr("203.0.113.200"), // GlobalTel, IE, eu-west
	"newyork-atl":    netip.MustParseAddr("198.51.100.10"), // AtlantiCom, US, us-east
	"singapore-lion": netip.MustParseAddr("192.0.2.10"),    // LionNet, SG, ap-south
	"mumbai-global":  netip.MustParseAddr("192.0.2.200"),   // GlobalTel, IN, ap-south
	"newyork-v6":     netip.MustParseAddr("2001:db8:64::1"),
	"nowhere":        netip.MustParseAddr("8.8.8.8"), // not in the map
}

// MapCSV is the world's network map in the CSV form of netmap.Parse.
const MapCSV = `prefix,isp,asn,region,country,lat,lon
203.0.113.0/25,EirNet,AS64500,eu-west,IE,53.35,-6.26
203.0.113.128/25,GlobalTel,AS64530,eu-west,IE,51.90,-8.47
198.51.100.0/24,AtlantiCom,AS64510,us-east,US,40.71,-74.00
192.0.2.0/25,LionNet,AS64520,ap-south,SG,1.35,103.82
192.0.2.128/25,GlobalTel,AS64530,ap-south,IN,19.07,72.88
2001:db8:64::/48,GlobalTel,AS64530,us-east,US,40.71,-74.00
`

// Map returns the world's network map (with the built-in loopback and
// private ranges).
func Map() *netmap.Map {
	m, err := netmap.Parse(strings.NewReader(MapCSV))
	if err != nil {
		panic(err)
	}
	return netmap.Merge(netmap.Default(), m)
}

// Edges returns the six edges. Their URLs are loopback addresses with no
// server behind them (so that a test that forgets to turn probing off
// still sends nothing off the machine) and their DNS addresses are
// documentation addresses that are never contacted; StartEdges replaces
// the URLs with live servers.
//
//	id     region    city        peers with   cost/GB (UTC window)
//	dub-1  eu-west   Dublin      -            0.02
//	dub-2  eu-west   Dublin      EirNet       0.03
//	nyc-1  us-east   New York    AtlantiCom   0.01, 0.05 13:00-22:00
//	nyc-2  us-east   Ashburn     -            0.03
//	sin-1  ap-south  Singapore   LionNet      0.04
//	bom-1  ap-south  Mumbai      AS64530      0.02
func Edges() []traffic.Edge {
	n := 0
	mk := func(id, ip, region, country string, lat, lon, cost float64, peers ...string) traffic.Edge {
		n++
		return traffic.Edge{
			ID: id, URL: fmt.Sprintf("http://127.0.1.%d:8080", n), Addrs: []netip.Addr{netip.MustParseAddr(ip)},
			Region: region, Country: country, Lat: lat, Lon: lon, Peers: peers, CostPerGB: cost,
			Capacity: traffic.Capacity{EgressBps: 10e9, Conns: 100000},
			Load:     traffic.Load{EgressBps: 1e9, CPU: 0.2, Conns: 1000},
		}
	}
	es := []traffic.Edge{
		mk("dub-1", "192.0.2.251", EU, "IE", 53.35, -6.26, 0.02),
		mk("dub-2", "192.0.2.252", EU, "IE", 53.34, -6.27, 0.03, Eir),
		mk("nyc-1", "198.51.100.251", US, "US", 40.71, -74.00, 0.01, Atl),
		mk("nyc-2", "198.51.100.252", US, "US", 39.04, -77.49, 0.03),
		mk("sin-1", "203.0.113.251", AP, "SG", 1.35, 103.82, 0.04, Lion),
		mk("bom-1", "203.0.113.252", AP, "IN", 19.07, 72.88, 0.02, "AS64530"),
	}
	es[2].CostSchedule = []traffic.CostWindow{{From: "13:00", To: "22:00", PerGB: 0.05}}
	es[5].Addrs = append(es[5].Addrs, netip.MustParseAddr("2001:db8:ff::252"))
	return es
}

// Register sends every edge's heartbeat to m.
func Register(ctx context.Context, m *traffic.Manager, edges []traffic.Edge) error {
	for _, e := range edges {
		if err := m.Heartbeat(ctx, e); err != nil {
			return err
		}
	}
	return m.Refresh(ctx)
}

// Server is a real HTTP edge with /healthz that can be made unhealthy or
// killed.
type Server struct {
	ID       string
	URL      string
	failing  atomic.Bool
	srv      *http.Server
	ln       net.Listener
	requests atomic.Int64
}

// StartServer starts an edge server on a free loopback port.
func StartServer(id string) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{ID: id, URL: "http://" + ln.Addr().String(), ln: ln}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if s.failing.Load() {
			http.Error(w, "failing", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		fmt.Fprintf(w, "edge %s: %s\n", id, r.URL.Path)
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go s.srv.Serve(ln)
	return s, nil
}

// SetFailing makes /healthz answer 503 (true) or 200 (false).
func (s *Server) SetFailing(f bool) { s.failing.Store(f) }

// Requests counts non-health requests served.
func (s *Server) Requests() int64 { return s.requests.Load() }

// Kill stops the server abruptly: the listener closes and connections
// drop, as when the process dies.
func (s *Server) Kill() { s.srv.Close() }

// StartEdges starts a live server for each edge and points the edge's URL
// at it. The caller must Kill the servers.
func StartEdges(edges []traffic.Edge) ([]traffic.Edge, []*Server, error) {
	out := append([]traffic.Edge(nil), edges...)
	var srvs []*Server
	for i := range out {
		s, err := StartServer(out[i].ID)
		if err != nil {
			for _, s := range srvs {
				s.Kill()
			}
			return nil, nil, err
		}
		out[i].URL = s.URL
		srvs = append(srvs, s)
	}
	return out, srvs, nil
}

// FailoverResult is what MeasureFailover observed.
type FailoverResult struct {
	// Detect is the time from killing the edge until no control node sent
	// a new client to it any more.
	Detect time.Duration
	// PerNode is, for each control node, the time from the kill until that
	// node stopped answering the dead edge.
	PerNode []time.Duration
	// ProbeInterval is the probe interval used.
	ProbeInterval time.Duration
}

// MeasureFailover runs the world's edges as real HTTP servers behind one
// Manager probing every probeInterval (default fail threshold 3, fast
// re-probes at a quarter of the interval), routes every client to dub-2 by
// priority, kills dub-2 and returns how long it took until Route stopped
// answering dub-2. It checks that dub-2 is not answered again afterwards.
func MeasureFailover(ctx context.Context, probeInterval time.Duration) (FailoverResult, error) {
	return MeasureFailoverNodes(ctx, probeInterval, nil)
}

// MeasureFailoverNodes is MeasureFailover with one control node per store
// in stores, each probing on its own and voting in its store; give them
// one shared store (a RedisStore each on the same Redis and prefix, or the
// same MemStore) to measure control nodes acting as one: an edge is then
// down only once most of them have seen it fail, and every node must
// stop answering it. The nodes start probing out of phase, a fraction of
// the interval apart. With no stores one node runs on a new MemStore. The
// stores must be empty.
func MeasureFailoverNodes(ctx context.Context, probeInterval time.Duration, stores []traffic.Store) (FailoverResult, error) {
	res := FailoverResult{ProbeInterval: probeInterval}
	if len(stores) == 0 {
		stores = []traffic.Store{nil}
	}
	edges, srvs, err := StartEdges(Edges())
	if err != nil {
		return res, err
	}
	defer func() {
		for _, s := range srvs {
			s.Kill()
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	var ms []*traffic.Manager
	var dones []chan error
	defer func() {
		cancel()
		for _, d := range dones {
			<-d
		}
	}()
	for i, st := range stores {
		// Start the nodes a fraction of the interval apart, so that their
		// probes are out of phase as on separate machines.
		if i > 0 {
			time.Sleep(probeInterval / time.Duration(len(stores)))
		}
		// Votes count for 3 intervals by default; with the sub-second
		// intervals of tests a loaded machine (-race, other builds) can
		// stall every prober of this process that long, and an edge whose
		// down votes all aged out counts as healthy again. Keep them for
		// at least 2 s; with 1 s probes this is the default 3 s.
		cfg := traffic.Config{Store: st, Map: Map(), ProbeInterval: probeInterval, NodeID: fmt.Sprintf("measure-%d", i),
			VoteTTL: max(3*probeInterval, 2*time.Second)}
		m, err := traffic.New(ctx, cfg)
		if err != nil {
			return res, err
		}
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		ms, dones = append(ms, m), append(dones, done)
	}
	if err := Register(ctx, ms[0], edges); err != nil {
		return res, err
	}
	p, err := traffic.ParsePolicy([]byte(`{"name":"p","rules":{"sticky_seconds":0},"route":{"method":"priority","targets":[{"edge":"dub-2"},{"edge":"dub-1"}]}}`))
	if err != nil {
		return res, err
	}
	if err := ms[0].PutPolicy(ctx, p); err != nil {
		return res, err
	}
	// Stickiness is off: a binding one node moves would carry the prefix
	// on every node at once, and the figure is for new clients.
	first := func(m *traffic.Manager) (string, error) {
		d, err := m.Route(ctx, traffic.Query{Property: "p", Client: Clients["dublin-eir"], Max: 1})
		if err != nil || len(d.Edges) == 0 {
			return "", fmt.Errorf("traffictest: route: %v (origin %q)", err, d.Origin)
		}
		return d.Edges[0].ID, nil
	}
	// Wait until every node has seen every edge probed healthy by every
	// node, then let a random part of the probe interval pass so the kill
	// lands at a random phase.
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok := true
		for _, m := range ms {
			st := m.Edges()
			if len(st) != len(edges) {
				ok = false
			}
			for _, s := range st {
				if s.VotesUp < len(ms) {
					ok = false
				}
			}
			if id, err := first(m); err != nil || id != "dub-2" {
				ok = false
			}
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			return res, fmt.Errorf("traffictest: edges not probed by every node within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(time.Duration(time.Now().UnixNano() % int64(probeInterval)))
	for _, m := range ms {
		if id, err := first(m); err != nil || id != "dub-2" {
			return res, fmt.Errorf("traffictest: before the kill routed to %q, %v", id, err)
		}
	}
	srvs[1].Kill()
	start := time.Now()
	res.PerNode = make([]time.Duration, len(ms))
	for left := len(ms); left > 0; {
		for i, m := range ms {
			if res.PerNode[i] != 0 {
				continue
			}
			id, err := first(m)
			if err != nil {
				return res, err
			}
			if id != "dub-2" {
				res.PerNode[i] = time.Since(start)
				left--
			}
		}
		if time.Since(start) > 30*probeInterval+10*time.Second {
			return res, fmt.Errorf("traffictest: still routing to the dead edge after %v", time.Since(start))
		}
		time.Sleep(time.Millisecond)
	}
	for _, d := range res.PerNode {
		res.Detect = max(res.Detect, d)
	}
	for range 3 * int(probeInterval/time.Millisecond/10+1) {
		for _, m := range ms {
			if id, _ := first(m); id == "dub-2" {
				return res, fmt.Errorf("traffictest: the dead edge came back")
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	return res, nil
}
