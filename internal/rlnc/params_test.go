package rlnc

import (
	"errors"
	"math"
	"testing"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		p    Params
		want error
	}{
		{DefaultParams(), nil},
		{Params{K: 1, BlockSize: 1024}, nil},
		{Params{K: 255, BlockSize: 1 << 20}, nil},
		{Params{K: 16, BlockSize: 1024 + 64}, nil},
		{Params{}, ErrK},
		{Params{K: 0, BlockSize: 4096}, ErrK},
		{Params{K: -1, BlockSize: 4096}, ErrK},
		{Params{K: 256, BlockSize: 4096}, ErrK},
		{Params{K: math.MaxInt, BlockSize: 4096}, ErrK},
		{Params{K: 64}, ErrBlockSize},
		{Params{K: 64, BlockSize: 960}, ErrBlockSize},
		{Params{K: 64, BlockSize: 1025}, ErrBlockSize},
		{Params{K: 64, BlockSize: 1<<20 + 64}, ErrBlockSize},
		{Params{K: 64, BlockSize: -4096}, ErrBlockSize},
		{Params{K: 64, BlockSize: math.MinInt}, ErrBlockSize},
	}
	for _, tt := range tests {
		err := tt.p.Validate()
		if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
			t.Errorf("%+v.Validate() = %v, want %v", tt.p, err, tt.want)
		}
	}
}

func TestLayout(t *testing.T) {
	p := Params{K: 4, BlockSize: 1024}
	gs := int64(p.GenerationSize())
	tests := []struct {
		size      int64
		gens      int
		lastLen   int
		lastBlock int
	}{
		{0, 0, 0, 0},
		{1, 1, 1, 1},
		{1023, 1, 1023, 1},
		{1024, 1, 1024, 1},
		{1025, 1, 1025, 2},
		{gs - 1, 1, int(gs - 1), 4},
		{gs, 1, int(gs), 4},
		{gs + 1, 2, 1, 1},
		{3*gs + 2049, 4, 2049, 3},
	}
	for _, tt := range tests {
		l, err := NewLayout(tt.size, p)
		if err != nil {
			t.Fatalf("NewLayout(%d) = %v", tt.size, err)
		}
		if l.Generations() != tt.gens || l.Size() != tt.size || l.Params() != p {
			t.Errorf("NewLayout(%d): %d generations, want %d", tt.size, l.Generations(), tt.gens)
			continue
		}
		checkLayout(t, l)
		if tt.gens == 0 {
			continue
		}
		last, _ := l.Generation(tt.gens - 1)
		if last.Length != tt.lastLen || last.Blocks != tt.lastBlock {
			t.Errorf("size %d: last generation %+v, want length %d, %d blocks", tt.size, last, tt.lastLen, tt.lastBlock)
		}
	}
}

// checkLayout checks that the generations tile the file exactly and that
// their blocks account for every byte.
func checkLayout(t *testing.T, l Layout) {
	t.Helper()
	var off int64
	n := l.Generations()
	idx := []int{0, 1, n - 2, n - 1}
	if n < 1000 {
		idx = idx[:0]
		for g := 0; g < n; g++ {
			idx = append(idx, g)
		}
	}
	for _, g := range idx {
		if g < 0 || g >= n {
			continue
		}
		gen, err := l.Generation(g)
		if err != nil {
			t.Fatalf("Generation(%d) = %v", g, err)
		}
		if n < 1000 && gen.Offset != off {
			t.Fatalf("generation %d at %d, want %d", g, gen.Offset, off)
		}
		if gen.Offset != int64(g)*int64(l.Params().GenerationSize()) {
			t.Fatalf("generation %d at offset %d", g, gen.Offset)
		}
		sum := 0
		for i := 0; i < gen.Blocks; i++ {
			sum += gen.BlockLength(i)
		}
		if sum != gen.Length || gen.Blocks < 1 || gen.Blocks > l.Params().K || gen.Length < 1 {
			t.Fatalf("generation %+v: blocks hold %d bytes", gen, sum)
		}
		if gen.BlockLength(gen.Blocks) != 0 || gen.BlockLength(-1) != 0 {
			t.Fatalf("BlockLength outside the generation is not 0")
		}
		if at, err := l.GenerationAt(gen.Offset + int64(gen.Length) - 1); err != nil || at != g {
			t.Fatalf("GenerationAt(end of %d) = %d, %v", g, at, err)
		}
		off = gen.Offset + int64(gen.Length)
	}
	if n < 1000 && off != l.Size() {
		t.Fatalf("generations cover %d bytes of %d", off, l.Size())
	}
	if last, err := l.Generation(n - 1); n > 0 && (err != nil || last.Offset+int64(last.Length) != l.Size()) {
		t.Fatalf("last generation %+v does not end at %d", last, l.Size())
	}
	for _, g := range []int{-1, n, n + 1} {
		if _, err := l.Generation(g); !errors.Is(err, ErrGeneration) {
			t.Fatalf("Generation(%d) = %v, want ErrGeneration", g, err)
		}
	}
	for _, off := range []int64{-1, l.Size()} {
		if _, err := l.GenerationAt(off); !errors.Is(err, ErrGeneration) {
			t.Fatalf("GenerationAt(%d) = %v, want ErrGeneration", off, err)
		}
	}
}

func TestLayoutHuge(t *testing.T) {
	tests := []struct {
		size int64
		p    Params
	}{
		{5 << 30, DefaultParams()},
		{1 << 40, DefaultParams()},
		{math.MaxInt64, DefaultParams()},
		{math.MaxInt64, Params{K: 1, BlockSize: 1024}},
		{math.MaxInt64 - 1, Params{K: 255, BlockSize: 1 << 20}},
	}
	for _, tt := range tests {
		l, err := NewLayout(tt.size, tt.p)
		if err != nil {
			t.Fatalf("NewLayout(%d, %+v) = %v", tt.size, tt.p, err)
		}
		gs := int64(tt.p.GenerationSize())
		if want := (tt.size-1)/gs + 1; int64(l.Generations()) != want {
			t.Errorf("NewLayout(%d): %d generations, want %d", tt.size, l.Generations(), want)
		}
		checkLayout(t, l)
	}
}

func TestLayoutErrors(t *testing.T) {
	if _, err := NewLayout(-1, DefaultParams()); !errors.Is(err, ErrFileSize) {
		t.Errorf("NewLayout(-1) = %v, want ErrFileSize", err)
	}
	if _, err := NewLayout(10, Params{K: 300, BlockSize: 4096}); !errors.Is(err, ErrK) {
		t.Errorf("NewLayout with k = 300: %v, want ErrK", err)
	}
}
