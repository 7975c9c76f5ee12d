// Package storetest is the conformance suite every tracker.Store must pass.
// A store's tests call Run with a constructor that returns a fresh, empty
// store for each subtest.
package storetest

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"avalanche/internal/identity"
	"avalanche/internal/manifest"
	"avalanche/internal/tracker"
)

// T0 is the suite's fake "now". Stores must take time only from their
// arguments.
var T0 = time.Unix(1_800_000_000, 0).UTC()

const ttl = 15 * time.Second

// Run runs the suite against the stores newStore returns.
func Run(t *testing.T, newStore func(t *testing.T) tracker.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s tracker.Store)
	}{
		{"AnnounceGet", testAnnounceGet},
		{"Stale", testStale},
		{"Stopped", testStopped},
		{"Expiry", testExpiry},
		{"SampleGroups", testSampleGroups},
		{"SampleIsRandom", testSampleIsRandom},
		{"Regroup", testRegroup},
		{"Ban", testBan},
		{"Report", testReport},
		{"Counters", testCounters},
		{"Swarms", testSwarms},
		{"SwarmsAreSeparate", testSwarmsAreSeparate},
		{"ConcurrentPeers", testConcurrentPeers},
		{"ConcurrentSamePeer", testConcurrentSamePeer},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newStore(t)) })
	}
}

// NewID returns a random node ID.
func NewID() identity.ID {
	var id identity.ID
	rand.Read(id[:])
	return id
}

// NewContent returns a random content ID.
func NewContent() manifest.ID {
	var id manifest.ID
	rand.Read(id[:])
	return id
}

var addrN atomic.Uint32

// peer returns a live record announced at now.
func peer(isp string, asn uint32, region string, now time.Time) tracker.Peer {
	n := addrN.Add(1)
	a := netip.AddrFrom4([4]byte{10, byte(n >> 16), byte(n >> 8), byte(n)})
	return tracker.Peer{
		ID:      NewID(),
		Addr:    netip.AddrPortFrom(a, 4000),
		Role:    tracker.RolePeer,
		ISP:     isp,
		ASN:     asn,
		Region:  region,
		Left:    1000,
		Bytes:   tracker.Bytes{Uploaded: 1, Downloaded: 2, FromOrigin: 3, FromEdge: 4, FromPeers: 5},
		Stamp:   now.UnixMicro(),
		Expires: now.Add(ttl),
		Keep:    now.Add(10 * time.Minute),
	}
}

// renew returns p announced again at now.
func renew(p tracker.Peer, now time.Time) tracker.Peer {
	p.Stamp = now.UnixMicro()
	p.Expires = now.Add(ttl)
	p.Keep = now.Add(10 * time.Minute)
	return p
}

func mustAnnounce(t *testing.T, s tracker.Store, c manifest.ID, p tracker.Peer, now time.Time) {
	t.Helper()
	if _, _, err := s.Announce(context.Background(), c, p, now); err != nil {
		t.Fatalf("Announce(%s) = %v", p.ID.Short(), err)
	}
}

func sample(t *testing.T, s tracker.Store, c manifest.ID, now time.Time, qs ...tracker.Query) [][]tracker.Peer {
	t.Helper()
	res, err := s.Sample(context.Background(), c, now, qs)
	if err != nil {
		t.Fatalf("Sample = %v", err)
	}
	if len(res) != len(qs) {
		t.Fatalf("Sample returned %d results for %d queries", len(res), len(qs))
	}
	return res
}

