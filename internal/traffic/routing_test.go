package traffic_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"avalanche/internal/traffic"
	"avalanche/internal/traffic/traffictest"
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.t = t
	c.mu.Unlock()
}
func (c *clock) add(d time.Duration) { c.set(c.now().Add(d)) }

// at10 is 10:00 UTC, outside nyc-1's peak-price window.
var at10 = time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)

// world is a Manager over the synthetic world, with probes off.
type world struct {
	m     *traffic.Manager
	store *traffic.MemStore
	clk   *clock
	edges map[string]traffic.Edge
}

func newWorld(t testing.TB) *world {
	t.Helper()
	ctx := context.Background()
	w := &world{store: traffic.NewMemStore(), clk: &clock{t: at10}, edges: map[string]traffic.Edge{}}
	w.store.Now = w.clk.now
	m, err := traffic.New(ctx, traffic.Config{Store: w.store, Map: traffictest.Map(), DisableProbes: true, Now: w.clk.now, NodeID: "test"})
	if err != nil {
		t.Fatal(err)
	}
	w.m = m
	for _, e := range traffictest.Edges() {
		w.edges[e.ID] = e
	}
	if err := traffictest.Register(ctx, m, traffictest.Edges()); err != nil {
		t.Fatal(err)
	}
	return w
}

// policy installs a policy given as JSON; %s in doc is replaced by name.
func (w *world) policy(t testing.TB, doc string) {
	t.Helper()
	p, err := traffic.ParsePolicy([]byte(doc))
	if err != nil {
		t.Fatalf("ParsePolicy(%s): %v", doc, err)
	}
	if err := w.m.PutPolicy(context.Background(), p); err != nil {
		t.Fatal(err)
	}
}

