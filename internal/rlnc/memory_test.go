package rlnc

import (
	"fmt"
	"runtime"
	"testing"
)

// TestDecoderMemory checks the bound of the package documentation: a
// Decoder holds n·(B+n) bytes of rows plus O(n²) — here at most 32·n² + 64
// KiB of scratch and queue tables — and decoding allocates nothing more
// (TestNoAllocs).
func TestDecoderMemory(t *testing.T) {
	for _, p := range []Params{{K: 1, BlockSize: 1024}, {K: 16, BlockSize: 4096}, DefaultParams(), {K: 255, BlockSize: 64 << 10}} {
		t.Run(fmt.Sprintf("k=%d/B=%d", p.K, p.BlockSize), func(t *testing.T) {
			n := p.K
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			d, err := NewDecoder(p, n)
			runtime.ReadMemStats(&after)
			if err != nil {
				t.Fatal(err)
			}
			got := after.TotalAlloc - before.TotalAlloc
			rows := uint64(n * (p.BlockSize + n))
			if limit := rows + uint64(32*n*n) + 64<<10; got < rows || got > limit {
				t.Errorf("NewDecoder allocated %d bytes, want %d of rows plus at most %d", got, rows, limit-rows)
			}
			t.Logf("%d bytes: %d of rows, %d of scratch", got, rows, got-rows)
			runtime.KeepAlive(d)
		})
	}
}
