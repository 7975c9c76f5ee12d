package rlnc

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"avalanche/internal/gf256"
)

// ErrNotInSpan is returned by Decoder.Combine for a coefficient vector the
// decoder's rows do not span.
var ErrNotInSpan = errors.New("rlnc: vector not in the span of the rows held")

// Combine writes into payload the block whose coefficient vector is coeffs,
// which must lie in the span of the rows held. Because the rows are in
// reduced row echelon form, the block is Σ_s coeffs[s]·row_s over the pivot
// columns s; the other entries of coeffs are implied. This is how a partial
// peer serves a vector it offered earlier even if it has decoded more rows
// since: the span only grows, and the pivot weights stay right.
func (d *Decoder) Combine(coeffs, payload []byte) error {
	if len(coeffs) != d.n {
		return fmt.Errorf("%w (%d, want %d)", ErrCoeffLength, len(coeffs), d.n)
	}
	if len(payload) != d.bs {
		return fmt.Errorf("%w (%d, want %d)", ErrPayloadLength, len(payload), d.bs)
	}
	if d.reduce(coeffs) >= 0 {
		return ErrNotInSpan
	}
	d.flush()
	if s, c := single(coeffs); c != 0 {
		// One row: a copy or one multiplication, no matrix to set up.
		gf256.MulSlice(c, d.rows[s], payload)
		return nil
	}
	d.ins = d.ins[:0]
	w := d.weights(d.n)[:0]
	for s, ok := range d.has {
		if ok && coeffs[s] != 0 {
			d.ins = append(d.ins, d.rows[s])
			w = append(w, coeffs[s])
		}
	}
	if len(w) == 0 {
		clear(payload)
		return nil
	}
	var one [1][]byte
	one[0] = payload
	d.rec.Reset(1, len(w), w)
	d.rec.Mul(d.ins, one[:])
	d.ins = d.ins[:0]
	return nil
}

// single returns the index and value of the only non-zero entry of v, or
// c = 0 if v has none or several.
func single(v []byte) (i int, c byte) {
	i = -1
	for j, x := range v {
		if x != 0 {
			if i >= 0 {
				return 0, 0
			}
			i, c = j, x
		}
	}
	if i < 0 {
		return 0, 0
	}
	return i, c
}

// Unit reports whether v is the unit vector e_i and returns i.
func Unit(v []byte) (int, bool) {
	i, c := single(v)
	return i, c == 1
}

// UnitRow reports whether the decoder holds source block s as is: its row
// of pivot s is the unit vector e_s. Such a row is served by a copy
// (Combine with e_s) and costs a receiver whose rows are units too nothing
// but that copy to decode: peers that trade units trade like BitTorrent
// peers, with no field arithmetic at all.
func (d *Decoder) UnitRow(s int) bool {
	return s >= 0 && s < d.n && d.has[s] && isUnitRow(d.coeffs[s*d.n:(s+1)*d.n], s)
}

func isUnitRow(row []byte, s int) bool {
	if row[s] != 1 {
		return false
	}
	for j, x := range row {
		if x != 0 && j != s {
			return false
		}
	}
	return true
}

// SpanVector writes into coeffs a random vector of the span of the rows
// held (a coefficient vector this decoder could serve with Combine),
// without touching any payload: O(rank·n). It fails with ErrNothingToSend
// at rank 0.
func (d *Decoder) SpanVector(rng *rand.Rand, coeffs []byte) error {
	if len(coeffs) != d.n {
		return fmt.Errorf("%w (%d, want %d)", ErrCoeffLength, len(coeffs), d.n)
	}
	if d.rank == 0 {
		return ErrNothingToSend
	}
	for {
		clear(coeffs)
		for s, ok := range d.has {
			if ok {
				if w := byte(rng.Uint32()); w != 0 {
					gf256.MulAddSlice(w, d.coeffs[s*d.n:(s+1)*d.n], coeffs)
				}
			}
		}
		for _, c := range coeffs {
			if c != 0 {
				return nil
			}
		}
	}
}

// AddRowsTo adds the coefficient rows held to b, so that b spans what the
// decoder spans (and then whatever else is added to it).
func (d *Decoder) AddRowsTo(b *Basis) {
	for s, ok := range d.has {
		if ok {
			b.Add(d.coeffs[s*d.n : (s+1)*d.n])
		}
	}
}

// Basis tracks the span of a set of coefficient vectors, with no payloads:
// a receiver uses it to accept only offers that are innovative with respect
// to what it holds plus what it has already asked for. It keeps the vectors
// in reduced row echelon form, O(n²) bytes. Not safe for concurrent use.
type Basis struct {
	n    int
	rows []byte // n·n; the row of pivot s at rows[s·n:]
	has  []bool
	rank int
	vec  []byte
}

// NewBasis returns an empty Basis for vectors of n coefficients.
func NewBasis(n int) *Basis {
	return &Basis{n: n, rows: make([]byte, n*n), has: make([]bool, n), vec: make([]byte, n)}
}

// Rank returns the dimension of the span.
func (b *Basis) Rank() int { return b.rank }

// Reset empties the basis.
func (b *Basis) Reset() {
	clear(b.has)
	b.rank = 0
}

// UnitColumns sets bit j of bits (bit j%8 of byte j/8) for every j such
// that the unit vector e_j lies in the span, and clears the others. bits
// must hold at least ceil(n/8) bytes. In RREF, e_j is in the span exactly
// when the row of pivot j is e_j itself.
func (b *Basis) UnitColumns(bits []byte) {
	clear(bits[:(b.n+7)/8])
	for s, ok := range b.has {
		if ok && isUnitRow(b.rows[s*b.n:(s+1)*b.n], s) {
			bits[s/8] |= 1 << (s % 8)
		}
	}
}

// UnitFree returns the columns j whose unit vector e_j lies outside the
// span, appended to dst: a want for any of them is innovative.
func (b *Basis) UnitFree(dst []int) []int {
	for s := 0; s < b.n; s++ {
		if !b.has[s] || !isUnitRow(b.rows[s*b.n:(s+1)*b.n], s) {
			dst = append(dst, s)
		}
	}
	return dst
}

func (b *Basis) reduce(v []byte) int {
	copy(b.vec, v)
	for s, ok := range b.has {
		if ok && v[s] != 0 {
			gf256.MulAddSlice(v[s], b.rows[s*b.n:(s+1)*b.n], b.vec)
		}
	}
	for q, c := range b.vec {
		if c != 0 {
			return q
		}
	}
	return -1
}

// Innovative reports whether v lies outside the span, changing nothing.
func (b *Basis) Innovative(v []byte) bool {
	return len(v) == b.n && b.rank < b.n && b.reduce(v) >= 0
}

// Add adds v to the span and reports whether it was innovative.
func (b *Basis) Add(v []byte) bool {
	if len(v) != b.n || b.rank == b.n {
		return false
	}
	q := b.reduce(v)
	if q < 0 {
		return false
	}
	gf256.MulSlice(gf256.Inv(b.vec[q]), b.vec, b.vec)
	for s, ok := range b.has {
		if ok {
			if c := b.rows[s*b.n+q]; c != 0 {
				gf256.MulAddSlice(c, b.vec, b.rows[s*b.n:(s+1)*b.n])
			}
		}
	}
	copy(b.rows[q*b.n:(q+1)*b.n], b.vec)
	b.has[q] = true
	b.rank++
	return true
}