func ids(ps []tracker.Peer) []identity.ID {
	out := make([]identity.ID, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

func sameRecord(a, b tracker.Peer) error {
	switch {
	case a.ID != b.ID:
		return fmt.Errorf("ID %s, want %s", a.ID.Short(), b.ID.Short())
	case a.Addr != b.Addr:
		return fmt.Errorf("Addr %v, want %v", a.Addr, b.Addr)
	case a.Role != b.Role || a.ISP != b.ISP || a.ASN != b.ASN || a.Region != b.Region:
		return fmt.Errorf("role/location %s %s %d %s, want %s %s %d %s", a.Role, a.ISP, a.ASN, a.Region, b.Role, b.ISP, b.ASN, b.Region)
	case a.Left != b.Left || a.Bytes != b.Bytes:
		return fmt.Errorf("left/bytes %d %+v, want %d %+v", a.Left, a.Bytes, b.Left, b.Bytes)
	case a.Stamp != b.Stamp || a.Stopped != b.Stopped:
		return fmt.Errorf("stamp/stopped %d %v, want %d %v", a.Stamp, a.Stopped, b.Stamp, b.Stopped)
	case !a.Expires.Equal(b.Expires):
		return fmt.Errorf("Expires %v, want %v", a.Expires, b.Expires)
	}
	return nil
}

func testAnnounceGet(t *testing.T, s tracker.Store) {
	ctx := context.Background()
	c := NewContent()
	p := peer("Alpha", 64500, "eu", T0)
	_, found, err := s.Announce(ctx, c, p, T0)
	if err != nil || found {
		t.Fatalf("first Announce = found %v, %v; want false, nil", found, err)
	}
	got, found, err := s.Get(ctx, c, p.ID)
	if err != nil || !found {
		t.Fatalf("Get = found %v, %v; want true, nil", found, err)
	}
	if err := sameRecord(got, p); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if !got.Live(T0) {
		t.Fatalf("Get: record not live at T0")
	}

	q := renew(p, T0.Add(time.Second))
	q.Left, q.Bytes.FromPeers = 0, 99
	prev, found, err := s.Announce(ctx, c, q, T0.Add(time.Second))
	if err != nil || !found {
		t.Fatalf("second Announce = found %v, %v; want true, nil", found, err)
	}
	if err := sameRecord(prev, p); err != nil {
		t.Fatalf("second Announce returned previous record: %v", err)
	}
	got, _, _ = s.Get(ctx, c, p.ID)
	if err := sameRecord(got, q); err != nil {
		t.Fatalf("Get after second Announce: %v", err)
	}
	if _, found, err := s.Get(ctx, c, NewID()); found || err != nil {
		t.Fatalf("Get(unknown) = found %v, %v; want false, nil", found, err)
	}
	if _, found, err := s.Get(ctx, NewContent(), p.ID); found || err != nil {
		t.Fatalf("Get(unknown swarm) = found %v, %v; want false, nil", found, err)
	}
}

func testStale(t *testing.T, s tracker.Store) {
	ctx := context.Background()
	c := NewContent()
	p := peer("Alpha", 0, "eu", T0)
	mustAnnounce(t, s, c, p, T0)
	for _, tc := range []struct {
		name  string
		stamp int64
	}{
		{"equal", p.Stamp},
		{"older", p.Stamp - 1},
		{"much older", p.Stamp - int64(time.Hour/time.Microsecond)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := p
			q.Stamp = tc.stamp
			q.Left = 7
			if _, _, err := s.Announce(ctx, c, q, T0); !errors.Is(err, tracker.ErrStale) {
				t.Fatalf("Announce(stamp %d after %d) = %v, want ErrStale", tc.stamp, p.Stamp, err)
			}
			got, _, _ := s.Get(ctx, c, p.ID)
			if got.Left != p.Left {
				t.Fatalf("stale announce changed the record: Left %d, want %d", got.Left, p.Left)
			}
		})
	}
	q := p
	q.Stamp++
	if _, _, err := s.Announce(ctx, c, q, T0); err != nil {
		t.Fatalf("Announce(stamp+1µs) = %v, want nil", err)
	}
}

func testStopped(t *testing.T, s tracker.Store) {
	ctx := context.Background()
	c := NewContent()
	p := peer("Alpha", 0, "eu", T0)
	mustAnnounce(t, s, c, p, T0)
	t1 := T0.Add(time.Second)
	stop := renew(p, t1)
	stop.Stopped = true
	mustAnnounce(t, s, c, stop, t1)

	got, found, _ := s.Get(ctx, c, p.ID)
	if !found || !got.Stopped || got.Live(t1) {
		t.Fatalf("Get after stop = found %v, stopped %v, live %v; want true, true, false", found, got.Stopped, got.Live(t1))
	}
	for _, r := range sample(t, s, c, t1, tracker.Query{Group: tracker.GroupPool, N: 10}, tracker.Query{Group: tracker.ISPGroup("Alpha"), N: 10}) {
		if len(r) != 0 {
			t.Fatalf("stopped peer sampled: %v", ids(r))
		}
	}
	st, _ := s.Swarm(ctx, c, t1)
	if st.Size != 0 {
		t.Fatalf("Swarm.Size after stop = %d, want 0", st.Size)
	}
	// A replay of the earlier announce stays refused.
	if _, _, err := s.Announce(ctx, c, p, t1); !errors.Is(err, tracker.ErrStale) {
		t.Fatalf("replayed announce after stop = %v, want ErrStale", err)
	}
	// A new announce brings the peer back.
	t2 := t1.Add(time.Second)
	mustAnnounce(t, s, c, renew(p, t2), t2)
	if r := sample(t, s, c, t2, tracker.Query{Group: tracker.GroupPool, N: 10}); len(r[0]) != 1 {
		t.Fatalf("rejoined peer: sampled %d, want 1", len(r[0]))
	}
}

func testExpiry(t *testing.T, s tracker.Store) {
	ctx := context.Background()
	c := NewContent()
	old := peer("Alpha", 0, "eu", T0)
	mustAnnounce(t, s, c, old, T0)
	t1 := T0.Add(ttl / 2)
	fresh := peer("Alpha", 0, "eu", t1)
	mustAnnounce(t, s, c, fresh, t1)

	for _, tc := range []struct {
		name string
		now  time.Time
		want []identity.ID
	}{
		{"both live", T0.Add(ttl - time.Millisecond), []identity.ID{old.ID, fresh.ID}},
		{"first expired", T0.Add(ttl), []identity.ID{fresh.ID}},
		{"both expired", t1.Add(ttl), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := ids(sample(t, s, c, tc.now, tracker.Query{Group: tracker.GroupPool, N: 10})[0])
			slices.SortFunc(got, cmpID)
			want := slices.SortedFunc(slices.Values(tc.want), cmpID)
			if !slices.Equal(got, want) {
				t.Fatalf("Sample at %v = %d peers, want %d", tc.now.Sub(T0), len(got), len(want))
			}
			st, err := s.Swarm(ctx, c, tc.now)
			if err != nil || st.Size != len(tc.want) {
				t.Fatalf("Swarm.Size = %d, %v; want %d", st.Size, err, len(tc.want))
			}
		})
	}
	// An expired peer that announces again is live again, and its old
	// record is still there to be replaced.
	t2 := t1.Add(ttl + time.Second)
	_, found, err := s.Announce(ctx, c, renew(old, t2), t2)
	if err != nil || !found {
		t.Fatalf("re-announce after expiry = found %v, %v; want true, nil", found, err)
	}
	if got := sample(t, s, c, t2, tracker.Query{Group: tracker.GroupPool, N: 10})[0]; len(got) != 1 || got[0].ID != old.ID {
		t.Fatalf("after re-announce sampled %v, want [%s]", ids(got), old.ID.Short())
	}
}

