package swarm

import (
	"context"
	"math/rand/v2"
	"time"

	"avalanche/internal/wire"
)

// stallTimeout is how long requested blocks may stay undelivered before the
// credit is given to other neighbours.
const stallTimeout = 5 * time.Second

// endgameSlack is how many blocks beyond what a generation still needs may
// be requested once nothing else is left to ask for.
const endgameSlack = 2

// schedule grants credit to neighbours: for each link with room in its
// pipeline, pick a generation it can help with and request blocks of it.
func (s *Swarm) schedule() {
	if s.cfg.Out == nil || s.isComplete() {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		if c.remote == nil {
			continue
		}
		// A link that delivered nothing for a while gives its credit back.
		if c.inflight > 0 && now.Sub(max(c.lastBlock, c.asked)) > stallTimeout {
			for g, n := range c.out {
				c.credit(g, int(n))
			}
			c.depth = max(2, c.depth/2)
		}
		conns = append(conns, c)
	}
	// Release slots of generations nothing is arriving for.
	for i := 0; i < len(s.active); i++ {
		g := s.active[i]
		if s.gens[g].rank.Load() == 0 && s.outstanding[g] == 0 {
			s.active = append(s.active[:i], s.active[i+1:]...)
			i--
		}
	}
	rand.Shuffle(len(conns), func(i, j int) { conns[i], conns[j] = conns[j], conns[i] })
	// Serve the neighbours with the most room first so fast links stay busy.
	for pass := 0; pass < 4; pass++ {
		progress := false
		for _, c := range conns {
			room := c.depth - c.inflight
			if room <= 0 {
				continue
			}
			g := s.pick(c)
			if g < 0 {
				continue
			}
			gen := s.gens[g]
			need := int(gen.blocks) - int(gen.rank.Load()) - int(s.outstanding[g])
			if need <= 0 {
				need = 1 // endgame
			}
			// Never ask a partial neighbour for more than it can hold.
			if int(c.remote[g]) < gen.blocks {
				need = min(need, int(c.remote[g])-int(c.out[g]))
			}
			n := min(room, need, wire.MaxRequest, max(1, c.depth/2))
			if n <= 0 {
				continue
			}
			if c.inflight == 0 {
				c.asked = now
			}
			c.inflight += n
			c.out[g] += int32(n)
			s.outstanding[g] += int32(n)
			c.enqueue(wire.Append(nil, wire.Request{Gen: uint32(g), Count: uint16(n)}))
			progress = true
		}
		if !progress {
			break
		}
	}
}

// usable reports whether c can probably send us an innovative block of g.
// Caller holds s.mu.
func (s *Swarm) usable(c *conn, g int) bool {
	gen := s.gens[g]
	r := int(c.remote[g])
	if r == 0 || gen.complete.Load() || !gen.hasSums.Load() {
		return false
	}
	// A whole generation yields innovative blocks with probability
	// 1 − 256^−(missing rank); only partial neighbours can be useless.
	if c.useless[g] && r < gen.blocks {
		return false
	}
	if r < gen.blocks && int(c.out[g]) >= r {
		return false
	}
	return true
}

// need returns how many more blocks of g we should request, counting
// blocks already on their way.
func (s *Swarm) need(g int) int {
	gen := s.gens[g]
	return gen.blocks - int(gen.rank.Load()) - int(s.outstanding[g])
}

// pick chooses the generation to request from c: an active generation c
// can help with that still needs blocks; else a new generation (rarest
// first, or the next in order when streaming) if a slot is free; else, in
// the endgame, an active generation that needs nothing more than what is
// in flight, to cover for slow links. Caller holds s.mu.
func (s *Swarm) pick(c *conn) int {
	best, bestScore := -1, -1
	for _, g := range s.active {
		if !s.usable(c, g) || s.need(g) <= 0 {
			continue
		}
		// Prefer generations closest to completion: they free a slot soonest
		// and become servable as whole generations. When streaming, prefer the
		// earliest.
		score := int(s.gens[g].rank.Load()) + int(s.outstanding[g])
		if s.cfg.Stream {
			score = len(s.gens) - g
		}
		if score > bestScore {
			best, bestScore = g, score
		}
	}
	if best >= 0 {
		return best
	}
	if len(s.active) < s.cfg.Slots {
		if g := s.choose(c); g >= 0 {
			s.active = append(s.active, g)
			return g
		}
	}
	// Endgame: everything left is active and covered by requests in flight.
	// Ask c for one extra block of a generation it can help with, so that a
	// slow link cannot hold the download hostage.
	for _, g := range s.active {
		if s.usable(c, g) && s.need(g) > -endgameSlack && c.out[g] == 0 {
			return g
		}
	}
	return -1
}

// choose selects a generation to start: one c holds, that we lack, whose
// checksums we have, and that nobody else is already decoding here.
// Rarest first (fewest blocks among neighbours), random among ties; in
// order when streaming. Caller holds s.mu.
func (s *Swarm) choose(c *conn) int {
	best, bestAvail, ties := -1, int32(0), 0
	for g := range s.gens {
		gen := s.gens[g]
		if c.remote[g] == 0 || gen.complete.Load() || !gen.hasSums.Load() || s.isActive(g) ||
			c.useless[g] && int(c.remote[g]) < gen.blocks {
			continue
		}
		if s.cfg.Stream {
			return g
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
	return best
}

// maintain dials candidates while the swarm needs more neighbours and
// drops links that are of no use to either side.
func (s *Swarm) maintain() {
	s.mu.Lock()
	complete := s.isComplete()
	var idle []*conn
	for c := range s.conns {
		if complete && c.remoteDone && c.remote != nil {
			idle = append(idle, c)
		}
	}
	want := s.cfg.MaxPeers - len(s.conns)
	var dial []PeerAddr
	if !complete && want > 0 {
		connected := map[string]bool{}
		for c := range s.conns {
			connected[c.addr.String()] = true
		}
		for addr, p := range s.candidates {
			if len(dial) >= min(want, 8) {
				break
			}
			if connected[addr] || s.byID[p.ID] != nil && !p.ID.IsZero() || s.banned[p.ID] {
				continue
			}
			if !s.backoffOK(addr) {
				continue
			}
			dial = append(dial, p)
		}
	}
	s.mu.Unlock()
	for _, c := range idle {
		go c.close(wire.ByeNormal, "both complete", nil)
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

// backoff state per candidate address, guarded by s.mu.
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
