package gf256

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func BenchmarkMulAddSlice(b *testing.B) {
	for _, n := range []int{1 << 10, 16 << 10, 32 << 10, 1 << 20} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			in, out := make([]byte, n), make([]byte, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				MulAddSlice(77, in, out)
			}
		})
	}
}

func BenchmarkMulAddSliceGeneric(b *testing.B) {
	n := 32 << 10
	in, out := make([]byte, n), make([]byte, n)
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		mulAddSliceGeneric(77, in, out)
	}
}

func BenchmarkMulSlice(b *testing.B) {
	n := 32 << 10
	in, out := make([]byte, n), make([]byte, n)
	b.SetBytes(int64(n))
	b.ReportAllocs()
	for b.Loop() {
		MulSlice(77, in, out)
	}
}

// BenchmarkMatrix measures the fused kernel; bytes are input bytes times
// outputs (multiply-accumulate bytes).
func BenchmarkMatrix(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	for _, sh := range []struct{ rows, cols, n int }{
		{1, 64, 32 << 10}, {1, 16, 32 << 10}, {4, 64, 32 << 10}, {16, 64, 32 << 10}, {64, 1, 32 << 10}, {1, 64, 512}, {4, 64, 512},
	} {
		b.Run(fmt.Sprintf("%dx%d/%d", sh.rows, sh.cols, sh.n), func(b *testing.B) {
			m := NewMatrix(sh.rows, sh.cols, randBytes(r, sh.rows*sh.cols))
			in := make([][]byte, sh.cols)
			for i := range in {
				in[i] = randBytes(r, sh.n)
			}
			out := make([][]byte, sh.rows)
			for j := range out {
				out[j] = make([]byte, sh.n)
			}
			b.SetBytes(int64(sh.rows * sh.cols * sh.n))
			b.ReportAllocs()
			for b.Loop() {
				m.MulAdd(in, out)
			}
		})
	}
}
