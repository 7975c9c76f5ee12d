//go:build amd64 && !purego

package gf256

import "golang.org/x/sys/cpu"

// useDotKernel reports whether Weights.Dot runs dotGFNI (whose 256-bit
// EVEX forms need AVX-512VL on top of the GFNI kernels' features).
var useDotKernel = useGFNI && cpu.X86.HasAVX512VL

// dotGFNI returns the XOR of φ(y[i])·fu[i] (VGF2P8MULB) over i, where φ is
// the affine map matrix; len(fu) == len(y) is a positive multiple of 64.
//
//go:noescape
func dotGFNI(matrix uint64, fu, y []byte) byte
