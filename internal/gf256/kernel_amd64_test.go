//go:build amd64 && !purego

package gf256

import (
	"testing"

	"golang.org/x/sys/cpu"
)

// TestKernelSets runs the Matrix and slice-kernel checks with each set of
// kernels this CPU has, not only the one the package picked: the AVX2
// nibble-table kernels and, with AVX-512 and GFNI, the affine ones. The
// default set is skipped: the tests themselves run it.
func TestKernelSets(t *testing.T) {
	saved := useGFNI
	defer func() { useGFNI = saved }()
	sets := []struct {
		name string
		gfni bool
		ok   bool
	}{
		{"avx2", false, cpu.X86.HasAVX2},
		{"gfni", true, cpu.X86.HasAVX2 && cpu.X86.HasAVX512F && cpu.X86.HasAVX512GFNI},
	}
	for _, s := range sets {
		t.Run(s.name, func(t *testing.T) {
			if !s.ok {
				t.Skipf("this CPU lacks the %s kernels", s.name)
			}
			if s.gfni == saved {
				t.Skipf("the %s kernels are the default, which the other tests check", s.name)
			}
			useGFNI = s.gfni
			checkMatrix(t)
			TestMatrixMathematics(t)
			TestSliceKernels(t)
			TestNoAllocs(t)
		})
	}
}

// TestAffineTables checks the GFNI bit matrices without the instruction:
// applying aff[c] to x as VGF2P8AFFINEQB does gives c·x.
func TestAffineTables(t *testing.T) {
	for c := 0; c < 256; c++ {
		for x := 0; x < 256; x++ {
			var y byte
			for i := 0; i < 8; i++ {
				row := tab.aff[c][7-i]
				p := row & byte(x)
				p ^= p >> 4
				p ^= p >> 2
				p ^= p >> 1
				y |= (p & 1) << i
			}
			if want := slowMul(byte(c), byte(x)); y != want {
				t.Fatalf("affine(%d)·%d = %d, want %d", c, x, y, want)
			}
		}
	}
}