func cmpID(a, b identity.ID) int { return slices.Compare(a[:], b[:]) }

func testSampleGroups(t *testing.T, s tracker.Store) {
	c := NewContent()
	type spec struct {
		isp    string
		asn    uint32
		region string
		n      int
	}
	world := []spec{{"Alpha", 64501, "eu", 7}, {"Beta", 0, "eu", 5}, {"Gamma", 64503, "us", 4}, {"", 0, "", 3}}
	members := map[tracker.Group]map[identity.ID]bool{}
	add := func(g tracker.Group, id identity.ID) {
		if members[g] == nil {
			members[g] = map[identity.ID]bool{}
		}
		members[g][id] = true
	}
	for _, w := range world {
		for range w.n {
			p := peer(w.isp, w.asn, w.region, T0)
			mustAnnounce(t, s, c, p, T0)
			for _, g := range p.Groups() {
				add(g, p.ID)
			}
		}
	}
	// Peers that must be in no pool group.
	closed := peer("Alpha", 64501, "eu", T0)
	closed.Addr = netip.AddrPortFrom(closed.Addr.Addr(), 0)
	mustAnnounce(t, s, c, closed, T0)
	for _, role := range []tracker.Role{tracker.RoleOrigin, tracker.RoleEdge, tracker.RoleEdge} {
		p := peer("Alpha", 64501, "eu", T0)
		p.Role, p.Left = role, 0
		mustAnnounce(t, s, c, p, T0)
		add(tracker.GroupInfra, p.ID)
	}
	if len(members[tracker.ISPGroup("AS64501")]) != 7 || len(members[tracker.ISPGroup("Beta")]) != 5 || len(members[tracker.RegionGroup("eu")]) != 12 || len(members[tracker.GroupPool]) != 19 {
		t.Fatalf("test world built wrong: %d %d %d %d", len(members[tracker.ISPGroup("AS64501")]), len(members[tracker.ISPGroup("Beta")]), len(members[tracker.RegionGroup("eu")]), len(members[tracker.GroupPool]))
	}

	for _, tc := range []struct {
		g    tracker.Group
		n    int
		want int
	}{
		{tracker.GroupPool, 100, 19},
		{tracker.GroupPool, 5, 5},
		{tracker.ISPGroup("AS64501"), 100, 7},
		{tracker.ISPGroup("AS64501"), 3, 3},
		{tracker.ISPGroup("Beta"), 100, 5},
		{tracker.ISPGroup("Alpha"), 100, 0}, // Alpha is keyed by its ASN
		{tracker.RegionGroup("eu"), 100, 12},
		{tracker.RegionGroup("us"), 2, 2},
		{tracker.RegionGroup("mars"), 10, 0},
		{tracker.GroupInfra, 100, 3},
		{tracker.GroupPool, 0, 0},
	} {
		t.Run(fmt.Sprintf("%s/%d", tc.g, tc.n), func(t *testing.T) {
			got := sample(t, s, c, T0, tracker.Query{Group: tc.g, N: tc.n})[0]
			if len(got) != tc.want {
				t.Fatalf("Sample(%s, %d) = %d peers, want %d", tc.g, tc.n, len(got), tc.want)
			}
			seen := map[identity.ID]bool{}
			for _, p := range got {
				if seen[p.ID] {
					t.Fatalf("Sample(%s) returned %s twice", tc.g, p.ID.Short())
				}
				seen[p.ID] = true
				if !members[tc.g][p.ID] {
					t.Fatalf("Sample(%s) returned %s (%s/%s/%s), not a member", tc.g, p.ID.Short(), p.Role, p.ISPKey(), p.Region)
				}
			}
		})
	}
	t.Run("several queries", func(t *testing.T) {
		res := sample(t, s, c, T0, tracker.Query{Group: tracker.ISPGroup("Beta"), N: 2}, tracker.Query{Group: tracker.GroupInfra, N: 10}, tracker.Query{Group: tracker.RegionGroup("us"), N: 10})
		if len(res[0]) != 2 || len(res[1]) != 3 || len(res[2]) != 4 {
			t.Fatalf("Sample sizes = %d %d %d, want 2 3 4", len(res[0]), len(res[1]), len(res[2]))
		}
	})
	t.Run("unknown swarm", func(t *testing.T) {
		if got := sample(t, s, NewContent(), T0, tracker.Query{Group: tracker.GroupPool, N: 10})[0]; len(got) != 0 {
			t.Fatalf("Sample(unknown swarm) = %d peers, want 0", len(got))
		}
	})
}

