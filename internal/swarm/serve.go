package swarm

import (
	"fmt"

	"avalanche/internal/identity"
	"avalanche/internal/wire"
)

// produce writes into payload the block a neighbour wanted. A whole
// generation is combined from its data; a partial one from the decoder's
// rows (the vector must lie in their span). A seed that already sent a
// generation SeedCap times its size declines further non-urgent wants for
// it. On failure it returns the reason to give the neighbour.
func (s *Swarm) produce(w want, payload []byte) (wire.RejectReason, bool) {
	gen := s.gens[w.gen]
	if len(w.v) != gen.blocks {
		return wire.RejectNotHeld, false
	}
	if gen.complete.Load() {
		if s.cfg.SeedCap > 0 && !w.urgent && float64(gen.sent.Load()) >= s.cfg.SeedCap*float64(gen.blocks) {
			return wire.RejectCapped, false
		}
		data, release, err := s.cache.get(w.gen)
		if err != nil {
			s.log.Warn("cannot read generation", "gen", w.gen, "err", err)
			return wire.RejectNotHeld, false
		}
		defer release()
		if err := s.combine(data[:gen.size], w.v, payload); err != nil {
			s.log.Error("encode failed", "gen", w.gen, "err", err)
			return wire.RejectNotHeld, false
		}
		gen.sent.Add(1)
		return 0, true
	}
	gen.mu.Lock()
	defer gen.mu.Unlock()
	if gen.dec == nil || gen.dec.d.Combine(w.v, payload) != nil {
		return wire.RejectNotHeld, false
	}
	return 0, true
}

// checkKey is a downloader's checksum key as issued by the origin.
type checkKey struct {
	key    [32]byte
	checks int
}

// issueKey derives the checksum key of a neighbour (origin only).
func (s *Swarm) issueKey(peer identity.ID) [32]byte {
	return deriveKey(s.cfg.MasterKey, s.id, peer)
}

// serveSums computes and sends the checksums of generations
// [first, first+n) under the neighbour's key (origin only).
func (c *conn) serveSums(first, n int) {
	s := c.s
	key := s.issueKey(c.peer)
	for g := first; g < first+n; g++ {
		select {
		case <-c.closed:
			return
		default:
		}
		data, release, err := s.cache.get(g)
		if err != nil {
			s.log.Warn("cannot compute checksums", "gen", g, "err", err)
			return
		}
		sums, err := s.sourceSums(key, uint32(g), data[:s.gens[g].size])
		release()
		if err != nil {
			s.log.Error("checksums failed", "gen", g, "err", err)
			return
		}
		c.enqueue(wire.Append(nil, wire.Sums{Gen: uint32(g), Sums: sums}))
	}
}

// setKey installs our checksum key and asks the origin for the checksums of
// every generation we lack.
func (s *Swarm) setKey(key [32]byte, checks int, from *conn) {
	s.keyMu.Lock()
	if s.key != nil && s.key.key != key {
		s.keyMu.Unlock()
		s.log.Warn("origin sent a different checksum key; ignoring it", "peer", from.peer.Short())
		return
	}
	first := s.key == nil
	s.key = &checkKey{key: key, checks: checks}
	s.keyMu.Unlock()
	// Ask for the checksums of missing generations in runs.
	s.mu.Lock()
	var runs [][2]int
	for g, gen := range s.gens {
		if gen.complete.Load() || gen.hasSums.Load() || (!first && s.sumsAsked[g]) {
			continue
		}
		s.sumsAsked[g] = true
		if n := len(runs); n > 0 && runs[n-1][0]+runs[n-1][1] == g {
			runs[n-1][1]++
		} else {
			runs = append(runs, [2]int{g, 1})
		}
	}
	s.mu.Unlock()
	for _, r := range runs {
		from.enqueue(wire.Append(nil, wire.SumsReq{First: uint32(r[0]), N: uint32(r[1])}))
	}
}

// setSums installs the checksums of generation g.
func (s *Swarm) setSums(g int, sums []byte) error {
	s.keyMu.Lock()
	key := s.key
	s.keyMu.Unlock()
	gen := s.gens[g]
	if key == nil || len(sums) != gen.blocks*key.checks {
		return fmt.Errorf("%w: checksums of generation %d do not fit the key", errProtocol, g)
	}
	chk, err := s.newChecker(key.key, key.checks, uint32(g))
	if err != nil {
		return err
	}
	gen.mu.Lock()
	if gen.sums == nil {
		gen.sums = append([]byte(nil), sums...)
		gen.checker = chk
		gen.hasSums.Store(true)
	}
	gen.mu.Unlock()
	s.kick()
	return nil
}

// verify checks a coded block against our checksums of generation g.
func (s *Swarm) verify(g int, coeffs, payload, sums []byte) bool {
	gen := s.gens[g]
	gen.mu.Lock()
	chk := gen.checker
	gen.mu.Unlock()
	return chk != nil && chk.verify(coeffs, payload, sums)
}
