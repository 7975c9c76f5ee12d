package swarm

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"slices"
	"testing"
	"time"

	"avalanche/internal/identity"
	"avalanche/internal/manifest"
	"avalanche/internal/rlnc"
	"avalanche/internal/wire"
)

// A seed past its cap serves one stuck downloader per generation at a time:
// the others wait urgentHold and get the dimensions from that one.
func TestUrgentTurn(t *testing.T) {
	s := &Swarm{}
	gen, other := &generation{}, &generation{}
	a, b := &conn{}, &conn{}
	if !s.urgentTurn(gen, a) {
		t.Fatal("first asker turned away")
	}
	if s.urgentTurn(gen, b) {
		t.Error("second asker served while the first holds the turn")
	}
	if !s.urgentTurn(gen, a) {
		t.Error("the asker holding the turn turned away")
	}
	if !s.urgentTurn(other, b) {
		t.Error("a turn on one generation held up another")
	}
	gen.urgentAt = time.Now().Add(-urgentHold - time.Millisecond)
	if !s.urgentTurn(gen, b) {
		t.Error("the turn did not pass on after urgentHold")
	}
}

// A neighbour whose offer held nothing new was judged against a span that
// included our pending wants; when those wants are given up, its offers
// are worth asking for again.
func TestGivenUpWantsReconsiderOffers(t *testing.T) {
	gen := &generation{blocks: 4}
	s := &Swarm{gens: []*generation{gen}, active: []int{0}}
	slow := &conn{pendingGens: map[int]int{0: 1}, late: map[int]int{}, wantsOut: 1}
	partial := &conn{useless: []bool{true}}
	s.conns = map[*conn]struct{}{slow: {}, partial: {}}
	gen.pending = []pendingWant{{c: slow, v: []byte{1, 0, 0, 0}, at: time.Now().Add(-time.Minute)}}
	gen.npending.Store(1)

	s.expireWants(time.Now())
	if len(gen.pending) != 0 || slow.wantsOut != 0 || slow.late[0] != 1 {
		t.Fatalf("want not given up: pending %d, wantsOut %d, late %d", len(gen.pending), slow.wantsOut, slow.late[0])
	}
	if partial.useless[0] {
		t.Error("the neighbour whose offer was judged against the given-up want is still marked useless")
	}
	if len(slow.ctrl) != 1 || !bytes.Equal(slow.ctrl[0], wire.Append(nil, wire.Cancel{Gen: 0, Coeffs: []byte{1, 0, 0, 0}})) {
		t.Errorf("the slow link was not asked to drop the wants: queued %x", slow.ctrl)
	}
}

// The count that answers a Cancel settles only wants given up: a want of
// the same generation asked since stays pending.
func TestCancelAnswerKeepsNewerWants(t *testing.T) {
	gen := &generation{blocks: 4}
	s := &Swarm{gens: []*generation{gen}, active: []int{0}}
	c := &conn{s: s, pendingGens: map[int]int{0: 1}, late: map[int]int{0: 2}, wantsOut: 1, useless: []bool{false}, capped: []bool{false}}
	s.conns = map[*conn]struct{}{c: {}}
	gen.pending = []pendingWant{{c: c, v: []byte{0, 1, 0, 0}, at: time.Now()}}
	gen.npending.Store(1)

	c.onReject(0, 3, wire.RejectCancel)
	if len(gen.pending) != 1 || c.wantsOut != 1 {
		t.Errorf("pending want dropped: pending %d, wantsOut %d", len(gen.pending), c.wantsOut)
	}
	if c.late[0] != 0 || c.useless[0] || c.capped[0] {
		t.Errorf("late %d, useless %v, capped %v; want 0, false, false", c.late[0], c.useless[0], c.capped[0])
	}
}