func testSampleIsRandom(t *testing.T, s tracker.Store) {
	c := NewContent()
	const n = 60
	for range n {
		mustAnnounce(t, s, c, peer("Alpha", 0, "eu", T0), T0)
	}
	seen := map[identity.ID]int{}
	const rounds = 40
	for range rounds {
		for _, p := range sample(t, s, c, T0, tracker.Query{Group: tracker.GroupPool, N: 6})[0] {
			seen[p.ID]++
		}
	}
	// 240 draws from 60 peers: a uniform sampler misses almost none.
	if len(seen) < n*3/4 {
		t.Fatalf("40 samples of 6 from %d peers covered %d distinct peers, want at least %d", n, len(seen), n*3/4)
	}
}

func testRegroup(t *testing.T, s tracker.Store) {
	c := NewContent()
	p := peer("Alpha", 0, "eu", T0)
	mustAnnounce(t, s, c, p, T0)
	t1 := T0.Add(time.Second)
	q := renew(p, t1)
	q.ISP, q.Region = "Beta", "us"
	mustAnnounce(t, s, c, q, t1)
	res := sample(t, s, c, t1,
		tracker.Query{Group: tracker.ISPGroup("Alpha"), N: 10},
		tracker.Query{Group: tracker.RegionGroup("eu"), N: 10},
		tracker.Query{Group: tracker.ISPGroup("Beta"), N: 10},
		tracker.Query{Group: tracker.RegionGroup("us"), N: 10})
	if len(res[0])+len(res[1]) != 0 || len(res[2]) != 1 || len(res[3]) != 1 {
		t.Fatalf("after moving from Alpha/eu to Beta/us: groups hold %d %d %d %d, want 0 0 1 1", len(res[0]), len(res[1]), len(res[2]), len(res[3]))
	}
	// A node that stops accepting connections leaves the pool.
	t2 := t1.Add(time.Second)
	r := renew(q, t2)
	r.Addr = netip.AddrPortFrom(r.Addr.Addr(), 0)
	mustAnnounce(t, s, c, r, t2)
	if got := sample(t, s, c, t2, tracker.Query{Group: tracker.GroupPool, N: 10})[0]; len(got) != 0 {
		t.Fatalf("peer with port 0 still sampled")
	}
	st, _ := s.Swarm(context.Background(), c, t2)
	if st.Size != 1 {
		t.Fatalf("Swarm.Size = %d, want 1 (port-0 peers count)", st.Size)
	}
}

