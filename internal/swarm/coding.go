package swarm

import (
	"math/rand/v2"
	"sync"

	"avalanche/internal/identity"
	"avalanche/internal/lincheck"
	"avalanche/internal/manifest"
	"avalanche/internal/rlnc"
)

// This file adapts the coding core (packages rlnc and lincheck) to the
// engine's needs.

// decoder is one generation's progressive decoder.
type decoder struct {
	d *rlnc.Decoder
}

func (d *decoder) innovative(coeffs []byte) bool { return d.d.Innovative(coeffs) }

func (d *decoder) add(coeffs, payload []byte) bool {
	ok, err := d.d.Add(coeffs, payload)
	return err == nil && ok
}

func (d *decoder) rank() int    { return d.d.Rank() }
func (d *decoder) data() []byte { return d.d.Data() }
func (d *decoder) reset()       { d.d.Reset() }

func (d *decoder) recode(rng *rand.Rand, coeffs, payload []byte) {
	d.d.Recode(rng, coeffs, payload)
}

func (s *Swarm) params() rlnc.Params { return rlnc.Params{K: s.m.K, BlockSize: s.m.BlockSize} }

// newDecoder returns a decoder for gen, reusing a released one when the
// shape matches. Caller holds gen.mu.
func (s *Swarm) newDecoder(gen *generation) *decoder {
	if gen.blocks == s.m.K {
		s.decMu.Lock()
		if n := len(s.decoders); n > 0 {
			d := s.decoders[n-1]
			s.decoders = s.decoders[:n-1]
			s.decMu.Unlock()
			d.reset()
			return d
		}
		s.decMu.Unlock()
	}
	var rows []byte
	if gen.blocks == s.m.K {
		rows = s.bufs.get()
	}
	d, err := rlnc.NewDecoderIn(s.params(), gen.blocks, rows)
	if err != nil {
		panic(err) // parameters were validated by the manifest
	}
	return &decoder{d: d}
}

// releaseDecoder keeps gen's decoder for another generation, as many as
// may be active at once, and gives the rows of any other back to the slab.
// Caller holds gen.mu.
func (s *Swarm) releaseDecoder(gen *generation) {
	if gen.dec != nil && gen.blocks == s.m.K {
		s.decMu.Lock()
		kept := len(s.decoders) < 2*max(1, s.cfg.Slots)
		if kept {
			s.decoders = append(s.decoders, gen.dec)
		}
		s.decMu.Unlock()
		if !kept {
			s.bufs.put(gen.dec.data())
		}
	}
	gen.dec = nil
}

// combine writes the block with coefficient vector v of a whole
// generation whose real bytes are data.
func (s *Swarm) combine(data, v, payload []byte) error {
	enc, err := rlnc.NewEncoder(s.params(), data, s.encRand)
	if err != nil {
		return err
	}
	return enc.Combine(v, payload)
}

// deriveKey derives a neighbour's checksum key from the origin's master
// secret, the content and the neighbour's identity.
func deriveKey(master []byte, content manifest.ID, peer identity.ID) [32]byte {
	return lincheck.DeriveKey(master, append(content[:], peer[:]...))
}

// sourceSums computes the checksums of a generation's source blocks; data
// holds the generation's real bytes.
func (s *Swarm) sourceSums(key [32]byte, gen uint32, data []byte) ([]byte, error) {
	chk, err := lincheck.NewChecker(key, s.params(), s.checks, uint64(gen))
	if err != nil {
		return nil, err
	}
	out := make([]byte, s.gens[gen].blocks*s.checks)
	if err := chk.SourceSums(data, out); err != nil {
		return nil, err
	}
	return out, nil
}

// checker verifies blocks of one generation; safe for concurrent use.
type checker struct {
	mu sync.Mutex
	c  *lincheck.Checker
}

func (s *Swarm) newChecker(key [32]byte, checks int, gen uint32) (*checker, error) {
	c, err := lincheck.NewChecker(key, s.params(), checks, uint64(gen))
	if err != nil {
		return nil, err
	}
	return &checker{c: c}, nil
}

func (c *checker) verify(coeffs, payload, sums []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.c.Verify(coeffs, payload, sums)
}
