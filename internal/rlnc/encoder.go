package rlnc

import (
	"fmt"
	"math/rand/v2"

	"avalanche/internal/gf256"
)

// Encoder produces coded blocks of one generation from its real bytes. The
// blocks are read in place from the caller's slice (the last one is padded
// implicitly, nothing is copied), so the caller must not modify the data
// while the Encoder is in use.
//
// Next hands out the source blocks first — an original block is innovative
// for everyone who lacks it — and dense random combinations afterwards.
// Random and RandomBatch draw their coefficients from the Encoder's PRNG;
// Combine and CombineBatch take them from the caller. All of them write
// into caller-provided buffers and allocate nothing.
//
// An Encoder is not safe for concurrent use. Several Encoders may share the
// same data, which is how one generation is encoded on several cores.
type Encoder struct {
	bs      int      // block size B
	n       int      // blocks in the generation
	full    [][]byte // the blocks of exactly B real bytes
	partial []byte   // the real bytes of a last, short block; nil if none
	rng     *rand.Rand
	next    int // source blocks handed out by Next so far
	mat     gf256.Matrix
	gather  []byte // coefficients of the full blocks, row-major
}

// NewEncoder returns an Encoder for a generation whose real bytes are data,
// 1..K·BlockSize bytes long, coded under p. It draws random coefficients
// from rng, or from a PRNG seeded at random when rng is nil.
func NewEncoder(p Params, data []byte, rng *rand.Rand) (*Encoder, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if len(data) < 1 || len(data) > p.GenerationSize() {
		return nil, fmt.Errorf("%w (%d bytes)", ErrDataLength, len(data))
	}
	if rng == nil {
		rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	bs := p.BlockSize
	e := &Encoder{bs: bs, n: (len(data) + bs - 1) / bs, rng: rng}
	nf := len(data) / bs
	e.full = make([][]byte, nf)
	for i := range e.full {
		e.full[i] = data[i*bs : (i+1)*bs : (i+1)*bs]
	}
	if nf < e.n {
		e.partial = data[nf*bs:]
	}
	return e, nil
}

// Blocks returns n, the number of blocks in the generation and the length
// of its coefficient vectors.
func (e *Encoder) Blocks() int { return e.n }

// BlockSize returns B, the length of every payload.
func (e *Encoder) BlockSize() int { return e.bs }

// Next writes the next coded block into coeffs (Blocks() bytes) and payload
// (BlockSize() bytes): source block 0, 1, …, n-1 on the first n calls, then
// random combinations.
func (e *Encoder) Next(coeffs, payload []byte) error {
	if e.next < e.n {
		if err := e.Systematic(e.next, coeffs, payload); err != nil {
			return err
		}
		e.next++
		return nil
	}
	return e.Random(coeffs, payload)
}

// Systematic writes source block i as a coded block: the unit coefficient
// vector e_i and the block itself, zero-padded to B bytes.
func (e *Encoder) Systematic(i int, coeffs, payload []byte) error {
	if err := e.checkBuffers(coeffs, payload); err != nil {
		return err
	}
	if i < 0 || i >= e.n {
		return fmt.Errorf("%w (%d of %d)", ErrBlockIndex, i, e.n)
	}
	clear(coeffs)
	coeffs[i] = 1
	if i < len(e.full) {
		copy(payload, e.full[i])
		return nil
	}
	copy(payload, e.partial)
	clear(payload[len(e.partial):])
	return nil
}

// Random writes a dense random combination of the source blocks: coeffs is
// filled with random non-zero coefficients from the Encoder's PRNG and
// payload with the matching sum.
func (e *Encoder) Random(coeffs, payload []byte) error {
	if err := e.checkBuffers(coeffs, payload); err != nil {
		return err
	}
	RandomCoefficients(e.rng, coeffs)
	e.combine(1, coeffs, payload, nil)
	return nil
}

// Combine writes into payload the combination of the source blocks with the
// caller's coefficients: payload = Σ_i coeffs[i]·block_i.
func (e *Encoder) Combine(coeffs, payload []byte) error {
	if err := e.checkBuffers(coeffs, payload); err != nil {
		return err
	}
	e.combine(1, coeffs, payload, nil)
	return nil
}

// RandomBatch writes m = len(payloads) random combinations at once, reading
// the generation once for up to four of them (the fused kernel). coeffs
// receives the m coefficient vectors back to back (m·Blocks() bytes, vector
// j at coeffs[j·n:(j+1)·n]).
func (e *Encoder) RandomBatch(coeffs []byte, payloads [][]byte) error {
	if err := e.checkBatch(coeffs, payloads); err != nil {
		return err
	}
	RandomCoefficients(e.rng, coeffs)
	e.combine(len(payloads), coeffs, nil, payloads)
	return nil
}

// CombineBatch is the batch form of Combine: payloads[j] = Σ_i
// coeffs[j·n+i]·block_i for every j.
func (e *Encoder) CombineBatch(coeffs []byte, payloads [][]byte) error {
	if err := e.checkBatch(coeffs, payloads); err != nil {
		return err
	}
	e.combine(len(payloads), coeffs, nil, payloads)
	return nil
}

func (e *Encoder) checkBuffers(coeffs, payload []byte) error {
	if len(coeffs) != e.n {
		return fmt.Errorf("%w (%d, want %d)", ErrCoeffLength, len(coeffs), e.n)
	}
	if len(payload) != e.bs {
		return fmt.Errorf("%w (%d, want %d)", ErrPayloadLength, len(payload), e.bs)
	}
	return nil
}

func (e *Encoder) checkBatch(coeffs []byte, payloads [][]byte) error {
	if len(coeffs) != len(payloads)*e.n {
		return fmt.Errorf("%w (%d for %d vectors of %d)", ErrCoeffLength, len(coeffs), len(payloads), e.n)
	}
	for _, p := range payloads {
		if len(p) != e.bs {
			return fmt.Errorf("%w (%d, want %d)", ErrPayloadLength, len(p), e.bs)
		}
	}
	return nil
}

// combine computes m payloads from m coefficient vectors (row-major, n
// each). With m == 1 the output is payload, else payloads.
func (e *Encoder) combine(m int, coeffs, payload []byte, payloads [][]byte) {
	var one [1][]byte
	outs := payloads
	if m == 1 && payloads == nil {
		one[0] = payload
		outs = one[:]
	}
	nf := len(e.full)
	if nf > 0 {
		c := coeffs
		if e.partial != nil {
			// Gather the coefficients of the full blocks into n-1 columns.
			e.gather = grow(e.gather, m*nf)
			for j := 0; j < m; j++ {
				copy(e.gather[j*nf:(j+1)*nf], coeffs[j*e.n:j*e.n+nf])
			}
			c = e.gather
		}
		e.mat.Reset(m, nf, c)
		e.mat.Mul(e.full, outs)
	}
	if e.partial == nil {
		return
	}
	for j, o := range outs {
		c := coeffs[j*e.n+nf]
		if nf == 0 {
			gf256.MulSlice(c, e.partial, o)
			clear(o[len(e.partial):])
			continue
		}
		gf256.MulAddSlice(c, e.partial, o)
	}
}

// RandomCoefficients fills coeffs with uniformly random non-zero field
// elements from rng: the dense coefficient vectors of Random and Recode.
func RandomCoefficients(rng *rand.Rand, coeffs []byte) {
	for i := 0; i < len(coeffs); {
		x := rng.Uint64()
		for b := 0; b < 8 && i < len(coeffs); b++ {
			if c := byte(x >> (8 * b)); c != 0 {
				coeffs[i] = c
				i++
			}
		}
	}
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}
