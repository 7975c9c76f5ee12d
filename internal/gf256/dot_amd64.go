//go:build amd64 && !purego

package gf256

// useDotKernel reports whether Weights.Dot runs dotGFNI.
var useDotKernel = useGFNI

// dotGFNI returns the XOR of φ(y[i])·fu[i] (VGF2P8MULB) over i, where φ is
// the affine map matrix; len(fu) == len(y) is a positive multiple of 64.
//
//go:noescape
func dotGFNI(matrix uint64, fu, y []byte) byte
