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
// arithmetic. The coefficient rows are brought to RREF at once (O(n²)
// bytes of work). The payload of an innovative block is copied into its row
// and the payload arithmetic — reduce the new row by the stored rows (many
// inputs, one output), then eliminate its pivot from them (one input, many
// outputs) — is queued: up to Batch blocks' worth is applied in one pass
// over the rows, column chunk by column chunk, so each row is read from
// memory and written back once per batch instead of once per block. The
// Add that completes the generation, Recode and Source apply the queue
// first, so it is never visible.
//
// A Decoder holds n·(B+n) bytes of rows, plus scratch of O(n) and the
// queue's tables, 16·n (GFNI kernels) or 128·n (AVX2) bytes per queued block
// (TestDecoderMemory). The rows span the same space
// as the blocks received, so a peer recodes from them (Recode) without
// keeping the blocks a second time.
//
// A Decoder is not safe for concurrent use.
type Decoder struct {
	n, bs  int
	coeffs []byte   // n·n; the coefficient row of pivot s at coeffs[s·n:]
	data   []byte   // n·B; the payload row of pivot s at data[s·B:]
	rows   [][]byte // rows[s] = data[s·B:(s+1)·B]
	has    []bool   // has[s]: a row with pivot s is stored
	rank   int

	queue  []pending // Batch entries; the first queued are waiting
	queued int
	width  int // column chunk width of a flush

	// Scratch, sized once.
	vec []byte   // the coefficient vector being reduced
	mul []byte   // coefficients being gathered for a Matrix
	ins [][]byte // rows being gathered for RecodeBatch
	rec gf256.Matrix
}

// pending is the payload arithmetic of one accepted block, not yet done:
// row[q] = inv·row[q] + Σ dot_s·ins_s, then outs_s ^= elim_s·row[q].
type pending struct {
	q    int
	inv  byte
	dot  gf256.Matrix // 1 × len(ins)
	ins  [][]byte
	elim gf256.Matrix // len(outs) × 1
	outs [][]byte
	self [1][]byte // row[q], as a Matrix argument
}

// Batch is how many innovative blocks' payload arithmetic a Decoder queues
// before doing it in one pass over its rows.
const Batch = 8

// flushBytes bounds the bytes of rows one column chunk of a flush touches,
// so that the chunk stays in L2 while the whole queue is applied to it.
const flushBytes = 512 << 10

// NewDecoder returns an empty Decoder for a generation of blocks blocks
// (1..K, Generation.Blocks) of p.BlockSize bytes.
func NewDecoder(p Params, blocks int) (*Decoder, error) {
	return NewDecoderIn(p, blocks, nil)
}

// NewDecoderIn is NewDecoder with the payload rows kept in data, which
// must hold blocks × p.BlockSize bytes (nil: allocate them). The Decoder
// owns data from then on; Data returns it.
func NewDecoderIn(p Params, blocks int, data []byte) (*Decoder, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if blocks < 1 || blocks > p.K {
		return nil, fmt.Errorf("%w (%d, k = %d)", ErrBlocks, blocks, p.K)
	}
	n, bs := blocks, p.BlockSize
	switch {
	case data == nil:
		data = make([]byte, n*bs)
	case len(data) < n*bs:
		return nil, fmt.Errorf("%w (%d bytes of rows, want %d)", ErrPayloadLength, len(data), n*bs)
	}
	d := &Decoder{
		n:      n,
		bs:     bs,
		coeffs: make([]byte, n*n),
		data:   data[: n*bs : n*bs],
		rows:   make([][]byte, n),
		has:    make([]bool, n),
		queue:  make([]pending, min(Batch, n)),
		width:  min(bs, max(1024, flushBytes/n&^63)),
		vec:    make([]byte, n),
		mul:    make([]byte, n),
		ins:    make([][]byte, 0, n),
	}
	for s := range d.rows {
		d.rows[s] = d.data[s*bs : (s+1)*bs : (s+1)*bs]
	}
	// Size the queue's tables for the largest products once.
	for i := range d.queue {
		pe := &d.queue[i]
		pe.ins = make([][]byte, 0, n)
		pe.outs = make([][]byte, 0, n)
		pe.dot.Reset(1, n, d.mul)
		pe.elim.Reset(n, 1, d.mul)
	}
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
	d.queued = 0
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
// coefficients; an innovative one is copied into the Decoder's own storage,
// so the caller may reuse both buffers as soon as Add returns. payload must
// not alias the Decoder's own rows (Data, Source). The error is non-nil
// only for buffers of the wrong length.
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

	// Queue the payload arithmetic. The new row is inv·(payload + Σ_s
	// coeffs[s]·row_s) over the stored rows s; its pivot is then eliminated
	// from every stored row s with g_s = coefficient q of row s.
	pe := &d.queue[d.queued]
	d.queued++
	pe.q, pe.inv = q, inv
	pe.ins, pe.outs = pe.ins[:0], pe.outs[:0]
	m := d.mul[:0]
	for s, ok := range d.has {
		if ok && coeffs[s] != 0 {
			m = append(m, gf256.Mul(inv, coeffs[s]))
			pe.ins = append(pe.ins, d.rows[s])
		}
	}
	pe.dot.Reset(1, len(m), m)
	m = d.mul[:0]
	for s, ok := range d.has {
		if ok {
			if g := d.coeffs[s*n+q]; g != 0 {
				m = append(m, g)
				pe.outs = append(pe.outs, d.rows[s])
				// The same elimination on the coefficient rows, now.
				gf256.MulAddSlice(g, d.vec, d.coeffs[s*n:(s+1)*n])
			}
		}
	}
	pe.elim.Reset(len(m), 1, m)
	pe.self[0] = d.rows[q]
	copy(d.rows[q], payload)
	copy(d.coeffs[q*n:(q+1)*n], d.vec)
	d.has[q] = true
	d.rank++
	if d.queued == len(d.queue) || d.rank == d.n {
		d.flush()
	}
	return true, nil
}

// flush applies the queued payload arithmetic, in order, one column chunk
// at a time: the chunk of every row is loaded once and stays in cache while
// the whole queue works on it.
func (d *Decoder) flush() {
	q := d.queue[:d.queued]
	d.queued = 0
	for lo := 0; lo < d.bs; lo += d.width {
		hi := min(lo+d.width, d.bs)
		for i := range q {
			pe := &q[i]
			row := pe.self[0][lo:hi]
			if pe.inv != 1 {
				gf256.MulSlice(pe.inv, row, row)
			}
			if len(pe.ins) > 0 {
				pe.dot.MulAddRange(pe.ins, pe.self[:], lo, hi)
			}
			if len(pe.outs) > 0 {
				pe.elim.MulAddRange(pe.self[:], pe.outs, lo, hi)
			}
		}
	}
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
	d.flush()
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
	d.flush()
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
	d.rec.Reset(m, r, w)
	d.rec.Mul(d.ins, payloads)
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
