package swarm

import (
	"context"
	"math/rand/v2"
	"slices"
	"sort"
	"time"

	"avalanche/internal/rlnc"
	"avalanche/internal/wire"
)

// Scheduling knobs.
const (
	// wantTimeout: wants a link has not delivered after this long are given
	// up (the generation's need is re-opened for other links).
	wantTimeout = 4 * time.Second
	// minWantTimeout: the least a want may wait on a link that delivers
	// fast (see wantLimit).
	minWantTimeout = 750 * time.Millisecond
	// endgameAfter: a generation whose last blocks are all asked for and
	// that got none for this long gives those wants up and asks others.
	endgameAfter = 500 * time.Millisecond
	// stallPause: a link whose wants were given up is asked for nothing
	// new for this long.
	stallPause = 2 * time.Second
	// depthDelay: a link is asked for no more blocks ahead than it
	// delivers in this long (see adjustDepth).
	depthDelay = 150 * time.Millisecond
	// deadAfter: a link whose peer acknowledges nothing this long, with
	// data on the way, is closed.
	deadAfter = 3 * time.Second
	// urgentAfter: a generation without progress this long may ask a seed
	// past its cap.
	urgentAfter = time.Second
	// maxOfferBatch bounds the vectors requested in one Request.
	maxOfferBatch = 16
)

// schedule asks neighbours for blocks: for each link with room in its
// pipeline, pick a generation it can help with; ask a neighbour that holds
// the whole generation for blocks directly (we choose the coefficient
// vectors), and a partial one for offers first.
func (s *Swarm) schedule() {
	if s.cfg.Out == nil || s.isComplete() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if now.Sub(s.lastExpire) >= 50*time.Millisecond {
		// Timeouts are seconds long: checking them at every pass (one per
		// wake-up of the process while blocks arrive) would only cost.
		s.expireWants(now)
		s.lastExpire = now
	}
	s.requestSums()
	// Release slots of generations nothing is arriving for.
	for i := 0; i < len(s.active); i++ {
		g := s.active[i]
		gen := s.gens[g]
		if gen.rank.Load() == 0 && gen.npending.Load() == 0 && s.outstanding[g] == 0 {
			s.active = append(s.active[:i], s.active[i+1:]...)
			i--
		}
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		if c.remote != nil {
			conns = append(conns, c)
		}
	}
	rand.Shuffle(len(conns), func(i, j int) { conns[i], conns[j] = conns[j], conns[i] })
	// Sources that hold everything go first: they are where new dimensions
	// come from, and their wants are never wasted on offers.
	sort.SliceStable(conns, func(i, j int) bool { return conns[i].remoteDone && !conns[j].remoteDone })
	var frames []func()
	// Each pass gives every link that still has room one generation; a
	// link that had nothing to ask for, or no room, sits out the passes
	// after.
	for pass := 0; pass < 8 && len(conns) > 0; pass++ {
		live := conns[:0]
		for _, c := range conns {
			if c.wantsOut+len(c.offerReqs) >= c.depth {
				continue
			}
			if s.asksAny(c) {
				// The origin chooses: the next source block it has sent
				// to no one, of whichever generation.
				if n := min(s.anyRoom(), c.depth-c.wantsOut, max(1, c.depth/2)); n > 0 {
					c.wantsOut += n
					c.anyOut += n
					frames = append(frames, anyFrames(c, n))
					live = append(live, c)
				}
				continue
			}
			g, urgent := s.pick(c, now)
			if g < 0 {
				continue
			}
			gen := s.gens[g]
			need := s.need(g, c.holds(g))
			if c.holds(g) {
				n := min(c.depth-c.wantsOut, max(1, need), max(1, c.depth/2))
				vs := s.makeWants(c, g, n)
				for _, v := range vs {
					frames = append(frames, wantFrame(c, g, v, urgent))
				}
				if len(vs) > 0 {
					live = append(live, c)
				}
				continue
			}
			n := min(max(1, need), int(c.remote[g]), maxOfferBatch, gen.blocks)
			c.offerReqs[g] = append(c.offerReqs[g], n)
			s.outstanding[g] += int32(n)
			frames = append(frames, requestFrame(c, g, n, s.unitMap(gen)))
			live = append(live, c)
		}
		conns = live
	}
	frames = s.endgameWants(frames, now)
	for _, f := range frames {
		f()
	}
}

// endgameBlocks is how few blocks a generation must lack for endgame
// wants.
const endgameBlocks = 8

