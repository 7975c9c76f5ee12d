package gf256

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

func TestIsomorphism(t *testing.T) {
	for a := 0; a < 256; a++ {
		if got := iso.from[iso.to[a]]; got != byte(a) {
			t.Fatalf("φ⁻¹(φ(%#x)) = %#x", a, got)
		}
		for b := 0; b < 256; b++ {
			if got, want := aesMul(iso.to[a], iso.to[b]), iso.to[Mul(byte(a), byte(b))]; got != want {
				t.Fatalf("φ(%#x)·φ(%#x) = %#x, want φ(%#x·%#x) = %#x", a, b, got, a, b, want)
			}
			if iso.to[a^b] != iso.to[a]^iso.to[b] {
				t.Fatalf("φ(%#x+%#x) is not φ(%#x)+φ(%#x)", a, b, a, b)
			}
		}
	}
}

func TestWeightsDot(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 63, 64, 65, 127, 128, 129, 512, 1000, 4096} {
		for _, m := range []int{n, n / 2, n + 10} {
			u, y := make([]byte, n), make([]byte, m)
			for i := range u {
				u[i] = byte(rng.Uint32())
			}
			for i := range y {
				y[i] = byte(rng.Uint32())
			}
			w := NewWeights(u)
			if got, want := w.Dot(y), DotProduct(u, y); got != want {
				t.Errorf("Dot(%d weights, %d bytes) = %#x, want %#x", n, m, got, want)
			}
			if got, want := w.DotGeneric(y), DotProduct(u, y); got != want {
				t.Errorf("DotGeneric(%d weights, %d bytes) = %#x, want %#x", n, m, got, want)
			}
		}
	}
}

func BenchmarkWeightsDot(b *testing.B) {
	for _, n := range []int{512, 32 << 10} {
		u, y := make([]byte, n), make([]byte, n)
		for i := range u {
			u[i], y[i] = byte(i*7+1), byte(i*13+5)
		}
		w := NewWeights(u)
		b.Run(fmt.Sprintf("kernel/%d", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				w.Dot(y)
			}
		})
		b.Run(fmt.Sprintf("generic/%d", n), func(b *testing.B) {
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				w.DotGeneric(y)
			}
		})
	}
}