// update re-sends an edge's heartbeat after f changed it.
func (w *world) update(t testing.TB, id string, f func(*traffic.Edge)) {
	t.Helper()
	e := w.edges[id]
	f(&e)
	w.edges[id] = e
	if err := w.m.Heartbeat(context.Background(), e); err != nil {
		t.Fatal(err)
	}
	if err := w.m.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func (w *world) route(t testing.TB, client string, n int) ([]string, traffic.Decision) {
	t.Helper()
	a, ok := traffictest.Clients[client]
	if !ok {
		a = netip.MustParseAddr(client)
	}
	d, err := w.m.Route(context.Background(), traffic.Query{Property: "p", Path: "f.bin", Client: a, Max: n})
	if err != nil {
		t.Fatalf("Route(%s): %v", client, err)
	}
	var ids []string
	for _, e := range d.Edges {
		ids = append(ids, e.ID)
	}
	return ids, d
}

const noSticky = `"rules":{"sticky_seconds":0}`

func TestRoutingMethods(t *testing.T) {
	tests := []struct {
		name   string
		policy string
		setup  func(t testing.TB, w *world)
		client string
		n      int
		want   string // comma-separated ranked IDs (prefix of the answer)
	}{
		// Performance (the default route): nearest by coordinates, equal
		// quality broken by peering, then cost.
		{"performance/peering first", `{"name":"p",` + noSticky + `}`, nil, "dublin-eir", 3, "dub-2,dub-1,nyc-1"},
		{"performance/cheapest when nobody peers", `{"name":"p",` + noSticky + `}`, nil, "cork-global", 2, "dub-1,dub-2"},
		{"performance/ipv6 client", `{"name":"p",` + noSticky + `}`, nil, "newyork-v6", 2, "nyc-1,nyc-2"},
		{"performance/peering by ASN", `{"name":"p",` + noSticky + `}`, nil, "mumbai-global", 1, "bom-1"},
		{"performance/measured RTT beats distance", `{"name":"p",` + noSticky + `}`,
			func(t testing.TB, w *world) {
				w.update(t, "sin-1", func(e *traffic.Edge) { e.Load.RTTms = map[string]float64{traffictest.AP: 3} })
				w.update(t, "bom-1", func(e *traffic.Edge) { e.Load.RTTms = map[string]float64{traffictest.AP: 40} })
			}, "mumbai-global", 2, "sin-1,bom-1"},
		{"performance/unknown client gets some edge", `{"name":"p",` + noSticky + `}`, nil, "nowhere", 1, ""},

		// Priority: first target with an eligible edge.
		{"priority/first", `{"name":"p",` + noSticky + `,"route":{"method":"priority","targets":[{"edge":"sin-1"},{"edge":"nyc-1"},{"edge":"dub-1"}]}}`,
			nil, "dublin-eir", 3, "sin-1,nyc-1,dub-1"},
		{"priority/explicit priorities", `{"name":"p",` + noSticky + `,"route":{"method":"priority","targets":[{"edge":"sin-1","priority":3},{"edge":"nyc-1","priority":1},{"edge":"dub-1","priority":2}]}}`,
			nil, "dublin-eir", 3, "nyc-1,dub-1,sin-1"},
		{"priority/failover", `{"name":"p",` + noSticky + `,"route":{"method":"priority","targets":[{"edge":"sin-1"},{"edge":"nyc-1"}]}}`,
			func(t testing.TB, w *world) { drain(t, w, "sin-1") }, "dublin-eir", 2, "nyc-1"},

		// Geographic with nesting: country, then region, then "*".
		{"geographic/country", geoPolicy, nil, "dublin-eir", 1, "dub-2"},
		{"geographic/region", geoPolicy, nil, "newyork-atl", 2, "nyc-1,nyc-2"},
		{"geographic/default", geoPolicy, nil, "nowhere", 1, "sin-1"},
		{"geographic/region empty falls to default", geoPolicy,
			func(t testing.TB, w *world) { drain(t, w, "nyc-1"); drain(t, w, "nyc-2") }, "newyork-atl", 1, "sin-1"},

		// Subnet: longest CIDR wins; an empty branch falls to shorter ones.
		{"subnet/longest", subnetPolicy, nil, "cork-global", 1, "nyc-2"},
		{"subnet/shorter", subnetPolicy, nil, "dublin-eir", 1, "sin-1"},
		{"subnet/default", subnetPolicy, nil, "newyork-atl", 1, "dub-1"},
		{"subnet/ipv6", subnetPolicy, nil, "newyork-v6", 1, "bom-1"},
		{"subnet/fallback when branch drained", subnetPolicy,
			func(t testing.TB, w *world) { drain(t, w, "nyc-2") }, "cork-global", 1, "sin-1"},

		// Multivalue: several answers when the query asks for the policy's count.
		{"multivalue/three", `{"name":"p",` + noSticky + `,"route":{"method":"multivalue","max":3,"targets":[{"route":{"method":"performance","targets":[{"region":"*"}]}}]}}`,
			nil, "dublin-eir", 0, "dub-2,dub-1,nyc-1"},
		{"multivalue/only healthy", `{"name":"p",` + noSticky + `,"route":{"method":"multivalue","targets":[{"edges":["dub-1","dub-2","sin-1"]}]}}`,
			func(t testing.TB, w *world) { drain(t, w, "dub-2") }, "dublin-eir", 0, "dub-1,sin-1"},

		// Nesting: priority of weighted regions.
		{"nesting/priority of performance", `{"name":"p",` + noSticky + `,"route":{"method":"priority","targets":[
			{"route":{"method":"performance","targets":[{"region":"ap-south"}]}},
			{"route":{"method":"weighted","targets":[{"region":"eu-west","weight":1}]}}]}}`,
			nil, "dublin-eir", 3, "bom-1,sin-1,dub-2"}, // Mumbai is nearer Dublin than Singapore
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.policy(t, tc.policy)
			if tc.setup != nil {
				tc.setup(t, w)
			}
			got, d := w.route(t, tc.client, tc.n)
			if len(got) == 0 {
				t.Fatalf("Route(%s) = no edges (origin %q)", tc.client, d.Origin)
			}
			if tc.want != "" && !strings.HasPrefix(strings.Join(got, ","), tc.want) {
				t.Errorf("Route(%s) = %v, want %s first", tc.client, got, tc.want)
			}
		})
	}
}