// endgameWants adds the endgame's wants to frames. Once the origin's first
// copy is out, nothing new enters the swarm, and a generation's last
// blocks are often all asked of one neighbour, behind what it sends
// everyone else, while others that hold the whole generation have room: in
// the swarm lab the last peer to finish took a generation's last six
// blocks one by one from one neighbour over 130 ms. So each generation
// that lacks at most endgameBlocks blocks is also asked, of as many other
// neighbours holding all of it, for as many random combinations as it
// lacks. With coding any of them completes it as well as any other: no
// block need be the one a slow link still owes, and whichever come first
// finish the generation; the wants still out are then cancelled like any
// other. Caller holds s.mu.
func (s *Swarm) endgameWants(frames []func(), now time.Time) []func() {
	if !s.originDone {
		return frames
	}
	for _, g := range s.active {
		gen := s.gens[g]
		missing := gen.blocks - int(gen.rank.Load())
		if gen.complete.Load() || missing <= 0 || missing > endgameBlocks {
			continue
		}
		gen.mu.Lock()
		extras := 0
		for _, p := range gen.pending {
			if p.extra {
				extras++
			}
		}
		for c := range s.conns {
			if extras >= missing {
				break
			}
			if c.remote == nil || !c.holds(g) || c.role == wire.RoleOrigin || c.pendingGens[g] > 0 ||
				c.wantsOut+len(c.offerReqs) >= c.depth || now.Before(c.stalledUntil) {
				continue
			}
			v := make([]byte, gen.blocks)
			rlnc.RandomCoefficients(s.rng, v)
			gen.pending = append(gen.pending, pendingWant{c: c, v: v, at: now, extra: true})
			c.wantsOut++
			c.pendingGens[g]++
			frames = append(frames, wantFrame(c, g, v, false))
			extras++
		}
		gen.npending.Store(int32(len(gen.pending)))
		gen.mu.Unlock()
	}
	return frames
}

// asksAny reports whether c, the origin, is asked with Wants of any
// generation: until it declines one, which means it has sent every source
// block. Caller holds s.mu.
func (s *Swarm) asksAny(c *conn) bool {
	return c.role == wire.RoleOrigin && !c.anyDone && c.remoteDone
}

// anyRoom returns how many more blocks of the origin's choice to ask for:
// as many as the content still needs beyond what is asked for already,
// and none while twice the slots are being decoded (each such block may
// open a generation, and the slots bound memory). Caller holds s.mu.
func (s *Swarm) anyRoom() int {
	if len(s.active) >= 2*s.cfg.Slots {
		return 0
	}
	need := 0
	for _, gen := range s.gens {
		if !gen.complete.Load() {
			need += gen.blocks - int(gen.rank.Load()) - int(gen.npending.Load())
		}
	}
	for o := range s.conns {
		need -= o.anyOut
	}
	return max(0, need)
}

func anyFrames(c *conn, n int) func() {
	return func() {
		var b []byte
		for range n {
			b = wire.Append(b, wire.Want{Gen: wire.AnyGen, Any: true})
		}
		c.enqueue(b)
	}
}

func wantFrame(c *conn, g int, v []byte, urgent bool) func() {
	return func() {
		w := wire.Want{Gen: uint32(g), Urgent: urgent, Coeffs: v}
		if v == nil { // the sender chooses
			w.Any, w.Coeffs = true, make([]byte, c.s.gens[g].blocks)
		}
		c.enqueue(wire.Append(nil, w))
	}
}

func requestFrame(c *conn, g, n int, units []byte) func() {
	return func() { c.enqueue(wire.Append(nil, wire.Request{Gen: uint32(g), Count: uint16(n), Units: units})) }
}

// unitMap returns the source blocks of gen held or asked for as is, in
// the form of Request.Units. Caller holds s.mu.
func (s *Swarm) unitMap(gen *generation) []byte {
	gen.mu.Lock()
	defer gen.mu.Unlock()
	units := make([]byte, (gen.blocks+7)/8)
	if gen.basis != nil {
		gen.basis.UnitColumns(units)
	}
	return units
}

