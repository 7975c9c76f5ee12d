//go:build !purego

package gf256

import "github.com/klauspost/reedsolomon"

// The single-slice kernels come from klauspost/reedsolomon, which keeps the
// constant's tables in registers (AVX2/SSSE3 on amd64, NEON on arm64) and
// measured faster here than the nibble-table kernels applied to one input.
// Where the GFNI kernels run, they take the 64-byte body instead (1.3× the
// AVX2 tables at 16 KiB) and reedsolomon the tail.

func mulSlice(c byte, in, out []byte) {
	n := gfniSlice(c, in, out, false)
	var ll reedsolomon.LowLevel
	ll.GalMulSlice(c, in[n:], out[n:])
}

func mulAddSlice(c byte, in, out []byte) {
	n := gfniSlice(c, in, out, true)
	var ll reedsolomon.LowLevel
	ll.GalMulSliceXor(c, in[n:], out[n:])
}