const geoPolicy = `{"name":"p",` + noSticky + `,"route":{"method":"geographic","targets":[
	{"match":["IE"],"route":{"method":"weighted","targets":[{"edge":"dub-2","weight":1000},{"edge":"dub-1","weight":1}]}},
	{"match":["us-east"],"route":{"method":"performance","targets":[{"region":"us-east"}]}},
	{"match":["*"],"route":{"method":"priority","targets":[{"edge":"sin-1"},{"edge":"bom-1"}]}}]}}`

const subnetPolicy = `{"name":"p",` + noSticky + `,"route":{"method":"subnet","targets":[
	{"cidrs":["203.0.113.128/25"],"edge":"nyc-2"},
	{"cidrs":["203.0.113.0/24"],"edge":"sin-1"},
	{"cidrs":["2001:db8::/32"],"edge":"bom-1"},
	{"cidrs":["0.0.0.0/0","::/0"],"edge":"dub-1"}]}}`

func drain(t testing.TB, w *world, id string) {
	t.Helper()
	if err := w.m.Drain(context.Background(), id, true, "test"); err != nil {
		t.Fatal(err)
	}
}

func TestWeightedShares(t *testing.T) {
	w := newWorld(t)
	w.policy(t, `{"name":"p",`+noSticky+`,"route":{"method":"weighted","targets":[{"edge":"dub-1","weight":3},{"edge":"nyc-1","weight":1}]}}`)
	counts := map[string]int{}
	const n = 8000
	for i := range n {
		c := fmt.Sprintf("10.%d.%d.1", i/256, i%256) // one client per /24
		got, _ := w.route(t, c, 1)
		again, _ := w.route(t, c, 1)
		if got[0] != again[0] {
			t.Fatalf("client %s: %v then %v; weighted choice must be stable per prefix", c, got, again)
		}
		counts[got[0]]++
	}
	share := float64(counts["dub-1"]) / n
	if math.Abs(share-0.75) > 0.03 {
		t.Errorf("dub-1 share = %.3f, want 0.75±0.03 (counts %v)", share, counts)
	}
	// Taking nyc-1 away moves only its own prefixes.
	drain(t, w, "nyc-1")
	for i := range 200 {
		got, _ := w.route(t, fmt.Sprintf("10.%d.%d.1", i/256, i%256), 1)
		if got[0] != "dub-1" {
			t.Fatalf("with nyc-1 drained got %v", got)
		}
	}
}