// makeWants chooses up to n coefficient vectors that extend the span of
// what we hold and have asked for, and records them as wanted from c, a
// neighbour holding all of g. From a seed that keeps to one copy the
// choice is the seed's (see Want.Any); from others, source blocks we do not
// hold as is (unit vectors): a copy for the sender, and for us nothing to
// decode while what we hold is source blocks too. Random vectors only from
// a seed that already sent the units we lack to others. Caller holds s.mu.
func (s *Swarm) makeWants(c *conn, g, n int) [][]byte {
	gen := s.gens[g]
	gen.mu.Lock()
	defer gen.mu.Unlock()
	s.activate(gen)
	if gen.basis == nil {
		return nil
	}
	var out [][]byte
	now := time.Now()
	if c.role == wire.RoleOrigin {
		// A seed that keeps to one copy picks a source block nobody has
		// had from it: fresh to every receiver, and a copy for it to make.
		for len(out) < n && gen.basis.Rank()+countAny(gen.pending) < gen.blocks {
			gen.pending = append(gen.pending, pendingWant{c: c, at: now})
			out = append(out, nil)
		}
		gen.npending.Store(int32(len(gen.pending)))
		c.wantsOut += len(out)
		c.pendingGens[g] += len(out)
		return out
	}
	var free []int
	if !c.noUnits {
		free = gen.basis.UnitFree(nil)
		s.rng.Shuffle(len(free), func(i, j int) { free[i], free[j] = free[j], free[i] })
	}
	for len(out) < n && gen.basis.Rank()+countAny(gen.pending) < gen.blocks {
		v := make([]byte, gen.blocks)
		if len(free) > 0 {
			v[free[0]] = 1
			free = free[1:]
		} else {
			rlnc.RandomCoefficients(s.rng, v)
		}
		if !gen.basis.Add(v) {
			continue
		}
		gen.pending = append(gen.pending, pendingWant{c: c, v: v, at: now})
		out = append(out, v)
	}
	gen.npending.Store(int32(len(gen.pending)))
	if len(out) > 0 {
		c.wantsOut += len(out)
		c.pendingGens[g] += len(out)
	}
	return out
}

// countAny counts the pending wants whose vector the sender chooses (they
// are not in the basis).
func countAny(p []pendingWant) int {
	n := 0
	for _, w := range p {
		if w.v == nil {
			n++
		}
	}
	return n
}

// activate gives an active generation its decoder and basis. Caller holds
// gen.mu.
func (s *Swarm) activate(gen *generation) {
	if gen.complete.Load() {
		return
	}
	if gen.dec == nil {
		gen.dec = s.newDecoder(gen)
	}
	if gen.basis == nil {
		gen.basis = rlnc.NewBasis(gen.blocks)
		s.rebuildBasis(gen)
	}
}

// expireWants gives up wants that waited too long, so that a slow or stuck
// link cannot hold a generation hostage. Caller holds s.mu.
func (s *Swarm) expireWants(now time.Time) {
	for _, g := range s.active {
		gen := s.gens[g]
		gen.mu.Lock()
		// Per link: the limit its wants were held to, and whether one
		// waited past the link's own limit (not only the endgame's).
		type giveUp struct {
			limit time.Duration
			stuck bool
		}
		var stale map[*conn]giveUp
		// Endgame: a generation that only waits for what it asked for, and
		// has waited endgameAfter since its last block, asks elsewhere.
		endgame := gen.npending.Load() > 0 && int(gen.rank.Load())+int(gen.npending.Load()) >= gen.blocks &&
			now.Sub(time.Unix(0, gen.progress.Load())) > endgameAfter
		for _, p := range gen.pending {
			own := p.c.limit
			if own == 0 {
				own = wantTimeout
			}
			limit := own
			if endgame && p.c.role != wire.RoleOrigin {
				// Not a seed's: it serves every downloader from one
				// queue, so a want waiting there waits its turn.
				limit = min(limit, endgameAfter)
			}
			if waited := now.Sub(p.at); waited > limit {
				if stale == nil {
					stale = map[*conn]giveUp{}
				}
				u := stale[p.c]
				stale[p.c] = giveUp{limit: limit, stuck: u.stuck || waited > own}
			}
		}
		gen.mu.Unlock()
		for c, u := range stale {
			old := func(p pendingWant) bool { return now.Sub(p.at) > u.limit }
			dropped := s.dropWants(c, g, old, true)
			for _, p := range dropped {
				c.cancelWant(g, p) // its block would be thrown away
			}
			if len(dropped) > 0 {
				s.reconsider(g)
			}
			if u.stuck {
				// Only a link that kept a want past its own limit is
				// paused and cut back: one merely slower than the others
				// in the endgame is not stuck.
				c.depth = max(2, c.depth/2)
				c.stalledUntil = now.Add(stallPause)
			}
		}
	}
}

