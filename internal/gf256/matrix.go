package gf256

import "fmt"

// Matrix is a rows×cols matrix of field coefficients prepared for the fused
// kernels: Mul and MulAdd compute, for every output j in 0..rows-1,
//
//	out_j = Σ_i c_ji·in_i   or   out_j ^= Σ_i c_ji·in_i
//
// over the cols inputs, reading each input once for each group of up to
// four outputs. On amd64, ranges of 1 KiB or more are summed in tiles of
// eight inputs (the hardware prefetchers follow eight streams, not
// sixty-four), each tile's partial sum accumulated in the outputs, which
// stay in L1/L2.
// Preparing the coefficients (Reset) costs 8 (GFNI) or 64 (AVX2) bytes of
// table per coefficient; a Matrix keeps its buffers across Resets, so reusing one for
// many shapes allocates only when it has to grow.
//
// The zero Matrix is an empty 0×0 matrix ready for Reset. A Matrix is not
// safe for concurrent use, and neither Mul nor MulAdd retains the slices it
// is given.
type Matrix struct {
	rows, cols int
	coeffs     []byte // rows·cols coefficients, row-major
	// tables holds the kernels' tables: for each group of up to four
	// consecutive outputs, for each input, for each output of the group, the
	// entry of c_ji — aff[c_ji] (8 bytes) for the GFNI kernels, nib[c_ji]
	// (64 bytes) for the AVX2 ones. Only filled when the assembly kernels are
	// in use.
	tables []byte
}

// NewMatrix returns a Matrix with the given shape and coefficients; see
// Reset.
func NewMatrix(rows, cols int, coeffs []byte) *Matrix {
	m := new(Matrix)
	m.Reset(rows, cols, coeffs)
	return m
}

// Reset gives m a new shape and new coefficients, copied from coeffs in
// row-major order: coeffs[j*cols+i] multiplies input i into output j. It
// panics if rows or cols is negative or len(coeffs) < rows*cols.
func (m *Matrix) Reset(rows, cols int, coeffs []byte) {
	if rows < 0 || cols < 0 || len(coeffs) < rows*cols {
		panic(fmt.Sprintf("gf256: Matrix.Reset(%d, %d) with %d coefficients", rows, cols, len(coeffs)))
	}
	m.rows, m.cols = rows, cols
	m.coeffs = grow(m.coeffs, rows*cols)
	copy(m.coeffs, coeffs)
	if !useKernels {
		return
	}
	e := tableEntry()
	m.tables = grow(m.tables, rows*cols*e)
	t := m.tables
	for g := 0; g < rows; g += 4 {
		w := min(4, rows-g)
		for i := 0; i < cols; i++ {
			for j := g; j < g+w; j++ {
				if c := coeffs[j*cols+i]; useGFNI {
					copy(t[:e], tab.aff[c][:])
				} else {
					copy(t[:e], tab.nib[c][:])
				}
				t = t[e:]
			}
		}
	}
}

// tableEntry returns the bytes of kernel table per coefficient: a bit
// matrix of 8 bytes for the GFNI kernels, nibble tables of 64 for AVX2.
func tableEntry() int {
	if useGFNI {
		return 8
	}
	return 64
}

// Rows returns the number of outputs.
func (m *Matrix) Rows() int { return m.rows }

// Cols returns the number of inputs.
func (m *Matrix) Cols() int { return m.cols }

// At returns the coefficient that multiplies input i into output j.
func (m *Matrix) At(j, i int) byte { return m.coeffs[j*m.cols+i] }

// Mul sets out_j = Σ_i c_ji·in_i over the length of out[0]. It panics unless
// len(in) == Cols(), len(out) == Rows(), every output has the same length n
// and every input is at least n bytes long. Outputs must not overlap inputs
// or each other.
func (m *Matrix) Mul(in, out [][]byte) {
	m.MulRange(in, out, 0, outLen(out))
}

// MulAdd sets out_j ^= Σ_i c_ji·in_i over the length of out[0]; the
// requirements are those of Mul.
func (m *Matrix) MulAdd(in, out [][]byte) {
	m.MulAddRange(in, out, 0, outLen(out))
}

// MulRange is Mul restricted to the byte range [lo, hi) of every input and
// output; bytes outside the range are left alone. Every input and output must
// be at least hi bytes long.
func (m *Matrix) MulRange(in, out [][]byte, lo, hi int) {
	m.check(in, out, lo, hi)
	m.apply(in, out, lo, hi, false)
}

// MulAddRange is MulAdd restricted to the byte range [lo, hi) of every input
// and output; bytes outside the range are left alone.
func (m *Matrix) MulAddRange(in, out [][]byte, lo, hi int) {
	m.check(in, out, lo, hi)
	m.apply(in, out, lo, hi, true)
}

func outLen(out [][]byte) int {
	if len(out) == 0 {
		return 0
	}
	n := len(out[0])
	for _, o := range out[1:] {
		if len(o) != n {
			panic("gf256: Matrix outputs of different lengths")
		}
	}
	return n
}

func (m *Matrix) check(in, out [][]byte, lo, hi int) {
	if len(in) != m.cols || len(out) != m.rows {
		panic(fmt.Sprintf("gf256: %d×%d Matrix applied to %d inputs and %d outputs", m.rows, m.cols, len(in), len(out)))
	}
	if lo < 0 || hi < lo {
		panic(fmt.Sprintf("gf256: Matrix range [%d, %d)", lo, hi))
	}
	for _, x := range in {
		if len(x) < hi {
			panic(fmt.Sprintf("gf256: Matrix input of %d bytes, range ends at %d", len(x), hi))
		}
	}
	for _, x := range out {
		if len(x) < hi {
			panic(fmt.Sprintf("gf256: Matrix output of %d bytes, range ends at %d", len(x), hi))
		}
	}
}

// applyGeneric is the pure-Go twin of the fused kernels over [lo, hi).
func (m *Matrix) applyGeneric(in, out [][]byte, lo, hi int, add bool) {
	for j, o := range out {
		o = o[lo:hi]
		if !add {
			clear(o)
		}
		row := m.coeffs[j*m.cols : (j+1)*m.cols]
		for i, x := range in {
			switch c := row[i]; c {
			case 0:
			case 1:
				for p, v := range x[lo:hi] {
					o[p] ^= v
				}
			default:
				mulAddSliceGeneric(c, x[lo:hi], o)
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
