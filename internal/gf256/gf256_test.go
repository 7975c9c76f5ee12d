package gf256

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
)

// slowMul multiplies by shift-and-add, independently of the tables.
func slowMul(a, b byte) byte {
	var p byte
	x, y := uint16(a), b
	for y != 0 {
		if y&1 != 0 {
			p ^= byte(x)
		}
		x <<= 1
		if x&0x100 != 0 {
			x ^= Polynomial
		}
		y >>= 1
	}
	return p
}

func TestScalar(t *testing.T) {
	for a := 0; a < 256; a++ {
		for b := 0; b < 256; b++ {
			if got, want := Mul(byte(a), byte(b)), slowMul(byte(a), byte(b)); got != want {
				t.Fatalf("Mul(%d, %d) = %d, want %d", a, b, got, want)
			}
			if b != 0 {
				if got := Mul(Div(byte(a), byte(b)), byte(b)); got != byte(a) {
					t.Fatalf("Div(%d, %d)·%d = %d, want %d", a, b, b, got, a)
				}
			}
		}
		if a != 0 {
			if got := Mul(byte(a), Inv(byte(a))); got != 1 {
				t.Fatalf("%d·Inv(%d) = %d, want 1", a, a, got)
			}
			if got := Exp(Log(byte(a))); got != byte(a) {
				t.Fatalf("Exp(Log(%d)) = %d", a, got)
			}
		}
	}
	if Inv(0) != 0 || Log(0) != -1 {
		t.Errorf("Inv(0) = %d, Log(0) = %d, want 0, -1", Inv(0), Log(0))
	}
	seen := make(map[byte]bool)
	for n := 0; n < 255; n++ {
		seen[Exp(n)] = true
		if Exp(n) != Exp(n+255) || Exp(n) != Exp(n-255) {
			t.Fatalf("Exp(%d) is not periodic", n)
		}
	}
	if len(seen) != 255 || seen[0] {
		t.Errorf("2 generates %d elements, want the 255 non-zero ones", len(seen))
	}
}

func TestDotProduct(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 40; n++ {
		a, b := randBytes(r, n), randBytes(r, n+3)
		var want byte
		for i := range a {
			want ^= slowMul(a[i], b[i])
		}
		if got := DotProduct(a, b); got != want {
			t.Errorf("DotProduct(len %d) = %d, want %d", n, got, want)
		}
	}
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// TestSliceKernels checks MulSlice and MulAddSlice, whichever kernels this
// build uses, against the pure-Go twins for every constant and every length
// from 0 to 4096, and that nothing past len(in) is written.
func TestSliceKernels(t *testing.T) {
	const maxLen = 4096
	r := rand.New(rand.NewPCG(3, 4))
	in := randBytes(r, maxLen)
	init := randBytes(r, maxLen+64)
	out := make([]byte, maxLen+64)
	wantMul := make([]byte, maxLen)
	wantAdd := make([]byte, maxLen)
	for c := 0; c < 256; c++ {
		mulSliceGeneric(byte(c), in, wantMul)
		copy(wantAdd, init)
		mulAddSliceGeneric(byte(c), in, wantAdd)
		for n := 0; n <= maxLen; n++ {
			copy(out, init[:n+64])
			MulSlice(byte(c), in[:n], out)
			if !bytes.Equal(out[:n], wantMul[:n]) || !bytes.Equal(out[n:n+64], init[n:n+64]) {
				t.Fatalf("MulSlice(%d, len %d) disagrees with the pure-Go kernel", c, n)
			}
			copy(out, init[:n+64])
			MulAddSlice(byte(c), in[:n], out)
			if !bytes.Equal(out[:n], wantAdd[:n]) || !bytes.Equal(out[n:n+64], init[n:n+64]) {
				t.Fatalf("MulAddSlice(%d, len %d) disagrees with the pure-Go kernel", c, n)
			}
		}
	}
	// In place.
	x := randBytes(r, 1000)
	want := make([]byte, len(x))
	mulSliceGeneric(77, x, want)
	MulSlice(77, x, x)
	if !bytes.Equal(x, want) {
		t.Errorf("MulSlice in place disagrees with the pure-Go kernel")
	}
}

func TestAddSlice(t *testing.T) {
	a, b := []byte{1, 2, 3}, []byte{3, 2, 1, 9}
	AddSlice(a, b)
	if want := []byte{2, 0, 2, 9}; !bytes.Equal(b, want) {
		t.Errorf("AddSlice = %v, want %v", b, want)
	}
}

func TestSliceShortOutputPanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MulAddSlice with a short output did not panic")
		}
	}()
	MulAddSlice(3, make([]byte, 10), make([]byte, 9))
}

// TestMatrix checks the fused kernels against the pure-Go twin on random
// shapes, lengths and ranges.
func TestMatrix(t *testing.T) { checkMatrix(t) }

