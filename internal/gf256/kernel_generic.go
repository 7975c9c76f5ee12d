//go:build !amd64 || purego

package gf256

// useKernels is false: this build has no fused assembly kernels.
const useKernels = false

// useGFNI is false: this build has no GFNI kernels.
const useGFNI = false

// gfniSlice does nothing: the single-slice kernels do the whole slice.
func gfniSlice(c byte, in, out []byte, add bool) int { return 0 }

// sliceBlock is the width of the column blocks in which apply works, so that
// the block of each output stays in L1 while the inputs stream past it.
const sliceBlock = 4096

// apply computes the product one input and one output at a time with the
// single-slice kernels (assembly from klauspost/reedsolomon where it has
// some, pure Go under the purego tag), in column blocks.
func (m *Matrix) apply(in, out [][]byte, lo, hi int, add bool) {
	for start := lo; start < hi; start += sliceBlock {
		end := min(hi, start+sliceBlock)
		for j, o := range out {
			o = o[start:end]
			if !add {
				clear(o)
			}
			row := m.coeffs[j*m.cols : (j+1)*m.cols]
			for i, x := range in {
				if c := row[i]; c != 0 {
					mulAddSlice(c, x[start:end], o)
				}
			}
		}
	}
}
