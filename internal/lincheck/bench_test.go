package lincheck

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"testing"

	"avalanche/internal/rlnc"
)

// BenchmarkVerify measures the per-packet check with t = 4; bytes are
// payload bytes verified.
func BenchmarkVerify(b *testing.B) {
	for _, bs := range []int{16 << 10, 32 << 10, 64 << 10} {
		for _, checks := range []int{1, 4, 8} {
			b.Run(fmt.Sprintf("B=%d/t=%d", bs, checks), func(b *testing.B) {
				r := rand.New(rand.NewPCG(1, 2))
				p := rlnc.Params{K: 64, BlockSize: bs}
				f := newFixture(r, p, p.GenerationSize())
				c, sums := f.peer(b, "p", checks)
				coeffs, payload := make([]byte, p.K), make([]byte, bs)
				f.enc.Random(coeffs, payload)
				b.SetBytes(int64(bs))
				b.ReportAllocs()
				for b.Loop() {
					if !c.Verify(coeffs, payload, sums) {
						b.Fatal("honest block failed")
					}
				}
			})
		}
	}
}

// BenchmarkSourceSums measures the origin's work for one peer and one
// generation (k = 64, B = 32 KiB, t = 4); bytes are source bytes.
func BenchmarkSourceSums(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	p := rlnc.DefaultParams()
	f := newFixture(r, p, p.GenerationSize())
	c, sums := f.peer(b, "p", DefaultChecks)
	b.SetBytes(int64(p.GenerationSize()))
	b.ReportAllocs()
	for b.Loop() {
		c.SourceSums(f.data, sums)
	}
}

// BenchmarkSetGeneration measures expanding a key for a new generation.
func BenchmarkSetGeneration(b *testing.B) {
	c, _ := NewChecker(DeriveKey([]byte("m"), []byte("p")), rlnc.DefaultParams(), DefaultChecks, 0)
	b.ReportAllocs()
	var g uint64
	for b.Loop() {
		g++
		c.SetGeneration(g)
	}
}

// BenchmarkSHA256 is the comparison point: hashing the same block.
func BenchmarkSHA256(b *testing.B) {
	buf := make([]byte, 32<<10)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		sha256.Sum256(buf)
	}
}