// checkMatrix checks whichever fused kernels are in use against the pure-Go
// twin: on random shapes at chosen lengths and ranges, then on a few shapes
// at every length from 0 to 4160.
func checkMatrix(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	shapes := [][2]int{{1, 1}, {1, 64}, {4, 10}, {5, 3}, {9, 70}, {16, 64}, {3, 1}, {13, 2}, {0, 4}, {2, 0}}
	lengths := []int{0, 1, 63, 64, 65, 127, 128, 1000, 4096, 4160 + 7}
	var m Matrix
	for _, sh := range shapes {
		for _, n := range lengths {
			rows, cols := sh[0], sh[1]
			t.Run(fmt.Sprintf("%dx%d/%d", rows, cols, n), func(t *testing.T) {
				coeffs := randBytes(r, rows*cols)
				if rows*cols > 2 {
					coeffs[0], coeffs[1] = 0, 1
				}
				m.Reset(rows, cols, coeffs)
				in := make([][]byte, cols)
				for i := range in {
					in[i] = randBytes(r, n+int(r.IntN(3)))
				}
				for _, add := range []bool{false, true} {
					for _, rng := range [][2]int{{0, n}, {n / 3, n - n/5}} {
						checkProduct(t, &m, r, in, n, rng[0], rng[1], add)
					}
				}
			})
		}
	}
	// Every length: the 64-byte body, the 128-byte columns of one output,
	// the tiles from 1 KiB and the pure-Go tail all meet somewhere here.
	for _, sh := range [][2]int{{1, 9}, {2, 1}, {5, 3}} {
		rows, cols := sh[0], sh[1]
		m.Reset(rows, cols, randBytes(r, rows*cols))
		in := make([][]byte, cols)
		for i := range in {
			in[i] = randBytes(r, 4160)
		}
		for n := 0; n <= 4160; n++ {
			for _, add := range []bool{false, true} {
				checkProduct(t, &m, r, in, n, 0, n, add)
			}
		}
	}
}

// checkProduct applies m over [lo, hi) to outputs of n random bytes and
// compares them with the pure-Go twin's.
func checkProduct(t *testing.T, m *Matrix, r *rand.Rand, in [][]byte, n, lo, hi int, add bool) {
	t.Helper()
	got := make([][]byte, m.Rows())
	want := make([][]byte, m.Rows())
	for j := range got {
		got[j] = randBytes(r, n)
		want[j] = bytes.Clone(got[j])
	}
	m.applyGeneric(in, want, lo, hi, add)
	if add {
		m.MulAddRange(in, got, lo, hi)
	} else {
		m.MulRange(in, got, lo, hi)
	}
	for j := range got {
		if !bytes.Equal(got[j], want[j]) {
			t.Fatalf("%dx%d, %d bytes, add=%v, range [%d,%d): output %d disagrees with the pure-Go kernel", m.Rows(), m.Cols(), n, add, lo, hi, j)
		}
	}
}

func TestMatrixMathematics(t *testing.T) {
	// out_j = Σ_i c_ji·in_i, checked element by element with slowMul.
	r := rand.New(rand.NewPCG(7, 8))
	rows, cols, n := 6, 11, 300
	coeffs := randBytes(r, rows*cols)
	in := make([][]byte, cols)
	for i := range in {
		in[i] = randBytes(r, n)
	}
	out := make([][]byte, rows)
	for j := range out {
		out[j] = make([]byte, n)
	}
	NewMatrix(rows, cols, coeffs).Mul(in, out)
	for j := range out {
		for p := 0; p < n; p++ {
			var want byte
			for i := range in {
				want ^= slowMul(coeffs[j*cols+i], in[i][p])
			}
			if out[j][p] != want {
				t.Fatalf("out[%d][%d] = %d, want %d", j, p, out[j][p], want)
			}
		}
	}
}

func TestMatrixPanics(t *testing.T) {
	m := NewMatrix(2, 2, []byte{1, 2, 3, 4})
	tests := []struct {
		name string
		f    func()
	}{
		{"few coefficients", func() { NewMatrix(2, 2, []byte{1}) }},
		{"wrong inputs", func() { m.Mul(make([][]byte, 3), make([][]byte, 2)) }},
		{"short input", func() { m.Mul([][]byte{make([]byte, 5), make([]byte, 4)}, [][]byte{make([]byte, 5), make([]byte, 5)}) }},
		{"uneven outputs", func() { m.Mul([][]byte{make([]byte, 5), make([]byte, 5)}, [][]byte{make([]byte, 5), make([]byte, 4)}) }},
		{"bad range", func() { m.MulRange([][]byte{nil, nil}, [][]byte{nil, nil}, 3, 2) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("%s did not panic", tt.name)
				}
			}()
			tt.f()
		})
	}
}

func TestNoAllocs(t *testing.T) {
	in := [][]byte{make([]byte, 4096), make([]byte, 4096)}
	out := [][]byte{make([]byte, 4096), make([]byte, 4096), make([]byte, 4096), make([]byte, 4096), make([]byte, 4096)}
	m := NewMatrix(5, 2, make([]byte, 10))
	allocs := testing.AllocsPerRun(100, func() {
		MulSlice(3, in[0], out[0])
		MulAddSlice(3, in[0], out[0])
		m.Reset(5, 2, []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10})
		m.MulAdd(in, out)
		m.Mul(in, out)
	})
	if allocs != 0 {
		t.Errorf("kernels allocate %v times per run, want 0", allocs)
	}
}
