package rlnc

import (
	"fmt"
	"math/rand/v2"

	"avalanche/internal/gf256"
)

// Decoder recovers one generation from coded blocks by progressive
// Gauss–Jordan elimination. It keeps the blocks it has accepted as rows of a
// matrix in reduced row echelon form (RREF), each row stored at the index of
// its pivot column, so that at full rank row i is source block i and the
// rows, back to back, are the generation's bytes.
//
// Add works on the coefficients first: a block whose coefficient vector
// reduces to zero is not innovative and is dropped before any payload
// arithmetic. An innovative block costs one pass over the stored rows, done
// in column chunks with the fused kernels: the new row is reduced by every
// stored row (many inputs, one output) and then eliminated from every stored
// row (one input, many outputs) while the chunk is in cache.
//
// A Decoder holds at most n·(B+n) bytes of rows plus O(n) of scratch. The
// rows span the same space as the blocks received, so a peer recodes from
// them (Recode) without keeping the blocks a second time.
//
// A Decoder is not safe for concurrent use.
type Decoder struct {
	n, bs  int
	coeffs []byte   // n·n; the coefficient row of pivot s at coeffs[s·n:]
	data   []byte   // n·B; the payload row of pivot s at data[s·B:]
	rows   [][]byte // rows[s] = data[s·B:(s+1)·B]
	has    []bool   // has[s]: a row with pivot s is stored
	rank   int

	// Scratch, sized once.
	vec   []byte   // the coefficient vector being reduced
	mul   []byte   // coefficients of the payload product
	ins   [][]byte // its inputs
	outs  [][]byte // rows to eliminate the new pivot from
	dot   gf256.Matrix
	elim  gf256.Matrix
	inner [1][]byte
}

// chunk is the width of the column chunks in which Add updates the rows:
// small enough that the chunk of every row (n·chunk bytes) stays in L2
// between the reduction and the elimination.
const chunk = 4096

// NewDecoder returns an empty Decoder for a generation of blocks blocks
// (1..K, Generation.Blocks) of p.BlockSize bytes.
func NewDecoder(p Params, blocks int) (*Decoder, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if blocks < 1 || blocks > p.K {
		return nil, fmt.Errorf("%w (%d, k = %d)", ErrBlocks, blocks, p.K)
	}
	n, bs := blocks, p.BlockSize
	d := &Decoder{
		n:      n,
		bs:     bs,
		coeffs: make([]byte, n*n),
		data:   make([]byte, n*bs),
		rows:   make([][]byte, n),
		has:    make([]bool, n),
		vec:    make([]byte, n),
		mul:    make([]byte, n+1),
		ins:    make([][]byte, 0, n+1),
		outs:   make([][]byte, 0, n),
	}
	for s := range d.rows {
		d.rows[s] = d.data[s*bs : (s+1)*bs : (s+1)*bs]
	}
	// Size the kernels' tables for the largest products Add needs.
	d.dot.Reset(1, n+1, d.mul)
	d.elim.Reset(n, 1, d.mul)
	return d, nil
}

// Blocks returns n, the generation's block count and coefficient length.
func (d *Decoder) Blocks() int { return d.n }

// BlockSize returns B, the payload length.
func (d *Decoder) BlockSize() int { return d.bs }

// Rank returns the number of innovative blocks accepted so far.
func (d *Decoder) Rank() int { return d.rank }

// Complete reports whether the generation is decoded: Rank() == Blocks().
func (d *Decoder) Complete() bool { return d.rank == d.n }

// Reset empties the Decoder for another generation of the same shape,
// keeping its memory.
func (d *Decoder) Reset() {
	clear(d.has)
	d.rank = 0
}

// reduce copies coeffs into d.vec, eliminates every stored pivot from it and
// returns the first non-zero column left, or -1 if the vector reduced to
// zero. Because the stored rows are in RREF, the multiplier of row s is
// coeffs[s] whatever the order of elimination.
func (d *Decoder) reduce(coeffs []byte) int {
	v := d.vec
	copy(v, coeffs)
	if d.rank > 0 {
		for s, ok := range d.has {
			if ok && coeffs[s] != 0 {
				gf256.MulAddSlice(coeffs[s], d.coeffs[s*d.n:(s+1)*d.n], v)
			}
		}
	}
	for q, c := range v {
		if c != 0 {
			return q
		}
	}
	return -1
}

// Innovative reports whether a block with these coefficients would raise
// the rank. It looks at the coefficients only (O(n²)) and changes nothing.
// A vector of the wrong length is not innovative.
func (d *Decoder) Innovative(coeffs []byte) bool {
	if len(coeffs) != d.n || d.rank == d.n {
		return false
	}
	return d.reduce(coeffs) >= 0
}