// A neighbour holding the whole generation offers the source blocks the
// asker lacks and nothing else: a random vector of its span could only
// repeat those dimensions (before, it filled the offer up to the count
// asked with such vectors, 73% of all vectors offered in the swarm lab).
func TestOfferHoldsOnlyMissingUnits(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	data := randomData(64<<10, 3)
	m := testManifest(t, data, 8, 4096)
	r := rawToSeed(t, ctx, m, data, 0)
	held := map[int]bool{0: true, 2: true, 5: true}
	units := []byte{1<<0 | 1<<2 | 1<<5}
	r.send(wire.Request{Gen: 1, Count: 8, Units: units})
	for {
		f, err := r.read()
		if err != nil {
			t.Fatalf("no offer: %v", err)
		}
		o, ok := f.(wire.Offer)
		if !ok {
			continue
		}
		k := m.K
		got := map[int]bool{}
		for i := 0; i+k <= len(o.Vectors); i += k {
			j, unit := rlnc.Unit(o.Vectors[i : i+k])
			if !unit || held[j] || got[j] {
				t.Fatalf("offered vector %d is %v: want a unit the asker lacks, once", i/k, o.Vectors[i:i+k])
			}
			got[j] = true
		}
		if len(got) != k-len(held) {
			t.Errorf("offered %d units, want the %d the asker lacks", len(got), k-len(held))
		}
		return
	}
}

// An empty offer (the neighbour holds no source block we lack) marks the
// neighbour of no use for the generation, like an offer of nothing new:
// otherwise the next pass asks it again at once, and the two trade empty
// requests and offers as fast as the link goes (a fifth more CPU in the
// swarm lab's churn scenario).
func TestEmptyOfferMarksUseless(t *testing.T) {
	gen := &generation{blocks: 4}
	s := &Swarm{gens: []*generation{gen}, outstanding: []int32{4}}
	c := &conn{s: s, offerReqs: map[int][]int{0: {4}}, useless: []bool{false}, pendingGens: map[int]int{}}
	if err := c.onOffer(0, nil); err != nil {
		t.Fatal(err)
	}
	if !c.useless[0] {
		t.Error("a neighbour that offered nothing is still asked for offers")
	}
	if len(c.offerReqs[0]) != 0 || s.outstanding[0] != 0 {
		t.Errorf("request still counted: offerReqs %v, outstanding %d", c.offerReqs[0], s.outstanding[0])
	}
}

// A Cancel makes the neighbour drop the want if it has not begun to serve
// it, and say so; every want is then either served or answered so, once,
// and other wants are still served. Before Cancel existed, wants a
// downloader gave up were served anyway and thrown away on arrival: up to
// 1,070 blocks in one swarm-lab run, sent on the slowest uplinks.
func TestCancelDropsUnservedWants(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	const k, bs = 8, 16 << 10
	data := randomData(3*k*bs, 5)
	m := testManifest(t, data, k, bs)
	// 32 KiB/s with a 64 KiB burst: four blocks leave at once, then two a
	// second, so most wants are still queued when the Cancel arrives.
	r := rawToSeed(t, ctx, m, data, 32<<10)
	unit := func(j int) []byte {
		v := make([]byte, k)
		v[j] = 1
		return v
	}
	for j := range k {
		r.send(wire.Want{Gen: 1, Coeffs: unit(j)})
	}
	for j := range k {
		r.send(wire.Cancel{Gen: 1, Coeffs: unit(j)})
	}
	r.send(wire.Want{Gen: 2, Coeffs: unit(0)})
	r.send(wire.Want{Gen: 2, Coeffs: unit(1)})

	served, dropped, other := 0, 0, 0
	for other < 2 {
		f, err := r.read()
		if err != nil {
			t.Fatalf("after %d blocks of generation 1, %d dropped, %d of generation 2: %v", served, dropped, other, err)
		}
		switch f := f.(type) {
		case wire.Block:
			if f.Gen == 2 {
				other++
				continue
			}
			served++
		case wire.Reject:
			if f.Gen != 1 || f.Reason != wire.RejectCancel {
				t.Fatalf("unexpected reject %+v", f)
			}
			dropped += int(f.Count)
		}
	}
	if served+dropped != k {
		t.Errorf("%d wants served and %d dropped, want %d in all", served, dropped, k)
	}
	if dropped == 0 {
		t.Errorf("all %d wants served: the cancel dropped none", served)
	}
}

