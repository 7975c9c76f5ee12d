package tracker_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"avalanche/internal/identity"
	"avalanche/internal/tracker"
)

// TestHandoutShares checks the locality bias in a world of four ISPs of 40
// peers, two per region: every Alpha peer gets 18 Alpha peers (60 %), at
// least 6 Beta peers (its region, 20 %) and 6 drawn from the whole swarm,
// which over all requesters reach the other region too.
func TestHandoutShares(t *testing.T) {
	w := newWorld(t, nil)
	w.infra()
	byISP := map[int][]*node{}
	for _, i := range []int{alpha, beta, gamma, delta} {
		byISP[i] = w.populate(i, 40)
	}
	total := map[int]int{}
	seen := map[identity.ID]bool{}
	subsets := map[string]bool{}
	for _, n := range byISP[alpha] {
		resp := n.mustAnnounce(tracker.AnnounceRequest{Left: 100})
		peers, infra := split(resp.Peers)
		if len(peers) != 30 {
			t.Fatalf("hand-out has %d peers, want 30", len(peers))
		}
		count := map[int]int{}
		var key []string
		for _, p := range peers {
			if p.ID == n.id {
				t.Fatalf("requester handed itself")
			}
			count[isp(p)]++
			total[isp(p)]++
			seen[p.ID] = true
			key = append(key, p.ID.Short())
		}
		if count[alpha] < 18 {
			t.Errorf("same-ISP peers = %d, want at least 18 (60 %% of 30)", count[alpha])
		}
		if count[alpha]+count[beta] < 24 {
			t.Errorf("same-region peers = %d, want at least 24", count[alpha]+count[beta])
		}
		if count[beta] < 6 {
			t.Errorf("same-region other-ISP peers = %d, want at least 6", count[beta])
		}
		// The first 18 are the ISP tier, the next 6 the region tier.
		for i, p := range peers[:24] {
			if want := map[bool]int{true: alpha, false: beta}[i < 18]; isp(p) != want {
				t.Errorf("peer %d is in %s, want %s (tiers out of order)", i, ispName[isp(p)], ispName[want])
			}
		}
		if len(infra) != 3 || infra[0].ID != w.edges[0].id || infra[2].ID != w.origin.id {
			t.Errorf("infrastructure = %v, want [edge-eu edge-us origin]", infra)
		}
		slices.Sort(key)
		subsets[strings.Join(key, ",")] = true
	}
	all := 40 * 30
	t.Logf("shares over 40 Alpha requesters: Alpha %.2f Beta %.2f Gamma %.2f Delta %.2f; %d distinct peers handed out; %d distinct subsets",
		float64(total[alpha])/float64(all), float64(total[beta])/float64(all), float64(total[gamma])/float64(all), float64(total[delta])/float64(all), len(seen), len(subsets))
	if other := total[gamma] + total[delta]; other < all/20 {
		t.Errorf("other-region peers = %d of %d, want at least 5 %% (random share)", other, all)
	}
	if same := float64(total[alpha]) / float64(all); same < 0.6 || same > 0.8 {
		t.Errorf("same-ISP share = %.2f, want 0.6–0.8", same)
	}
	if len(subsets) != 40 {
		t.Errorf("40 requesters got %d distinct subsets, want 40", len(subsets))
	}
	if len(seen) < 120 {
		t.Errorf("hand-outs covered %d of 160 peers, want at least 120 (a well-mixed graph)", len(seen))
	}
}

// TestHandoutNeverIsolates: requesters whose ISP or region has nobody else,
// or whom the map does not know, still get full lists.
func TestHandoutNeverIsolates(t *testing.T) {
	w := newWorld(t, nil)
	w.infra()
	w.populate(alpha, 20)
	w.populate(gamma, 20)
	for _, tc := range []struct {
		name string
		ip   string
	}{
		{"alone in its ISP and region", peerAddr(lonely, 0)},
		{"unknown to the map", "203.0.113.7"},
		{"loopback", "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := w.peer(tc.ip).mustAnnounce(tracker.AnnounceRequest{Left: 1})
			peers, infra := split(resp.Peers)
			if len(peers) != 30 {
				t.Errorf("got %d peers, want 30", len(peers))
			}
			n := map[int]int{}
			for _, p := range peers {
				n[isp(p)]++
			}
			if n[alpha] == 0 || n[gamma] == 0 {
				t.Errorf("peers by ISP %v, want both regions represented", n)
			}
			if len(infra) != 3 {
				t.Errorf("got %d infrastructure nodes, want 3", len(infra))
			}
		})
	}
}

