//go:build amd64 && !purego

package gf256

import "golang.org/x/sys/cpu"

// useKernels reports whether the AVX2 assembly kernels run on this CPU. It is
// fixed when the package is initialised.
var useKernels = cpu.X86.HasAVX2

// The generated kernels (kernel_amd64.s) compute 1 to 4 outputs from
// len(in) >= 1 inputs over bytes [start, start+n) with n a multiple of 64;
// the Xor forms accumulate into the outputs. tables is laid out as in Matrix.

//go:noescape
func mulAVX2x1(tables []byte, in, out [][]byte, start, n int)

//go:noescape
func mulAVX2x1Xor(tables []byte, in, out [][]byte, start, n int)

//go:noescape
func mulAVX2x2(tables []byte, in, out [][]byte, start, n int)

//go:noescape
func mulAVX2x2Xor(tables []byte, in, out [][]byte, start, n int)

//go:noescape
func mulAVX2x3(tables []byte, in, out [][]byte, start, n int)

//go:noescape
func mulAVX2x3Xor(tables []byte, in, out [][]byte, start, n int)

//go:noescape
func mulAVX2x4(tables []byte, in, out [][]byte, start, n int)

//go:noescape
func mulAVX2x4Xor(tables []byte, in, out [][]byte, start, n int)

// kernel returns the kernel for w outputs.
func kernel(w int, add bool) func(tables []byte, in, out [][]byte, start, n int) {
	switch {
	case w == 1 && !add:
		return mulAVX2x1
	case w == 1:
		return mulAVX2x1Xor
	case w == 2 && !add:
		return mulAVX2x2
	case w == 2:
		return mulAVX2x2Xor
	case w == 3 && !add:
		return mulAVX2x3
	case w == 3:
		return mulAVX2x3Xor
	case !add:
		return mulAVX2x4
	default:
		return mulAVX2x4Xor
	}
}

// The kernels read their inputs as parallel streams. Beyond about eight
// streams the hardware prefetchers lose track and the kernels stall on the
// L3 (measured on Zen 4: 64 inputs of 32 KiB in one pass run at 0.7× the
// speed of eight passes over eight inputs each, which re-read and re-write
// the outputs from L1/L2 instead). So long products are cut into tiles of
// tileInputs inputs; short ones, whose inputs sit in L1, run in one pass.
const (
	tileInputs = 8
	tileMinLen = 1024
	// blockBytes bounds the input bytes one column block of a product with
	// several groups of outputs touches, so that later groups find the
	// inputs in L2.
	blockBytes = 512 << 10
)

func (m *Matrix) apply(in, out [][]byte, lo, hi int, add bool) {
	if !useKernels || m.cols == 0 || hi-lo < 64 {
		m.applyGeneric(in, out, lo, hi, add)
		return
	}
	mid := lo + (hi-lo)&^63
	step := mid - lo
	if m.rows > 4 {
		step = max(tileMinLen, (blockBytes/m.cols)&^63)
	}
	tile := m.cols
	if mid-lo >= tileMinLen {
		tile = tileInputs
	}
	for start := lo; start < mid; start += step {
		n := min(step, mid-start)
		t := m.tables
		for g := 0; g < m.rows; g += 4 {
			w := min(4, m.rows-g)
			o := out[g : g+w]
			for i := 0; i < m.cols; i += tile {
				j := min(i+tile, m.cols)
				kernel(w, add || i > 0)(t[i*w*64:j*w*64], in[i:j], o, start, n)
			}
			t = t[w*m.cols*64:]
		}
	}
	if mid < hi {
		m.applyGeneric(in, out, mid, hi, add)
	}
}