func testBan(t *testing.T, s tracker.Store) {
	ctx := context.Background()
	c := NewContent()
	bad, good := peer("Alpha", 0, "eu", T0), peer("Alpha", 0, "eu", T0)
	mustAnnounce(t, s, c, bad, T0)
	mustAnnounce(t, s, c, good, T0)
	until := T0.Add(time.Hour)
	if err := s.Ban(ctx, c, bad.ID, until, T0); err != nil {
		t.Fatalf("Ban = %v", err)
	}
	t1 := T0.Add(time.Second)
	if got := ids(sample(t, s, c, t1, tracker.Query{Group: tracker.GroupPool, N: 10})[0]); !slices.Equal(got, []identity.ID{good.ID}) {
		t.Fatalf("after ban sampled %d peers, want only the good one", len(got))
	}
	if _, _, err := s.Announce(ctx, c, renew(bad, t1), t1); !errors.Is(err, tracker.ErrBanned) {
		t.Fatalf("Announce(banned) = %v, want ErrBanned", err)
	}
	if p, _, _ := s.Get(ctx, c, bad.ID); p.Live(t1) {
		t.Fatalf("banned peer's record is live")
	}
	st, _ := s.Swarm(ctx, c, t1)
	if st.Banned != 1 || st.Size != 1 {
		t.Fatalf("Swarm = banned %d size %d, want 1 1", st.Banned, st.Size)
	}
	// The ban is per swarm.
	other := NewContent()
	if _, _, err := s.Announce(ctx, other, renew(bad, t1), t1); err != nil {
		t.Fatalf("Announce(banned peer, other swarm) = %v, want nil", err)
	}
	// Bans end.
	if _, _, err := s.Announce(ctx, c, renew(bad, until), until); err != nil {
		t.Fatalf("Announce after the ban ended = %v, want nil", err)
	}
}