// In the endgame a generation gives up wants that waited 500 ms on a link
// whose own limit is longer: the link is slower than the others at the
// end, not stuck, so it is not paused or cut back for it. A want past the
// link's own limit pauses the link and halves its pipeline.
func TestEndgameGiveUpKeepsTheLink(t *testing.T) {
	for _, tc := range []struct {
		name   string
		waited time.Duration
		paused bool
	}{
		{"endgame", 600 * time.Millisecond, false},
		{"own limit", 3 * time.Second, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := time.Now()
			gen := &generation{blocks: 4}
			gen.rank.Store(3)
			gen.progress.Store(now.Add(-tc.waited).UnixNano())
			s := &Swarm{gens: []*generation{gen}, active: []int{0}}
			c := &conn{s: s, pendingGens: map[int]int{0: 1}, late: map[int]int{}, wantsOut: 1, depth: 16, limit: 2 * time.Second}
			s.conns = map[*conn]struct{}{c: {}}
			gen.pending = []pendingWant{{c: c, v: []byte{0, 0, 0, 1}, at: now.Add(-tc.waited)}}
			gen.npending.Store(1)

			s.expireWants(now)
			if len(gen.pending) != 0 {
				t.Fatal("want not given up")
			}
			if paused := c.stalledUntil.After(now); paused != tc.paused || (c.depth < 16) != tc.paused {
				t.Errorf("paused %v, depth %d; want paused %v", paused, c.depth, tc.paused)
			}
		})
	}
}

// TestDepthFollowsRate: a link that delivers with its pipeline full is
// asked for more ahead, but for no more than it delivers in depthDelay (and
// never fewer than the initial depth); one whose rate falls is cut back a
// block at a time, and one that delivers with room to spare does not grow.
func TestDepthFollowsRate(t *testing.T) {
	s := &Swarm{cfg: Config{Depth: 8, MaxDepth: 64}, m: &manifest.Manifest{BlockSize: 32 << 10}}
	c := &conn{s: s, depth: 8}
	rate := func(bytesPerSecond float64) {
		c.recvRate.mu.Lock()
		c.recvRate.value, c.recvRate.last = bytesPerSecond, time.Now()
		c.recvRate.mu.Unlock()
	}
	for _, step := range []struct {
		name  string
		rate  float64
		full  bool
		depth int
	}{
		{"fast link, pipeline full: up to MaxDepth", 50e6, true, 64},
		{"slowed to 5 MB/s: what it delivers in 150 ms", 5e6, true, 22},
		{"slowed to 1 MB/s: the initial depth", 1e6, false, 8},
		{"5 MB/s again, with room to spare", 5e6, false, 8},
		{"5 MB/s again, pipeline full", 5e6, true, 22},
	} {
		rate(step.rate)
		for range 100 {
			s.adjustDepth(c, step.full)
		}
		if c.depth != step.depth {
			t.Errorf("%s: depth %d, want %d", step.name, c.depth, step.depth)
		}
	}
}