func TestBusinessRules(t *testing.T) {
	tests := []struct {
		name   string
		policy string
		setup  func(t testing.TB, w *world)
		client string
		want   string
		at     time.Time
	}{
		{"load ceiling skips a busy edge", `{"name":"p",` + noSticky + `}`,
			func(t testing.TB, w *world) {
				w.update(t, "dub-2", func(e *traffic.Edge) { e.Load.EgressBps = 9.5e9 })
			}, "dublin-eir", "dub-1", at10},
		{"load ceiling counts connections and CPU", `{"name":"p",` + noSticky + `}`,
			func(t testing.TB, w *world) {
				w.update(t, "dub-2", func(e *traffic.Edge) { e.Load.CPU = 0.97 })
			}, "dublin-eir", "dub-1", at10},
		{"load ceiling is per policy", `{"name":"p","rules":{"sticky_seconds":0,"load_ceiling":0.99}}`,
			func(t testing.TB, w *world) {
				w.update(t, "dub-2", func(e *traffic.Edge) { e.Load.EgressBps = 9.5e9 })
			}, "dublin-eir", "dub-2", at10},
		{"peering preferred over cost", `{"name":"p",` + noSticky + `}`, nil, "dublin-eir", "dub-2", at10},
		{"peering preference off", `{"name":"p","rules":{"sticky_seconds":0,"prefer_peering":false}}`, nil, "dublin-eir", "dub-1", at10},
		{"lowest cost at equal quality", `{"name":"p",` + noSticky + `}`, nil, "cork-global", "dub-1", at10},
		{"cost varies by time of day (off peak)", `{"name":"p",` + noSticky + `}`, nil, "newyork-v6", "nyc-1", at10},
		{"cost varies by time of day (peak)", `{"name":"p",` + noSticky + `}`, nil, "newyork-v6", "nyc-2", at10.Add(5 * time.Hour)},
		{"overloaded edge gets no new clients", `{"name":"p",` + noSticky + `}`,
			func(t testing.TB, w *world) {
				w.update(t, "dub-2", func(e *traffic.Edge) { e.Load.Overloaded = true })
			}, "dublin-eir", "dub-1", at10},
		{"flagged edge gets no new clients", `{"name":"p",` + noSticky + `}`,
			func(t testing.TB, w *world) { drain(t, w, "dub-2") }, "dublin-eir", "dub-1", at10},
		{"overload sends clients to the next nearest region", `{"name":"p",` + noSticky + `}`,
			func(t testing.TB, w *world) {
				drain(t, w, "dub-1")
				w.update(t, "dub-2", func(e *traffic.Edge) { e.Load.Overloaded = true })
			}, "dublin-eir", "nyc-1", at10},
		{"minority down vote is ignored", `{"name":"p",` + noSticky + `}`,
			func(t testing.TB, w *world) {
				vote(t, w, "dub-2", "a", false)
				vote(t, w, "dub-2", "b", true)
			}, "dublin-eir", "dub-2", at10},
		{"majority down vote fails the edge", `{"name":"p",` + noSticky + `}`,
			func(t testing.TB, w *world) {
				vote(t, w, "dub-2", "a", false)
				vote(t, w, "dub-2", "b", false)
				vote(t, w, "dub-2", "c", true)
			}, "dublin-eir", "dub-1", at10},
		{"stale votes do not count", `{"name":"p",` + noSticky + `}`,
			func(t testing.TB, w *world) {
				vote(t, w, "dub-2", "a", false)
				w.clk.add(31 * time.Second) // past VoteTTL (3×10s)
				for _, id := range []string{"dub-1", "dub-2", "nyc-1"} {
					w.update(t, id, func(*traffic.Edge) {})
				}
			}, "dublin-eir", "dub-2", at10},
		{"missed heartbeats fail the edge", `{"name":"p",` + noSticky + `}`,
			func(t testing.TB, w *world) {
				w.clk.add(31 * time.Second) // past HeartbeatTimeout
				for _, id := range []string{"dub-1", "nyc-1"} {
					w.update(t, id, func(*traffic.Edge) {})
				}
			}, "dublin-eir", "dub-1", at10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t)
			w.clk.set(tc.at)
			for _, e := range traffictest.Edges() {
				w.update(t, e.ID, func(*traffic.Edge) {})
			}
			w.policy(t, tc.policy)
			if tc.setup != nil {
				tc.setup(t, w)
			}
			got, _ := w.route(t, tc.client, 1)
			if len(got) == 0 || got[0] != tc.want {
				t.Errorf("Route(%s) = %v, want %s", tc.client, got, tc.want)
			}
		})
	}
}

