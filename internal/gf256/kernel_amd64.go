//go:build amd64 && !purego

package gf256

import "golang.org/x/sys/cpu"

// useKernels reports whether the AVX2 assembly kernels run on this CPU. It is
// fixed when the package is initialised.
var useKernels = cpu.X86.HasAVX2

// useGFNI reports whether the fused kernels are the AVX-512 GFNI ones
// (mulGFNI*) rather than the AVX2 nibble-table ones. It is fixed when the
// package is initialised (tests flip it to check both sets).
var useGFNI = useKernels && cpu.X86.HasAVX512F && cpu.X86.HasAVX512GFNI

// The generated kernels (kernel_amd64.s) compute 1 to 4 outputs from
// len(in) >= 1 inputs over bytes [start, start+n) with n a multiple of 64;
// the Xor forms accumulate into the outputs. tables is laid out as in Matrix:
// nibble tables for mulAVX2*, bit matrices for mulGFNI*.

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

//go:noescape
func mulAVX2Single1Xor(tables []byte, in, out [][]byte, start, n int)

//go:noescape
func mulAVX2Single2Xor(tables []byte, in, out [][]byte, start, n int)

//go:noescape
func mulAVX2Single3Xor(tables []byte, in, out [][]byte, start, n int)

//go:noescape
func mulAVX2Single4Xor(tables []byte, in, out [][]byte, start, n int)

//go:noescape
func mulGFNIx1(tables []byte, in, out [][]byte, start, n int)

//go:noescape
func mulGFNIx1Xor(tables []byte, in, out [][]byte, start, n int)

//go:noescape
func mulGFNIx2(tables []byte, in, out [][]byte, start, n int)

//go:noescape
func mulGFNIx2Xor(tables []byte, in, out [][]byte, start, n int)

//go:noescape
func mulGFNIx3(tables []byte, in, out [][]byte, start, n int)

//go:noescape
func mulGFNIx3Xor(tables []byte, in, out [][]byte, start, n int)

//go:noescape
func mulGFNIx4(tables []byte, in, out [][]byte, start, n int)

//go:noescape
func mulGFNIx4Xor(tables []byte, in, out [][]byte, start, n int)

// callSingle runs the one-input accumulating kernel for w outputs.
func callSingle(w int, tables []byte, in, out [][]byte, start, n int) {
	switch w {
	case 1:
		mulAVX2Single1Xor(tables, in, out, start, n)
	case 2:
		mulAVX2Single2Xor(tables, in, out, start, n)
	case 3:
		mulAVX2Single3Xor(tables, in, out, start, n)
	default:
		mulAVX2Single4Xor(tables, in, out, start, n)
	}
}

// callKernel runs the kernel for w outputs. It is a switch of direct calls,
// not a table of function values, so that escape analysis can see that the
// slices do not escape.
func callKernel(w int, add bool, tables []byte, in, out [][]byte, start, n int) {
	if useGFNI {
		callGFNI(w, add, tables, in, out, start, n)
		return
	}
	switch {
	case w == 1 && !add:
		mulAVX2x1(tables, in, out, start, n)
	case w == 1:
		mulAVX2x1Xor(tables, in, out, start, n)
	case w == 2 && !add:
		mulAVX2x2(tables, in, out, start, n)
	case w == 2:
		mulAVX2x2Xor(tables, in, out, start, n)
	case w == 3 && !add:
		mulAVX2x3(tables, in, out, start, n)
	case w == 3:
		mulAVX2x3Xor(tables, in, out, start, n)
	case !add:
		mulAVX2x4(tables, in, out, start, n)
	default:
		mulAVX2x4Xor(tables, in, out, start, n)
	}
}

// gfniSlice computes out = c·in, or out ^= c·in with add, over the longest
// multiple of 64 bytes of in with the one-output GFNI kernel and returns
// how many bytes it did: 0 when the GFNI kernels are not in use.
// len(out) == len(in).
func gfniSlice(c byte, in, out []byte, add bool) int {
	n := len(in) &^ 63
	if !useGFNI || n == 0 {
		return 0
	}
	var ins, outs [1][]byte
	ins[0], outs[0] = in, out
	if add {
		mulGFNIx1Xor(tab.aff[c][:], ins[:], outs[:], 0, n)
	} else {
		mulGFNIx1(tab.aff[c][:], ins[:], outs[:], 0, n)
	}
	return n
}

// callGFNI is callKernel for the GFNI kernels.
func callGFNI(w int, add bool, tables []byte, in, out [][]byte, start, n int) {
	switch {
	case w == 1 && !add:
		mulGFNIx1(tables, in, out, start, n)
	case w == 1:
		mulGFNIx1Xor(tables, in, out, start, n)
	case w == 2 && !add:
		mulGFNIx2(tables, in, out, start, n)
	case w == 2:
		mulGFNIx2Xor(tables, in, out, start, n)
	case w == 3 && !add:
		mulGFNIx3(tables, in, out, start, n)
	case w == 3:
		mulGFNIx3Xor(tables, in, out, start, n)
	case !add:
		mulGFNIx4(tables, in, out, start, n)
	default:
		mulGFNIx4Xor(tables, in, out, start, n)
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
	e := tableEntry()
	for start := lo; start < mid; start += step {
		n := min(step, mid-start)
		t := m.tables
		for g := 0; g < m.rows; g += 4 {
			w := min(4, m.rows-g)
			o := out[g : g+w]
			if m.cols == 1 && add && !useGFNI {
				callSingle(w, t, in, o, start, n)
				t = t[w*e:]
				continue
			}
			for i := 0; i < m.cols; i += tile {
				j := min(i+tile, m.cols)
				callKernel(w, add || i > 0, t[i*w*e:j*w*e], in[i:j], o, start, n)
			}
			t = t[w*m.cols*e:]
		}
	}
	if mid < hi {
		m.applyGeneric(in, out, mid, hi, add)
	}
}