// TestBehind: a downloader is far behind when the median of its peers
// holds a fifth of the content or more beyond what it holds; seeds do not
// count, and a few neighbours as far behind as itself do not hide it.
func TestBehind(t *testing.T) {
	for _, tc := range []struct {
		name   string
		own    int
		peers  []int // blocks held by each peer neighbour, of 100
		seed   bool  // an origin holding everything is a neighbour too
		behind bool
	}{
		{"no neighbours", 0, nil, true, false},
		{"level with its peers", 40, []int{40, 45, 50}, true, false},
		{"a fifth or more behind", 15, []int{40, 40, 45}, false, true},
		{"behind, next to two other late joiners", 10, []int{5, 10, 60, 65, 70}, false, true},
		{"behind only the seed", 10, []int{10, 15}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gen := &generation{blocks: 100}
			gen.rank.Store(int32(tc.own))
			s := &Swarm{gens: []*generation{gen}, conns: map[*conn]struct{}{}, cfg: Config{Out: &memFile{}}}
			for _, h := range tc.peers {
				s.conns[&conn{s: s, role: wire.RolePeer, remote: []byte{byte(h)}}] = struct{}{}
			}
			if tc.seed {
				s.conns[&conn{s: s, role: wire.RoleOrigin, remote: []byte{100}, remoteDone: true}] = struct{}{}
			}
			if got := s.behind(); got != tc.behind {
				t.Errorf("behind = %v, want %v", got, tc.behind)
			}
		})
	}
}

