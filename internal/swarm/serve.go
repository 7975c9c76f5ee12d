package swarm

import (
	"fmt"
	"math/rand/v2"

	"avalanche/internal/identity"
	"avalanche/internal/wire"
)

// produce writes a fresh coded block of generation g into coeffs (length
// = the generation's block count) and payload. A whole generation is
// encoded from its data — systematic blocks first when this node is the
// origin — and a partial one is recoded from the decoder's rows. It
// reports false if this node holds nothing of g.
func (s *Swarm) produce(g int, rng *rand.Rand, coeffs, payload []byte) bool {
	gen := s.gens[g]
	if gen.complete.Load() {
		data, release, err := s.cache.get(g)
		if err != nil {
			s.log.Warn("cannot read generation", "gen", g, "err", err)
			return false
		}
		defer release()
		i := -1
		if s.node.cfg.Role == wire.RoleOrigin || s.node.cfg.Role == wire.RoleEdge {
			if n := gen.sent.Add(1) - 1; n < int64(gen.blocks) {
				i = int(n)
			}
		}
		encodeBlock(data, gen.blocks, s.m.BlockSize, i, rng, coeffs, payload)
		return true
	}
	gen.mu.Lock()
	defer gen.mu.Unlock()
	if gen.dec == nil || gen.dec.rank() == 0 {
		return false
	}
	gen.dec.recode(rng, coeffs, payload)
	return true
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
		sums := sourceSums(key, s.checks, uint32(g), data, s.gens[g].blocks, s.m.BlockSize)
		release()
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
	chk, err := newChecker(key.key, key.checks, uint32(g), s.m.BlockSize)
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
