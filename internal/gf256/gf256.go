// Package gf256 implements arithmetic in GF(2^8), the field of 256 elements
// built on the polynomial x^8 + x^4 + x^3 + x^2 + 1 (0x11D) with generator 2,
// the same field as klauspost/reedsolomon and most erasure codes.
//
// Addition is XOR. Mul, Div, Inv, Exp and Log work on single elements
// through log/exp tables. The slice kernels work on whole buffers:
// MulSlice (out = c·in), MulAddSlice (out ^= c·in) and AddSlice
// (out ^= in); Matrix is the fused form that computes several outputs from
// several inputs, reading each input once: out_j ^= Σ_i c_ji·in_i; Weights
// computes inner products Σ u[i]·y[i] with a fixed u (VGF2P8MULB through
// the isomorphism onto the field of AES, where GFNI runs).
//
// On amd64 the fused kernels are generated assembly (kernel_amd64.s): with
// AVX-512 and GFNI one VGF2P8AFFINEQB multiplies 64 bytes by a constant's
// bit matrix, else with AVX2 VPSHUFB looks up nibble tables; elsewhere, and in every build
// with the purego tag, a pure-Go twin runs instead. Both always compile and a
// test asserts that they agree. The functions allocate nothing. Tables are
// immutable, so every function is safe for concurrent use; a Matrix is not.
package gf256

// Polynomial is the field's reduction polynomial, x^8+x^4+x^3+x^2+1.
const Polynomial = 0x11D

// fieldTables holds the scalar log/exp tables and the product tables the
// kernels use. It is computed once and never written afterwards.
type fieldTables struct {
	exp [512]byte      // exp[i] = 2^i; doubled so exp[log a + log b] needs no reduction
	log [256]byte      // log[a] for a != 0; log[0] is unused
	inv [256]byte      // inv[a] = a^-1; inv[0] = 0
	mul [256][256]byte // mul[a][b] = a·b
	// nib[c] holds the VPSHUFB tables of the constant c as the kernels load
	// them: the 16 products c·x for x in 0..15, twice (one copy per 128-bit
	// lane), then the 16 products c·(x<<4), twice.
	nib [256][64]byte
	// aff[c] is the 8×8 bit matrix of multiplication by c as the GFNI
	// kernels load it (VGF2P8AFFINEQB): byte 7-i, little-endian, holds in
	// bit j the bit i of c·2^j.
	aff [256][8]byte
}

var tab = newTables()

func newTables() *fieldTables {
	t := new(fieldTables)
	x := 1
	for i := 0; i < 255; i++ {
		t.exp[i] = byte(x)
		t.exp[i+255] = byte(x)
		t.log[x] = byte(i)
		x <<= 1
		if x&0x100 != 0 {
			x ^= Polynomial
		}
	}
	t.exp[510], t.exp[511] = t.exp[0], t.exp[1]
	for a := 1; a < 256; a++ {
		t.inv[a] = t.exp[255-int(t.log[a])]
		for b := 1; b < 256; b++ {
			t.mul[a][b] = t.exp[int(t.log[a])+int(t.log[b])]
		}
	}
	for c := 0; c < 256; c++ {
		for x := 0; x < 16; x++ {
			t.nib[c][x] = t.mul[c][x]
			t.nib[c][16+x] = t.mul[c][x]
			t.nib[c][32+x] = t.mul[c][x<<4]
			t.nib[c][48+x] = t.mul[c][x<<4]
		}
		for i := 0; i < 8; i++ {
			var row byte
			for j := 0; j < 8; j++ {
				row |= (t.mul[c][1<<j] >> i & 1) << j
			}
			t.aff[c][7-i] = row
		}
	}
	return t
}

// Mul returns the product a·b.
func Mul(a, b byte) byte { return tab.mul[a][b] }

// Div returns a/b. Division by zero returns 0; callers that may see a zero
// divisor must check for it themselves.
func Div(a, b byte) byte { return tab.mul[a][tab.inv[b]] }

// Inv returns the multiplicative inverse of a, or 0 when a is 0.
func Inv(a byte) byte { return tab.inv[a] }

// Exp returns 2^n, the generator raised to the n-th power; n may be any
// integer, including a negative one.
func Exp(n int) byte {
	n %= 255
	if n < 0 {
		n += 255
	}
	return tab.exp[n]
}

// Log returns the discrete logarithm of a to base 2, in 0..254. Log(0) is
// undefined and returns -1.
func Log(a byte) int {
	if a == 0 {
		return -1
	}
	return int(tab.log[a])
}