// wantLimit is how long a want to c may wait: three times what c's
// pipeline takes to drain at the rate c has been delivering, within
// [minWantTimeout, wantTimeout]. It is taken as blocks arrive (conn.limit),
// not when checking: a link that stalls has a rate that decays towards
// zero, and would be given the longest wait exactly when it deserves the
// shortest. A link that stalls on the last blocks of a generation then
// holds it up for a second or so, not for wantTimeout.
func (s *Swarm) wantLimit(c *conn) time.Duration {
	rate := c.recvRate.rate()
	if rate < 1 {
		return wantTimeout
	}
	d := time.Duration(3 * float64(c.depth*s.m.BlockSize) / rate * float64(time.Second))
	return min(wantTimeout, max(minWantTimeout, d))
}

// need returns how many more blocks of g to ask for, counting wants
// outstanding and, unless direct (a want to a neighbour holding the whole
// generation), vectors requested in offers: offers are only possibilities,
// so they never hold back a source that can serve at once. Caller holds
// s.mu.
func (s *Swarm) need(g int, direct bool) int {
	gen := s.gens[g]
	n := gen.blocks - int(gen.rank.Load()) - int(gen.npending.Load())
	if !direct {
		n -= int(s.outstanding[g])
	}
	return n
}

// usable reports whether c can help with g now, and whether asking it
// would be urgent (a seed past its cap). Caller holds s.mu.
func (s *Swarm) usable(c *conn, g int, now time.Time) (ok, urgent bool) {
	gen := s.gens[g]
	r := int(c.remote[g])
	if r == 0 || gen.complete.Load() || now.Before(c.stalledUntil) {
		return false, false
	}
	if !gen.hasSums.Load() && !c.vouched() {
		// A peer's blocks are verified with our checksums before use.
		return false, false
	}
	if r < gen.blocks {
		// A partial neighbour: one request for offers at a time, and not
		// while its last offers held nothing new.
		return !c.useless[g] && len(c.offerReqs[g]) == 0, false
	}
	if c.capped[g] {
		if gen.npending.Load() != 0 || s.outstanding[g] != 0 {
			return false, false
		}
		last := time.Unix(0, gen.progress.Load())
		if now.Sub(last) > urgentAfter && !s.othersCanHelp(c, g) {
			return true, true
		}
		return false, false
	}
	return true, false
}

// othersCanHelp reports whether a neighbour other than c might still
// bring something new of g: one holding it that has not capped it, or a
// partial one whose offers have not come back empty. Caller holds s.mu.
func (s *Swarm) othersCanHelp(c *conn, g int) bool {
	for o := range s.conns {
		if o == c || o.remote == nil || o.remote[g] == 0 {
			continue
		}
		if o.holds(g) {
			if !o.capped[g] {
				return true
			}
			continue
		}
		if !o.useless[g] {
			return true
		}
	}
	return false
}

// pick chooses the generation to ask c for: an active generation c can help
// with that still needs blocks, the earliest first, so that the file's
// verified prefix grows steadily (--stream follows it); else a new
// generation if a slot is free. Caller holds s.mu.
func (s *Swarm) pick(c *conn, now time.Time) (g int, urgent bool) {
	best, bestScore, bestUrgent := -1, -1, false
	for _, a := range s.active {
		ok, u := s.usable(c, a, now)
		if !ok || s.need(a, c.holds(a)) <= 0 {
			continue
		}
		if score := len(s.gens) - a; score > bestScore {
			best, bestScore, bestUrgent = a, score, u
		}
	}
	if best >= 0 {
		return best, bestUrgent
	}
	// A neighbour holding everything may open generations beyond the slots
	// (up to twice as many) rather than idle while partial ones finish.
	slots := s.cfg.Slots
	if c.remoteDone {
		slots *= 2
	}
	if len(s.active) < slots {
		if g, urgent := s.choose(c, now); g >= 0 {
			s.active = append(s.active, g)
			gen := s.gens[g]
			gen.mu.Lock()
			s.activate(gen)
			gen.mu.Unlock()
			if gen.progress.Load() == 0 {
				gen.progress.Store(now.UnixNano())
			}
			return g, urgent
		}
	}
	return -1, false
}

