package swarm

import (
	"math/rand/v2"

	"avalanche/internal/lincheck"
	"avalanche/internal/manifest"
	"avalanche/internal/identity"
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

func (d *decoder) rank() int     { return d.d.Rank() }
func (d *decoder) data() []byte  { return d.d.Data() }
func (d *decoder) reset()        { d.d.Reset() }

func (d *decoder) recode(rng *rand.Rand, coeffs, payload []byte) {
	d.d.Recode(rng, coeffs, payload)
}

// newDecoder returns a decoder for gen, reusing a released one when the
// shape matches. Caller holds gen.mu.
func (s *Swarm) newDecoder(gen *generation) *decoder {
	if gen.blocks == s.m.K {
		if d, ok := s.decoders.Get().(*decoder); ok && d != nil {
			d.reset()
			return d
		}
	}
	d, err := rlnc.NewDecoder(gen.blocks, s.m.BlockSize)
	if err != nil {
		panic(err) // parameters were validated by the manifest
	}
	return &decoder{d: d}
}

// releaseDecoder returns gen's decoder to the pool. Caller holds gen.mu.
func (s *Swarm) releaseDecoder(gen *generation) {
	if gen.dec != nil && gen.blocks == s.m.K {
		s.decoders.Put(gen.dec)
	}
	gen.dec = nil
}

// encodeBlock writes a coded block of a whole generation held in data:
// source block i when i ≥ 0 (systematic), else a dense random combination.
func encodeBlock(data []byte, blocks, blockSize, i int, rng *rand.Rand, coeffs, payload []byte) {
	enc := rlnc.NewEncoder(blocks, blockSize, data)
	if i >= 0 {
		enc.Systematic(i, coeffs, payload)
		return
	}
	enc.Random(rng, coeffs, payload)
}

// deriveKey derives a neighbour's checksum key from the origin's master
// secret, the content and the neighbour's identity.
func deriveKey(master []byte, content manifest.ID, peer identity.ID) [32]byte {
	return lincheck.DeriveKey(master, append(content[:], peer[:]...))
}

// sourceSums computes the checksums of a generation's source blocks.
func sourceSums(key [32]byte, checks int, gen uint32, data []byte, blocks, blockSize int) []byte {
	chk, err := lincheck.NewChecker(key, gen, blockSize, checks)
	if err != nil {
		panic(err)
	}
	out := make([]byte, blocks*checks)
	chk.SourceSums(data, blocks, out)
	return out
}

// checker verifies blocks of one generation.
type checker struct{ c *lincheck.Checker }

func newChecker(key [32]byte, checks int, gen uint32, blockSize int) (*checker, error) {
	c, err := lincheck.NewChecker(key, gen, blockSize, checks)
	if err != nil {
		return nil, err
	}
	return &checker{c}, nil
}

func (c *checker) verify(coeffs, payload, sums []byte) bool { return c.c.Verify(coeffs, payload, sums) }