func testReport(t *testing.T, s tracker.Store) {
	ctx := context.Background()
	c := NewContent()
	off, r1, r2, edge := NewID(), NewID(), NewID(), NewID()
	until := T0.Add(time.Hour)
	steps := []struct {
		name     string
		reporter identity.ID
		infra    bool
		want     tracker.Tally
	}{
		{"first", r1, false, tracker.Tally{Peers: 1}},
		{"same again", r1, false, tracker.Tally{Peers: 1}},
		{"second reporter", r2, false, tracker.Tally{Peers: 2}},
		{"edge", edge, true, tracker.Tally{Peers: 2, Infra: 1}},
	}
	for _, st := range steps {
		got, err := s.Report(ctx, c, off, st.reporter, st.infra, until, T0)
		if err != nil || got != st.want {
			t.Fatalf("%s: Report = %+v, %v; want %+v", st.name, got, err, st.want)
		}
	}
	for _, tc := range []struct {
		name     string
		reporter identity.ID
		now      time.Time
		want     int
	}{
		{"reporter", r1, T0, 1},
		{"edge", edge, T0, 1},
		{"bystander", NewID(), T0, 0},
		{"expired", r1, until, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Excluded(ctx, c, tc.reporter, tc.now)
			if err != nil || len(got) != tc.want || (tc.want == 1 && got[0] != off) {
				t.Fatalf("Excluded = %d ids, %v; want %d", len(got), err, tc.want)
			}
		})
	}
	if got, _ := s.Excluded(ctx, NewContent(), r1, T0); len(got) != 0 {
		t.Fatalf("Excluded in another swarm = %d ids, want 0", len(got))
	}
	// Reports expire: a new report after until counts alone.
	later := until.Add(time.Second)
	got, err := s.Report(ctx, c, off, r2, false, later.Add(time.Hour), later)
	if err != nil || got != (tracker.Tally{Peers: 1}) {
		t.Fatalf("Report after earlier reports expired = %+v, %v; want {Peers:1}", got, err)
	}
}

func testCounters(t *testing.T, s tracker.Store) {
	ctx := context.Background()
	c := NewContent()
	d := tracker.Delta{Bytes: tracker.Bytes{Uploaded: 1, Downloaded: 2, FromOrigin: 3, FromEdge: 4, FromPeers: 5}, Completed: 1, Announces: 1}
	for range 3 {
		if err := s.Add(ctx, c, d, T0); err != nil {
			t.Fatalf("Add = %v", err)
		}
	}
	leech, seed, seedRole := peer("Alpha", 0, "eu", T0), peer("Alpha", 0, "eu", T0), peer("Beta", 0, "us", T0)
	seed.Left = 0
	seedRole.Role, seedRole.Left = tracker.RoleSeed, 0
	origin, edge := peer("", 0, "", T0), peer("", 0, "", T0)
	origin.Role, edge.Role = tracker.RoleOrigin, tracker.RoleEdge
	origin.Left, edge.Left = 0, 0
	for _, p := range []tracker.Peer{leech, seed, seedRole, origin, edge} {
		mustAnnounce(t, s, c, p, T0)
	}
	got, err := s.Swarm(ctx, c, T0)
	if err != nil {
		t.Fatalf("Swarm = %v", err)
	}
	want := tracker.SwarmStats{
		Content: c, Size: 3, Seeds: 2, Origins: 1, Edges: 1, Completed: 3, Announces: 3,
		Bytes: tracker.Bytes{Uploaded: 3, Downloaded: 6, FromOrigin: 9, FromEdge: 12, FromPeers: 15},
	}
	if got != want {
		t.Fatalf("Swarm = %+v\nwant %+v", got, want)
	}
	unknown := NewContent()
	if got, err := s.Swarm(ctx, unknown, T0); err != nil || got != (tracker.SwarmStats{Content: unknown}) {
		t.Fatalf("Swarm(unknown) = %+v, %v; want zero stats", got, err)
	}
}