func TestHandoutSmallSwarm(t *testing.T) {
	w := newWorld(t, nil)
	w.infra()
	nodes := w.populate(alpha, 2)
	nodes = append(nodes, w.populate(gamma, 2)...)
	for i, n := range nodes {
		resp := n.mustAnnounce(tracker.AnnounceRequest{Left: 1})
		peers, infra := split(resp.Peers)
		if len(peers) != 3 || contains(peers, n.id) {
			t.Errorf("node %d: got %d peers (self included: %v), want the 3 others", i, len(peers), contains(peers, n.id))
		}
		if len(infra) != 3 {
			t.Errorf("node %d: got %d infrastructure nodes, want 3", i, len(infra))
		}
	}
}

// TestHandoutInfrastructure: origins and edges come on top of a full list,
// edges nearest first, and MaxEdges limits them.
func TestHandoutInfrastructure(t *testing.T) {
	for _, tc := range []struct {
		name     string
		maxEdges int
		from     int
		want     []string // expected infrastructure, in order
	}{
		{"default, Alpha", 0, alpha, []string{"edge-eu", "edge-us", "origin"}},
		{"default, Gamma", 0, gamma, []string{"edge-us", "edge-eu", "origin"}},
		{"default, Beta (same region as edge-eu)", 0, beta, []string{"edge-eu", "edge-us", "origin"}},
		{"one edge, Delta", 1, delta, []string{"edge-us", "origin"}},
		{"no edges", -1, alpha, []string{"origin"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, func(c *tracker.Config) { c.MaxEdges = tc.maxEdges })
			w.infra()
			names := map[identity.ID]string{w.origin.id: "origin", w.edges[0].id: "edge-eu", w.edges[1].id: "edge-us"}
			w.populate(tc.from, 10)
			resp := w.peer(peerAddr(tc.from, 100)).mustAnnounce(tracker.AnnounceRequest{Want: 5, Left: 1})
			peers, infra := split(resp.Peers)
			if len(peers) != 5 {
				t.Errorf("got %d peers, want 5", len(peers))
			}
			var got []string
			for _, p := range infra {
				got = append(got, names[p.ID])
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("infrastructure = %v, want %v", got, tc.want)
			}
			if resp.Peers[len(resp.Peers)-1].Role != tracker.RoleOrigin {
				t.Errorf("last entry is %s, want the origin", resp.Peers[len(resp.Peers)-1].Role)
			}
		})
	}
}

func TestHandoutSkipsUnconnectable(t *testing.T) {
	w := newWorld(t, nil)
	closed := w.peer(peerAddr(alpha, 0))
	closed.port = 0
	closed.mustAnnounce(tracker.AnnounceRequest{Left: 1})
	open := w.populate(alpha, 3)
	resp := open[0].mustAnnounce(tracker.AnnounceRequest{Left: 1})
	if contains(resp.Peers, closed.id) {
		t.Errorf("peer with port 0 handed out")
	}
	if len(resp.Peers) != 2 {
		t.Errorf("got %d peers, want 2", len(resp.Peers))
	}
	// It still gets peers itself and counts in the swarm.
	if resp := closed.mustAnnounce(tracker.AnnounceRequest{Left: 1}); len(resp.Peers) != 3 {
		t.Errorf("port-0 peer got %d peers, want 3", len(resp.Peers))
	}
	if st, _ := w.tr.SwarmStats(t.Context(), w.content); st.Size != 4 {
		t.Errorf("Size = %d, want 4", st.Size)
	}
}

func TestHandoutWantLimits(t *testing.T) {
	w := newWorld(t, func(c *tracker.Config) { c.MaxWant = 50; c.DefaultWant = 10 })
	w.populate(alpha, 80)
	me := w.peer(peerAddr(alpha, 200))
	for _, tc := range []struct{ want, got int }{{0, 10}, {1, 1}, {7, 7}, {50, 50}, {1000, 50}} {
		t.Run(fmt.Sprint(tc.want), func(t *testing.T) {
			if resp := me.mustAnnounce(tracker.AnnounceRequest{Want: tc.want, Left: 1}); len(resp.Peers) != tc.got {
				t.Errorf("want=%d: got %d peers, want %d", tc.want, len(resp.Peers), tc.got)
			}
		})
	}
}