// rawToSeed starts a peer holding data, with the given upload limit (0:
// none), and returns a raw link to it past hello and an empty state.
func rawToSeed(t *testing.T, ctx context.Context, m *manifest.Manifest, data []byte, up int64) *rawPeer {
	t.Helper()
	seed, err := NewNode(ctx, NodeConfig{Key: identity.Generate(), Role: wire.RolePeer, UploadLimit: up})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seed.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go seed.Serve(ln)
	if _, err := seed.Join(Config{Manifest: m, Data: bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	r := dialRaw(t, ln.Addr().String(), seed.ID())
	t.Cleanup(func() { r.c.Close() })
	r.send(wire.Hello{Version: wire.Version, Role: wire.RolePeer, Content: m.ID()})
	r.m = m
	r.send(wire.State{Ranks: make([]byte, m.Generations())})
	return r
}

// TestSumsAskedAsNeeded: a downloader asks the origin for the checksums of
// the generations in play and sumsAhead past them, a chunk at a time, not
// for the whole content as it starts; a partial peer holding later
// generations, or a finished one, widens what is asked for.
func TestSumsAskedAsNeeded(t *testing.T) {
	asked := func(origin *conn) []wire.SumsReq {
		var out []wire.SumsReq
		for _, f := range origin.ctrl {
			var r wire.SumsReq
			if len(f) != 5+8 || wire.Type(f[4]) != wire.TSumsReq {
				t.Fatalf("queued %x, want a sums-request", f)
			}
			r.First, r.N = binary.BigEndian.Uint32(f[5:]), binary.BigEndian.Uint32(f[9:])
			out = append(out, r)
		}
		origin.ctrl = nil
		return out
	}
	gens := make([]*generation, 64)
	for g := range gens {
		gens[g] = &generation{blocks: 64}
	}
	s := &Swarm{gens: gens, sumsAsked: make([]bool, len(gens)), avail: make([]int32, len(gens)), conns: map[*conn]struct{}{}, cfg: Config{Out: &memFile{}, Slots: 8}}
	origin := &conn{s: s, role: wire.RoleOrigin, remote: bytes.Repeat([]byte{64}, 64), remoteDone: true, signal: make(chan struct{}, 1)}
	s.conns[origin] = struct{}{}
	s.sumsFrom = origin

	// Starting, with blocks of generation 0 coming from the origin: the
	// first chunk only.
	s.active = []int{0}
	s.requestSums()
	if got := asked(origin); len(got) != 1 || got[0] != (wire.SumsReq{First: 0, N: sumsChunk}) {
		t.Fatalf("at the start: asked %v, want the first chunk", got)
	}
	s.requestSums()
	if got := asked(origin); len(got) != 0 {
		t.Fatalf("asked again for what was asked: %v", got)
	}
	// A partial peer holding part of generation 13: through 13+sumsAhead.
	peer := &conn{s: s, role: wire.RolePeer, remote: make([]byte, 64), useless: make([]bool, 64), top: -1}
	s.conns[peer] = struct{}{}
	peer.onHave(13, 5)
	origin.ctrl = nil
	s.requestSums()
	if got := asked(origin); len(got) != 2 || got[0].First != 8 || got[1].First != 16 {
		t.Fatalf("with a peer holding generation 13: asked %v, want chunks 8 and 16", got)
	}
	// A finished peer: the next 2·slots incomplete generations, in order
	// (26..41), and sumsAhead more; generations we completed are left out.
	for g := range 26 {
		gens[g].complete.Store(true)
	}
	done := &conn{s: s, role: wire.RolePeer, remote: bytes.Repeat([]byte{64}, 64), remoteDone: true}
	s.conns[done] = struct{}{}
	s.requestSums()
	want := []wire.SumsReq{{First: 26, N: 6}, {First: 32, N: 8}, {First: 40, N: 8}}
	if got := asked(origin); !slices.Equal(got, want) {
		t.Fatalf("with a finished peer: asked %v, want %v", got, want)
	}
}

// TestEndgameWants: once the origin's first copy is out, a generation that
// lacks a few blocks, all asked of one neighbour, is also asked of others
// that hold all of it — one random combination per block it lacks, each
// of another neighbour — and of no origin; not before the first copy is
// out, not for a generation that lacks more, and not twice.
func TestEndgameWants(t *testing.T) {
	now := time.Now()
	gen := &generation{blocks: 16}
	gen.rank.Store(14)
	s := &Swarm{gens: []*generation{gen}, active: []int{0}, rng: newRand(), conns: map[*conn]struct{}{}}
	link := func(role wire.Role, rank uint8) *conn {
		c := &conn{s: s, role: role, remote: []uint8{rank}, pendingGens: map[int]int{}, late: map[int]int{}, depth: 8}
		s.conns[c] = struct{}{}
		return c
	}
	slow := link(wire.RolePeer, 16)
	holders := []*conn{link(wire.RolePeer, 16), link(wire.RolePeer, 16), link(wire.RolePeer, 16)}
	partial := link(wire.RolePeer, 15)
	origin := link(wire.RoleOrigin, 16)
	for _, v := range [][]byte{unitVector(16, 3), unitVector(16, 9)} {
		gen.pending = append(gen.pending, pendingWant{c: slow, v: v, at: now})
		slow.wantsOut++
		slow.pendingGens[0]++
	}

	if f := s.endgameWants(nil, now); len(f) != 0 {
		t.Fatalf("%d endgame wants before the origin's first copy is out", len(f))
	}
	s.originDone = true
	frames := s.endgameWants(nil, now)
	if len(frames) != 2 || len(gen.pending) != 4 || gen.npending.Load() != 4 {
		t.Fatalf("%d endgame wants, %d pending (%d counted); want 2 and 4", len(frames), len(gen.pending), gen.npending.Load())
	}
	asked := map[*conn]int{}
	for _, p := range gen.pending[2:] {
		if !p.extra || len(p.v) != 16 {
			t.Errorf("endgame want %+v: want an extra random vector", p)
		}
		asked[p.c]++
	}
	for c, n := range asked {
		if c == slow || c == partial || c == origin || n != 1 || c.wantsOut != 1 || c.pendingGens[0] != 1 {
			t.Errorf("asked %v (role %v, rank %d) %d times, wantsOut %d", c == slow, c.role, c.remote[0], n, c.wantsOut)
		}
	}
	if f := s.endgameWants(nil, now); len(f) != 0 {
		t.Errorf("asked again: %d more", len(f))
	}

	gen.rank.Store(16 - endgameBlocks - 1)
	gen.pending = gen.pending[:2]
	for _, c := range holders {
		c.wantsOut, c.pendingGens = 0, map[int]int{}
	}
	if f := s.endgameWants(nil, now); len(f) != 0 {
		t.Errorf("%d endgame wants for a generation lacking %d blocks", len(f), endgameBlocks+1)
	}
}

func unitVector(k, i int) []byte {
	v := make([]byte, k)
	v[i] = 1
	return v
}