func testSwarms(t *testing.T, s tracker.Store) {
	ctx := context.Background()
	a, b := NewContent(), NewContent()
	mustAnnounce(t, s, a, peer("Alpha", 0, "eu", T0), T0)
	if err := s.Add(ctx, a, tracker.Delta{Announces: 1}, T0); err != nil {
		t.Fatal(err)
	}
	if err := s.Add(ctx, b, tracker.Delta{Announces: 1}, T0); err != nil {
		t.Fatal(err)
	}
	got, err := s.Swarms(ctx, T0)
	if err != nil {
		t.Fatalf("Swarms = %v", err)
	}
	slices.SortFunc(got, func(x, y manifest.ID) int { return slices.Compare(x[:], y[:]) })
	want := []manifest.ID{a, b}
	slices.SortFunc(want, func(x, y manifest.ID) int { return slices.Compare(x[:], y[:]) })
	if !slices.Equal(got, want) {
		t.Fatalf("Swarms = %d swarms, want the 2 announced", len(got))
	}
}

func testSwarmsAreSeparate(t *testing.T, s tracker.Store) {
	ctx := context.Background()
	a, b := NewContent(), NewContent()
	p := peer("Alpha", 0, "eu", T0)
	mustAnnounce(t, s, a, p, T0)
	// The same peer with an older stamp is new in swarm b.
	q := p
	q.Stamp--
	if _, found, err := s.Announce(ctx, b, q, T0); err != nil || found {
		t.Fatalf("Announce in second swarm = found %v, %v; want false, nil", found, err)
	}
	if got := sample(t, s, b, T0, tracker.Query{Group: tracker.GroupPool, N: 10})[0]; len(got) != 1 {
		t.Fatalf("second swarm has %d peers, want 1", len(got))
	}
	if _, err := s.Report(ctx, a, p.ID, NewID(), true, T0.Add(time.Hour), T0); err != nil {
		t.Fatal(err)
	}
	if err := s.Ban(ctx, a, p.ID, T0.Add(time.Hour), T0); err != nil {
		t.Fatal(err)
	}
	if got := sample(t, s, b, T0, tracker.Query{Group: tracker.GroupPool, N: 10})[0]; len(got) != 1 {
		t.Fatalf("ban in swarm a removed the peer from swarm b")
	}
}

func testConcurrentPeers(t *testing.T, s tracker.Store) {
	ctx := context.Background()
	c := NewContent()
	const workers, each = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				now := T0.Add(time.Duration(i) * time.Millisecond)
				p := peer(fmt.Sprintf("isp%d", w%3), 0, "eu", now)
				if _, _, err := s.Announce(ctx, c, p, now); err != nil {
					errs <- err
					return
				}
				if _, err := s.Sample(ctx, c, now, []tracker.Query{{Group: tracker.GroupPool, N: 5}}); err != nil {
					errs <- err
					return
				}
				if err := s.Add(ctx, c, tracker.Delta{Announces: 1}, now); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st, err := s.Swarm(ctx, c, T0.Add(each*time.Millisecond))
	if err != nil || st.Size != workers*each || st.Announces != workers*each {
		t.Fatalf("Swarm = size %d announces %d, %v; want %d each", st.Size, st.Announces, err, workers*each)
	}
}

func testConcurrentSamePeer(t *testing.T, s tracker.Store) {
	ctx := context.Background()
	c := NewContent()
	p := peer("Alpha", 0, "eu", T0)
	const workers, each = 8, 25
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				q := p
				q.Stamp = p.Stamp + int64(i*workers+w)
				q.Left = uint64(q.Stamp)
				_, _, err := s.Announce(ctx, c, q, T0)
				if err == nil {
					mu.Lock()
					accepted++
					mu.Unlock()
				} else if !errors.Is(err, tracker.ErrStale) {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got, _, _ := s.Get(ctx, c, p.ID)
	maxStamp := p.Stamp + workers*each - 1
	if got.Stamp != maxStamp || got.Left != uint64(maxStamp) {
		t.Fatalf("after racing announces the record has stamp %d (left %d), want the largest, %d", got.Stamp, got.Left, maxStamp)
	}
	if accepted == 0 {
		t.Fatalf("no announce accepted")
	}
}
