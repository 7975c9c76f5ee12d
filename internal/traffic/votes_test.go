package traffic_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"avalanche/internal/netmap"
	"avalanche/internal/traffic"
	"avalanche/internal/traffic/traffictest"
)

// partition is a probe transport that fails every request to one host
// while cut is set, as when a control node loses its path to an edge that
// others still reach.
type partition struct {
	host string
	cut  atomic.Bool
}

var errPartitioned = errors.New("partitioned")

func (p *partition) RoundTrip(r *http.Request) (*http.Response, error) {
	if p.cut.Load() && r.URL.Host == p.host {
		return nil, errPartitioned
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestVotesAcrossNodes runs three control nodes probing real edges and
// sharing one store. One node cut off from dub-2 votes it down, but the
// edge stays in service everywhere; once a second node loses it too,
// every node stops using it; when the paths heal it comes back.
func TestVotesAcrossNodes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	edges, srvs, err := traffictest.StartEdges(traffictest.Edges()[:2])
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, s := range srvs {
			s.Kill()
		}
	}()
	u, _ := url.Parse(edges[1].URL)
	store := traffic.NewMemStore()
	var nodes []*traffic.Manager
	var cuts []*partition
	for _, id := range []string{"a", "b", "c"} {
		pt := &partition{host: u.Host}
		m, err := traffic.New(ctx, traffic.Config{
			Store: store, Map: traffictest.Map(), NodeID: id,
			ProbeInterval: 100 * time.Millisecond, SyncInterval: 50 * time.Millisecond,
			HTTPClient: &http.Client{Transport: pt, Timeout: 100 * time.Millisecond},
		})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		defer func() { cancel(); <-done }()
		nodes, cuts = append(nodes, m), append(cuts, pt)
	}
	if err := traffictest.Register(ctx, nodes[0], edges); err != nil {
		t.Fatal(err)
	}
	p, _ := traffic.ParsePolicy([]byte(`{"name":"p","rules":{"sticky_seconds":0},"route":{"method":"priority","targets":[{"edge":"dub-2"},{"edge":"dub-1"}]}}`))
	if err := nodes[0].PutPolicy(ctx, p); err != nil {
		t.Fatal(err)
	}
	// first returns the edge every node answers, or "" when they differ.
	first := func() string {
		var got string
		for i, m := range nodes {
			d, err := m.Route(ctx, traffic.Query{Property: "p", Client: traffictest.Clients["dublin-eir"]})
			if err != nil {
				t.Fatal(err)
			}
			if i > 0 && d.Edges[0].ID != got {
				return ""
			}
			got = d.Edges[0].ID
		}
		return got
	}
	// votes returns dub-2's vote counts as node a sees them.
	votes := func() (up, down int) {
		for _, st := range nodes[0].Edges() {
			if st.ID == "dub-2" {
				return st.VotesUp, st.VotesDown
			}
		}
		return 0, 0
	}
	waitUntil(t, 10*time.Second, func() bool { up, _ := votes(); return up == 3 && first() == "dub-2" })

	cuts[0].cut.Store(true)
	waitUntil(t, 10*time.Second, func() bool { up, down := votes(); return up == 2 && down == 1 })
	for range 20 { // a minority down vote, held for a while, changes nothing
		if got := first(); got != "dub-2" {
			t.Fatalf("with 1 of 3 probers voting dub-2 down, nodes answer %q, want dub-2 everywhere", got)
		}
		time.Sleep(10 * time.Millisecond)
	}

	cuts[1].cut.Store(true)
	waitUntil(t, 10*time.Second, func() bool { return first() == "dub-1" })
	if up, down := votes(); up != 1 || down != 2 {
		t.Errorf("votes for dub-2 = %d up, %d down; want 1, 2", up, down)
	}
	for _, st := range nodes[2].Edges() {
		if st.ID == "dub-2" && st.Status != "down" {
			t.Errorf("node c reports dub-2 as %q, want down", st.Status)
		}
	}

	cuts[0].cut.Store(false)
	cuts[1].cut.Store(false)
	waitUntil(t, 10*time.Second, func() bool { return first() == "dub-2" })
}

// TestNetmapReloadReroutes: a Manager placing clients with a
// netmap.Watcher routes by the new map as soon as the file is reloaded,
// without a restart.
func TestNetmapReloadReroutes(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "map.csv")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("198.51.100.0/24,AtlantiCom,AS64510,us-east,US,40.71,-74.00\n")
	wt, err := netmap.NewWatcher(netmap.WatcherConfig{Files: []string{path}})
	if err != nil {
		t.Fatal(err)
	}
	m, err := traffic.New(ctx, traffic.Config{Map: wt, DisableProbes: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := traffictest.Register(ctx, m, traffictest.Edges()); err != nil {
		t.Fatal(err)
	}
	if err := m.PutPolicy(ctx, &traffic.Policy{Name: "p", Rules: traffic.Rules{StickySeconds: new(int)}}); err != nil {
		t.Fatal(err)
	}
	route := func() string {
		d, err := m.Route(ctx, traffic.Query{Property: "p", Client: traffictest.Clients["newyork-atl"]})
		if err != nil {
			t.Fatal(err)
		}
		return d.Edges[0].ID
	}
	if got := route(); got != "nyc-1" {
		t.Fatalf("before reload: %s, want nyc-1", got)
	}
	// The prefix moves to Singapore on LionNet.
	write("198.51.100.0/24,LionNet,AS64520,ap-south,SG,1.35,103.82\n")
	if err := wt.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := route(); got != "sin-1" {
		t.Errorf("after reload: %s, want sin-1", got)
	}
}
