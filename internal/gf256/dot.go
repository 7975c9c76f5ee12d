package gf256

// Weights is a fixed vector u for many inner products Σ u[i]·y[i] with
// varying y (Dot), such as the secret vectors of a linear checksum. It keeps
// u in the form the fast kernel needs. Dot is safe for concurrent use; Set
// is not.
//
// The kernel (AVX-512 GFNI) multiplies bytes pairwise with VGF2P8MULB, which
// works in the field of AES (polynomial 0x11B), not in ours (0x11D). The two
// fields are isomorphic: φ(a) = Σ a_k·β^k, with β a root of our polynomial
// in AES's field, maps one onto the other, is linear over GF(2) (one
// VGF2P8AFFINEQB by a constant matrix), and keeps products: φ(a·b) =
// φ(a)·φ(b). So Σ u[i]·y[i] = φ⁻¹(Σ φ(u[i])·φ(y[i])), with φ(u) computed
// once here.
type Weights struct {
	u  []byte
	fu []byte // φ(u[i]), for the kernel; nil where it does not run
}

// NewWeights returns the Weights of u; it keeps its own copy.
func NewWeights(u []byte) *Weights {
	w := new(Weights)
	w.Set(u)
	return w
}

// Set makes w the Weights of u, reusing w's memory; it keeps its own copy.
// The zero Weights is that of an empty vector.
func (w *Weights) Set(u []byte) {
	w.u = append(w.u[:0], u...)
	if useDotKernel {
		w.fu = w.fu[:0]
		for _, c := range u {
			w.fu = append(w.fu, iso.to[c])
		}
	}
}

// Len returns the length of u.
func (w *Weights) Len() int { return len(w.u) }

// Dot returns Σ u[i]·y[i] over the common length of u and y.
func (w *Weights) Dot(y []byte) byte {
	n := min(len(w.u), len(y))
	var s byte
	done := 0
	if w.fu != nil {
		if done = n &^ 63; done > 0 {
			s = iso.from[dotGFNI(iso.matrix, w.fu[:done], y[:done])]
		}
	}
	return s ^ DotProduct(w.u[done:n], y[done:n])
}

// DotGeneric is Dot computed by the pure-Go twin whatever the build, for
// tests and benchmarks that set the two side by side.
func (w *Weights) DotGeneric(y []byte) byte { return DotProduct(w.u, y) }

// aesPoly is the polynomial of the field VGF2P8MULB multiplies in.
const aesPoly = 0x11B

// isomorphism holds φ, from our field to AES's, and its inverse.
type isomorphism struct {
	to, from [256]byte
	// matrix is φ as VGF2P8AFFINEQB takes it (see fieldTables.aff).
	matrix uint64
}

var iso = newIsomorphism()

// aesMul multiplies in AES's field.
func aesMul(a, b byte) byte {
	var p byte
	for b != 0 {
		if b&1 != 0 {
			p ^= a
		}
		hi := a & 0x80
		a <<= 1
		if hi != 0 {
			a ^= aesPoly & 0xff
		}
		b >>= 1
	}
	return p
}

func newIsomorphism() *isomorphism {
	// β: the first element of AES's field that is a root of ours,
	// x^8 + x^4 + x^3 + x^2 + 1.
	pow := func(b byte, n int) byte {
		p := byte(1)
		for range n {
			p = aesMul(p, b)
		}
		return p
	}
	var beta byte
	for b := 2; b < 256; b++ {
		x := byte(b)
		if pow(x, 8)^pow(x, 4)^pow(x, 3)^pow(x, 2)^1 == 0 {
			beta = x
			break
		}
	}
	m := new(isomorphism)
	var basis [8]byte // φ(2^k) = β^k
	for k := range basis {
		basis[k] = pow(beta, k)
	}
	for a := 0; a < 256; a++ {
		var f byte
		for k := 0; k < 8; k++ {
			if a>>k&1 != 0 {
				f ^= basis[k]
			}
		}
		m.to[a] = f
		m.from[f] = byte(a)
	}
	// Row 7-i of the matrix holds, in bit j, bit i of φ(2^j).
	for i := 0; i < 8; i++ {
		var row byte
		for j := 0; j < 8; j++ {
			row |= (basis[j] >> i & 1) << j
		}
		m.matrix |= uint64(row) << (8 * (7 - i))
	}
	return m
}
