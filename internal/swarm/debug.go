package swarm

import (
	"fmt"
	"strings"
	"time"
)

// DebugState describes the scheduler's view of every incomplete generation,
// for diagnosing stalls.
func (s *Swarm) DebugState() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "active %v\n", s.active)
	for g, gen := range s.gens {
		if gen.complete.Load() {
			continue
		}
		gen.mu.Lock()
		basis := -1
		if gen.basis != nil {
			basis = gen.basis.Rank()
		}
		fmt.Fprintf(&b, "gen %d: rank %d basis %d pending %d outstanding %d sums %v progress %v ago\n", g, gen.rank.Load(), basis,
			len(gen.pending), s.outstanding[g], gen.hasSums.Load(), time.Since(time.Unix(0, gen.progress.Load())).Round(time.Millisecond))
		for _, p := range gen.pending {
			fmt.Fprintf(&b, "   pending from %s since %v\n", p.c.peer.Short(), time.Since(p.at).Round(time.Millisecond))
		}
		gen.mu.Unlock()
		for c := range s.conns {
			if c.remote == nil {
				fmt.Fprintf(&b, "   %s: no state\n", c.peer.Short())
				continue
			}
			fmt.Fprintf(&b, "   %s %s: rank %d useless %v capped %v offerReqs %v wantsOut %d depth %d\n", c.peer.Short(), c.role,
				c.remote[g], c.useless[g], c.capped[g], c.offerReqs[g], c.wantsOut, c.depth)
		}
	}
	return b.String()
}
