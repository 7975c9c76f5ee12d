package rlnc

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
)

var benchShapes = []Params{
	{K: 16, BlockSize: 32 << 10},
	{K: 64, BlockSize: 16 << 10},
	{K: 64, BlockSize: 32 << 10},
	{K: 64, BlockSize: 64 << 10},
	{K: 128, BlockSize: 32 << 10},
}

func name(p Params) string { return fmt.Sprintf("k=%d/B=%d", p.K, p.BlockSize) }

// BenchmarkEncode measures one dense coded block; bytes are payload bytes
// produced.
func BenchmarkEncode(b *testing.B) {
	for _, p := range benchShapes {
		b.Run(name(p), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			e, _ := NewEncoder(p, randData(r, p.GenerationSize()), r)
			blk := newBlock(p.K, p.BlockSize)
			b.SetBytes(int64(p.BlockSize))
			b.ReportAllocs()
			for b.Loop() {
				e.Random(blk.coeffs, blk.payload)
			}
		})
	}
}

// BenchmarkEncodeBatch measures 16 coded blocks per call through the fused
// kernel; bytes are payload bytes produced.
func BenchmarkEncodeBatch(b *testing.B) {
	const m = 16
	for _, p := range benchShapes {
		b.Run(name(p), func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			e, _ := NewEncoder(p, randData(r, p.GenerationSize()), r)
			coeffs := make([]byte, m*p.K)
			payloads := make([][]byte, m)
			for j := range payloads {
				payloads[j] = make([]byte, p.BlockSize)
			}
			e.RandomBatch(coeffs, payloads) // size the scratch once
			b.SetBytes(int64(m * p.BlockSize))
			b.ReportAllocs()
			for b.Loop() {
				e.RandomBatch(coeffs, payloads)
			}
		})
	}
}

// codedBlocks returns k+2 dense coded blocks of a random generation.
func codedBlocks(p Params, seed uint64) ([]byte, []block) {
	r := rand.New(rand.NewPCG(seed, 2))
	data := randData(r, p.GenerationSize())
	e, _ := NewEncoder(p, data, r)
	blocks := make([]block, p.K+2)
	for i := range blocks {
		blocks[i] = newBlock(p.K, p.BlockSize)
		e.Random(blocks[i].coeffs, blocks[i].payload)
	}
	return data, blocks
}

// BenchmarkDecode measures decoding a whole generation from dense coded
// blocks; bytes are source bytes recovered.
func BenchmarkDecode(b *testing.B) {
	for _, p := range benchShapes {
		b.Run(name(p), func(b *testing.B) {
			_, blocks := codedBlocks(p, 1)
			d, _ := NewDecoder(p, p.K)
			b.SetBytes(int64(p.GenerationSize()))
			b.ReportAllocs()
			for b.Loop() {
				d.Reset()
				for _, blk := range blocks {
					d.Add(blk.coeffs, blk.payload)
					if d.Complete() {
						break
					}
				}
			}
		})
	}
}

// BenchmarkRecode measures one recoded block from a decoder at rank k-1;
// bytes are payload bytes produced.
func BenchmarkRecode(b *testing.B) {
	for _, p := range benchShapes {
		b.Run(name(p), func(b *testing.B) {
			_, blocks := codedBlocks(p, 1)
			d, _ := NewDecoder(p, p.K)
			for _, blk := range blocks[:p.K-1] {
				d.Add(blk.coeffs, blk.payload)
			}
			r := rand.New(rand.NewPCG(3, 4))
			out := newBlock(p.K, p.BlockSize)
			b.SetBytes(int64(p.BlockSize))
			b.ReportAllocs()
			for b.Loop() {
				d.Recode(r, out.coeffs, out.payload)
			}
		})
	}
}

// BenchmarkInnovative measures the coefficient-only innovation check at
// rank k-1; bytes are coefficient bytes examined.
func BenchmarkInnovative(b *testing.B) {
	p := DefaultParams()
	_, blocks := codedBlocks(p, 1)
	d, _ := NewDecoder(p, p.K)
	for _, blk := range blocks[:p.K-1] {
		d.Add(blk.coeffs, blk.payload)
	}
	b.SetBytes(int64(p.K))
	b.ReportAllocs()
	for b.Loop() {
		d.Innovative(blocks[p.K].coeffs)
	}
}

// BenchmarkParallelEncode encodes independent generations on all cores.
// Each goroutine's generation is made before the timer starts, so the
// allocation figures are those of encoding.
func BenchmarkParallelEncode(b *testing.B) {
	p := DefaultParams()
	n := runtime.GOMAXPROCS(0)
	encs := make([]*Encoder, n)
	for i := range encs {
		r := rand.New(rand.NewPCG(uint64(i), 2))
		encs[i], _ = NewEncoder(p, randData(r, p.GenerationSize()), r)
	}
	var next atomic.Int32
	b.SetBytes(int64(p.BlockSize))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		e := encs[int(next.Add(1)-1)%n]
		var coeffs [DefaultK]byte
		var payload [DefaultBlockSize]byte
		for pb.Next() {
			e.Random(coeffs[:], payload[:])
		}
	})
}

// BenchmarkParallelDecode decodes independent generations on all cores;
// blocks and decoders are made before the timer starts.
func BenchmarkParallelDecode(b *testing.B) {
	p := DefaultParams()
	n := runtime.GOMAXPROCS(0)
	type state struct {
		d      *Decoder
		blocks []block
	}
	states := make([]state, n)
	for i := range states {
		_, states[i].blocks = codedBlocks(p, uint64(i))
		states[i].d, _ = NewDecoder(p, p.K)
	}
	var next atomic.Int32
	b.SetBytes(int64(p.GenerationSize()))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		st := states[int(next.Add(1)-1)%n]
		for pb.Next() {
			st.d.Reset()
			for _, blk := range st.blocks {
				st.d.Add(blk.coeffs, blk.payload)
				if st.d.Complete() {
					break
				}
			}
		}
	})
}