func vote(t testing.TB, w *world, edge, prober string, healthy bool) {
	t.Helper()
	if err := w.store.PutVote(context.Background(), traffic.Vote{Edge: edge, Prober: prober, Healthy: healthy, At: w.clk.now()}); err != nil {
		t.Fatal(err)
	}
	if err := w.m.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestStickyPrefix(t *testing.T) {
	w := newWorld(t)
	w.policy(t, `{"name":"p","rules":{"sticky_seconds":600,"prefix_v4":25}}`)
	first, _ := w.route(t, "dublin-eir", 1)
	if first[0] != "dub-2" {
		t.Fatalf("first answer %v, want dub-2 (peering)", first)
	}
	// dub-2 stops peering: dub-1 is now better, but the prefix stays on
	// the warm cache while dub-2 is healthy — also for a neighbour in the
	// same /24.
	w.update(t, "dub-2", func(e *traffic.Edge) { e.Peers = nil })
	for _, c := range []string{"dublin-eir", "203.0.113.99"} {
		if got, _ := w.route(t, c, 1); got[0] != "dub-2" {
			t.Errorf("Route(%s) after ranking change = %v, want sticky dub-2", c, got)
		}
	}
	// A fresh prefix (the other /25) gets the new best.
	w.update(t, "dub-1", func(*traffic.Edge) {})
	if got, _ := w.route(t, "cork-global", 1); got[0] != "dub-1" {
		t.Errorf("fresh prefix = %v, want dub-1", got)
	}
	// Once dub-2 is drained the prefix moves, and stays moved after it
	// returns.
	drain(t, w, "dub-2")
	if got, _ := w.route(t, "dublin-eir", 1); got[0] != "dub-1" {
		t.Errorf("after drain = %v, want dub-1", got)
	}
	if err := w.m.Drain(context.Background(), "dub-2", false, ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := w.route(t, "dublin-eir", 1); got[0] != "dub-1" {
		t.Errorf("after undrain = %v, want to stay on dub-1", got)
	}
	// Expiry: after the sticky lifetime the prefix is routed afresh.
	w.clk.add(11 * time.Minute)
	w.update(t, "dub-2", func(e *traffic.Edge) { e.Peers = []string{traffictest.Eir} })
	for _, e := range []string{"dub-1", "nyc-1"} {
		w.update(t, e, func(*traffic.Edge) {})
	}
	if got, _ := w.route(t, "dublin-eir", 1); got[0] != "dub-2" {
		t.Errorf("after the sticky binding expired = %v, want dub-2 (peering again)", got)
	}
}

func TestNothingHealthy(t *testing.T) {
	ctx := context.Background()
	w := newWorld(t)
	w.policy(t, `{"name":"p","origin":"https://origin.example.net/base/"}`)
	for id := range w.edges {
		drain(t, w, id)
	}
	d, err := w.m.Route(ctx, traffic.Query{Property: "p", Path: "/f.bin", Client: traffictest.Clients["dublin-eir"]})
	if err != nil || d.Origin != "https://origin.example.net/base/f.bin" || len(d.Edges) != 0 {
		t.Errorf("Route = %+v, %v; want the origin", d, err)
	}
	w.policy(t, `{"name":"p"}`)
	if _, err := w.m.Route(ctx, traffic.Query{Property: "p", Client: traffictest.Clients["dublin-eir"]}); !errors.Is(err, traffic.ErrNoEdge) {
		t.Errorf("Route without origin = %v, want ErrNoEdge", err)
	}
	if _, err := w.m.Route(ctx, traffic.Query{Property: "nope", Client: traffictest.Clients["dublin-eir"]}); !errors.Is(err, traffic.ErrUnknownProperty) {
		t.Errorf("Route of unknown property = %v, want ErrUnknownProperty", err)
	}
}

func TestAnswerURLs(t *testing.T) {
	w := newWorld(t)
	w.policy(t, `{"name":"p",`+noSticky+`,"route":{"method":"priority","targets":[{"edge":"bom-1"}]}}`)
	_, d := w.route(t, "dublin-eir", 1)
	e := d.Edges[0]
	if e.URL != "http://127.0.1.6:8080/p/f.bin" || len(e.Addrs) != 2 || d.TTLSeconds != 20 {
		t.Errorf("answer = %+v (ttl %d)", e, d.TTLSeconds)
	}
	if d.ScopeBits != 25 { // the map's /25 is longer than the /24 hashing prefix
		t.Errorf("ScopeBits = %d, want 25", d.ScopeBits)
	}
}