// choose selects a generation to start: one c can help with, that we lack,
// whose checksums we have, and that is not active yet. From a neighbour
// holding everything (a seed), in order: a seed hands each asker blocks
// nobody has had from it, whichever generation they ask for, so the order
// costs it nothing, and downloaders that start the same generations hold
// blocks the others are decoding at that very moment, which they trade at
// once. Rarest-first would have every downloader open generations nobody
// else works on, and trade nothing until slots free up. From a partial
// neighbour, rarest first (fewest blocks among the neighbours), random
// among ties. In order when streaming. Only if there is none does it
// return one that c, a seed, serves only as urgent (nobody else holds what
// is missing). Caller holds s.mu.
func (s *Swarm) choose(c *conn, now time.Time) (int, bool) {
	best, bestAvail, ties := -1, int32(0), 0
	urgentPick := -1
	for g := range s.gens {
		if s.isActive(g) {
			continue
		}
		ok, urgent := s.usable(c, g, now)
		if !ok {
			continue
		}
		if urgent {
			if urgentPick < 0 {
				urgentPick = g
			}
			continue
		}
		if s.cfg.Stream || c.remoteDone {
			return g, false
		}
		a := s.avail[g]
		switch {
		case best < 0 || a < bestAvail:
			best, bestAvail, ties = g, a, 1
		case a == bestAvail:
			ties++
			if rand.IntN(ties) == 0 {
				best = g
			}
		}
	}
	if best < 0 && urgentPick >= 0 {
		return urgentPick, true
	}
	return best, false
}

// maintain dials candidates while the swarm needs more neighbours and
// drops links that are of no use to either side.
func (s *Swarm) maintain() {
	s.mu.Lock()
	complete := s.isComplete()
	var idle, dead []*conn
	for c := range s.conns {
		if complete && c.remoteDone && c.remote != nil {
			idle = append(idle, c)
		}
	}
	if victim := s.replaceable(); victim != nil {
		idle = append(idle, victim)
	}
	// A neighbour that has acknowledged nothing for deadAfter while data
	// waits for it is gone (a host switched off leaves no FIN or RST):
	// drop it, so that its wants and unacknowledged bytes stop counting.
	for c := range s.conns {
		if _, silent := unacked(c.nc.NetConn()); silent > deadAfter {
			dead = append(dead, c)
		}
	}
	// Links to neighbours that hold everything do not count while much is
	// left to fetch: a downloader whose neighbours finished (in the swarm
	// lab, the downloaders that came late, whose neighbours finished
	// first) takes more of them, up to MaxPeers more, rather than leave
	// their uplinks idle. Near the end new links would not pay for their
	// handshakes (in a swarm that finishes all at once, hundreds of them).
	behind := s.behind()
	s.farBehind.Store(behind)
	limit := s.dialLimit(behind)
	want := limit - len(s.conns)
	if s.leftFraction() >= 1.0/8 {
		want = min(limit-s.partialLinks(), limit+s.cfg.MaxPeers-len(s.conns))
	}
	var dial []PeerAddr
	if !complete && want > 0 {
		connected := map[string]bool{}
		for c := range s.conns {
			connected[c.addr.String()] = true
		}
		// Seeds (origin, edges) first: they hold everything, and only the
		// origin hands out checksum keys, without which nothing received
		// can be used. Then peers, in the map's random order.
		var seeds, peers []PeerAddr
		for addr, p := range s.candidates {
			if connected[addr] || (!p.ID.IsZero() && s.byID[p.ID] != nil) || s.banned[p.ID] {
				continue
			}
			if p.Role != wire.RolePeer {
				seeds = append(seeds, p)
			} else {
				peers = append(peers, p)
			}
		}
		for _, p := range append(seeds, peers...) {
			if len(dial) >= min(want, 8) {
				break
			}
			if s.backoffOK(p.Addr) {
				dial = append(dial, p)
			}
		}
	}
	s.mu.Unlock()
	for _, c := range idle {
		go c.close(wire.ByeNormal, "both complete or replaced")
	}
	for _, c := range dead {
		s.log.Info("neighbour stopped acknowledging; dropping it", "peer", c.peer.Short())
		go c.close(wire.ByeNormal, "no acknowledgement")
	}
	for _, p := range dial {
		go func(p PeerAddr) {
			ctx, cancel := context.WithTimeout(s.ctx, 15*time.Second)
			defer cancel()
			err := s.node.dial(ctx, s, p)
			s.mu.Lock()
			s.noteDial(p.Addr, err)
			s.mu.Unlock()
			if err != nil {
				s.log.Debug("dial failed", "addr", p.Addr, "err", err)
			}
		}(p)
	}
}