// Add offers a coded block to the Decoder and reports whether it was
// innovative. A non-innovative block is dropped after O(n²) work on the
// coefficients; an innovative one is reduced and copied into the Decoder's
// own storage, so the caller may reuse both buffers as soon as Add returns.
// payload must not alias the Decoder's rows. The error is non-nil only for
// buffers of the wrong length.
func (d *Decoder) Add(coeffs, payload []byte) (bool, error) {
	if len(coeffs) != d.n {
		return false, fmt.Errorf("%w (%d, want %d)", ErrCoeffLength, len(coeffs), d.n)
	}
	if len(payload) != d.bs {
		return false, fmt.Errorf("%w (%d, want %d)", ErrPayloadLength, len(payload), d.bs)
	}
	if d.rank == d.n {
		return false, nil
	}
	q := d.reduce(coeffs)
	if q < 0 {
		return false, nil
	}
	n := d.n
	inv := gf256.Inv(d.vec[q])
	gf256.MulSlice(inv, d.vec, d.vec)

	// The new payload row: inv·(payload + Σ_s coeffs[s]·row_s).
	d.mul[0] = inv
	d.ins = append(d.ins[:0], payload)
	m := 1
	for s, ok := range d.has {
		if !ok {
			continue
		}
		if c := coeffs[s]; c != 0 {
			d.mul[m] = gf256.Mul(inv, c)
			d.ins = append(d.ins, d.rows[s])
			m++
		}
	}
	d.dot.Reset(1, m, d.mul[:m])
	// The rows the new pivot must be eliminated from, and their multipliers
	// g_s = coefficient q of row s (d.mul is free again: Reset copied it).
	d.outs = d.outs[:0]
	g := d.mul[:0]
	for s, ok := range d.has {
		if ok {
			if c := d.coeffs[s*n+q]; c != 0 {
				g = append(g, c)
				d.outs = append(d.outs, d.rows[s])
			}
		}
	}
	d.elim.Reset(len(g), 1, g)

	row := d.rows[q]
	d.inner[0] = row
	newRow := d.inner[:]
	for lo := 0; lo < d.bs; lo += chunk {
		hi := min(lo+chunk, d.bs)
		if m == 1 {
			gf256.MulSlice(inv, payload[lo:hi], row[lo:hi])
		} else {
			d.dot.MulRange(d.ins, newRow, lo, hi)
		}
		if len(d.outs) > 0 {
			d.elim.MulAddRange(newRow, d.outs, lo, hi)
		}
	}

	// The same operations on the coefficient rows.
	for s, ok := range d.has {
		if ok {
			if c := d.coeffs[s*n+q]; c != 0 {
				gf256.MulAddSlice(c, d.vec, d.coeffs[s*n:(s+1)*n])
			}
		}
	}
	copy(d.coeffs[q*n:(q+1)*n], d.vec)
	d.has[q] = true
	d.rank++
	d.ins[0] = nil // do not keep the caller's buffer alive
	return true, nil
}

// Data returns the decoded generation, n·B bytes with source block i at
// [i·B, (i+1)·B), or nil while the Decoder is not complete. The caller
// keeps the first Generation.Length bytes; the rest is padding. The slice is
// the Decoder's own storage: it stays valid until the next Reset.
func (d *Decoder) Data() []byte {
	if d.rank != d.n {
		return nil
	}
	return d.data
}

// Source returns source block i if it is already known — its row has been
// reduced to the unit vector e_i, as happens at once for a systematic block
// — and false otherwise. The slice is the Decoder's storage, valid until the
// next Add or Reset.
func (d *Decoder) Source(i int) ([]byte, bool) {
	if i < 0 || i >= d.n || !d.has[i] {
		return nil, false
	}
	for j, c := range d.coeffs[i*d.n : (i+1)*d.n] {
		if c != 0 && j != i {
			return nil, false
		}
	}
	return d.rows[i], true
}

// Recode writes a fresh random combination of the stored rows: coeffs
// (Blocks() bytes) receives its coefficients over the source blocks and
// payload (BlockSize() bytes) the matching sum. Because the rows span the
// same space as the blocks received, the result is as useful as a
// combination of those blocks. It fails with ErrNothingToSend at rank 0.
func (d *Decoder) Recode(rng *rand.Rand, coeffs, payload []byte) error {
	var one [1][]byte
	one[0] = payload
	return d.RecodeBatch(rng, coeffs, one[:])
}

// RecodeBatch writes m = len(payloads) random combinations at once, reading
// each row once for up to four of them. coeffs receives the m coefficient
// vectors back to back (m·Blocks() bytes).
func (d *Decoder) RecodeBatch(rng *rand.Rand, coeffs []byte, payloads [][]byte) error {
	m := len(payloads)
	if len(coeffs) != m*d.n {
		return fmt.Errorf("%w (%d for %d vectors of %d)", ErrCoeffLength, len(coeffs), m, d.n)
	}
	for _, p := range payloads {
		if len(p) != d.bs {
			return fmt.Errorf("%w (%d, want %d)", ErrPayloadLength, len(p), d.bs)
		}
	}
	if d.rank == 0 {
		return ErrNothingToSend
	}
	if m == 0 {
		return nil
	}
	// Random weights for the stored rows, m·rank of them; d.ins lists the rows.
	d.ins = d.ins[:0]
	for s, ok := range d.has {
		if ok {
			d.ins = append(d.ins, d.rows[s])
		}
	}
	r := d.rank
	w := d.weights(m * r)
	RandomCoefficients(rng, w)
	d.dot.Reset(m, r, w)
	d.dot.Mul(d.ins, payloads)
	// Coefficients: vector j = Σ_t w[j·r+t]·coeffRow(t-th stored row).
	clear(coeffs)
	for j := 0; j < m; j++ {
		out := coeffs[j*d.n : (j+1)*d.n]
		t := 0
		for s, ok := range d.has {
			if ok {
				gf256.MulAddSlice(w[j*r+t], d.coeffs[s*d.n:(s+1)*d.n], out)
				t++
			}
		}
	}
	d.ins = d.ins[:0]
	return nil
}

// weights returns scratch for n recoding weights, grown as needed.
func (d *Decoder) weights(n int) []byte {
	if cap(d.mul) < n {
		d.mul = make([]byte, n)
	}
	return d.mul[:n]
}