// leftFraction returns the share of the content's blocks not held yet.
func (s *Swarm) leftFraction() float64 {
	held, all := s.blockCounts()
	return float64(all-held) / float64(max(1, all))
}

// blockCounts returns the blocks held (the generations' ranks) and the
// content's blocks in all.
func (s *Swarm) blockCounts() (held, all int) {
	for _, gen := range s.gens {
		all += gen.blocks
		held += int(gen.rank.Load())
	}
	return held, all
}

// behind reports whether this downloader lacks a fifth of the content or
// more beyond what the median of its neighbours (peers, not seeds) holds:
// a late joiner among downloaders that came first (other late joiners
// among its neighbours would pull a mean down). It then dials half as
// many partial neighbours more, and says so in its hello, so that full
// neighbours let it in (admit). In the swarm lab's churn scenario the
// late joiners finished 1.6 s after everyone else on 8 peer links each; with
// more links, more of the busy uplinks' TCP share goes to them while the
// others still download. Everyone taking more links instead costs CPU and
// time in swarms that progress together. Caller holds s.mu.
func (s *Swarm) behind() bool {
	if s.cfg.Out == nil || s.isComplete() {
		return false
	}
	own, total := s.blockCounts()
	var held []int
	for c := range s.conns {
		if c.role != wire.RolePeer || c.remote == nil {
			continue
		}
		h := 0
		for _, r := range c.remote {
			h += int(r)
		}
		held = append(held, h)
	}
	if len(held) == 0 {
		return false
	}
	slices.Sort(held)
	return float64(held[len(held)/2]-own) >= float64(total)/5
}

// dialLimit is how many partial neighbours this node dials: MaxPeers, and
// half as many more for one far behind (see behind).
func (s *Swarm) dialLimit(farBehind bool) int {
	if farBehind {
		return s.cfg.MaxPeers + s.cfg.MaxPeers/2
	}
	return s.cfg.MaxPeers
}

// replaceEvery is how often a full swarm may drop its least useful link to
// make room for a candidate it has not tried.
const replaceEvery = 10 * time.Second

// replaceable returns the link to drop to make room for a new neighbour, if
// any: when all slots for partial peers are used and untried candidates
// wait, the partial peer (never a seed) connected longer than replaceEvery
// whose traffic both ways is lowest, if below a tenth of the average.
// Caller holds s.mu.
func (s *Swarm) replaceable() *conn {
	now := time.Now()
	if s.partialLinks() < s.cfg.MaxPeers || now.Sub(s.lastReplace) < replaceEvery {
		return nil
	}
	untried := 0
	for addr, p := range s.candidates {
		if s.byID[p.ID] == nil && !s.banned[p.ID] {
			if b := s.dials[addr]; b == nil || b.fails == 0 {
				untried++
			}
		}
	}
	if untried == 0 {
		return nil
	}
	var worst *conn
	var worstRate, total float64
	n := 0
	for c := range s.conns {
		r := c.recvRate.rate() + c.sendRate.rate()
		total += r
		n++
		if c.role != wire.RolePeer || c.remoteDone || now.Sub(c.started) < replaceEvery {
			continue
		}
		if worst == nil || r < worstRate {
			worst, worstRate = c, r
		}
	}
	if worst == nil || n == 0 || worstRate > 0.1*total/float64(n) {
		return nil
	}
	s.lastReplace = now
	return worst
}

// backoff is the redial state of one candidate address, guarded by s.mu.
type backoff struct {
	fails int
	next  time.Time
	busy  bool
}

func (s *Swarm) backoffOK(addr string) bool {
	if s.dials == nil {
		s.dials = map[string]*backoff{}
	}
	b := s.dials[addr]
	if b == nil {
		b = &backoff{}
		s.dials[addr] = b
	}
	if b.busy || time.Now().Before(b.next) {
		return false
	}
	b.busy = true
	return true
}

func (s *Swarm) noteDial(addr string, err error) {
	b := s.dials[addr]
	if b == nil {
		return
	}
	b.busy = false
	if err == nil {
		b.fails = 0
		b.next = time.Now().Add(2 * time.Second)
		return
	}
	b.fails++
	d := time.Duration(1<<min(b.fails, 6)) * 500 * time.Millisecond
	b.next = time.Now().Add(d + time.Duration(rand.Int64N(int64(d/2+1))))
}
