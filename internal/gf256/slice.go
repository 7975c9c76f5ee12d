package gf256

import (
	"crypto/subtle"
	"fmt"
)

// MulSlice sets out[i] = c·in[i] for every i in in. out must be at least as
// long as in; bytes of out past len(in) are left alone. in and out may be the
// same slice but must not otherwise overlap.
func MulSlice(c byte, in, out []byte) {
	checkLen("MulSlice", in, out)
	switch c {
	case 0:
		clear(out[:len(in)])
	case 1:
		copy(out, in)
	default:
		mulSlice(c, in, out[:len(in)])
	}
}

// MulAddSlice sets out[i] ^= c·in[i] for every i in in. out must be at least
// as long as in; bytes of out past len(in) are left alone. in and out must not
// overlap.
func MulAddSlice(c byte, in, out []byte) {
	checkLen("MulAddSlice", in, out)
	switch c {
	case 0:
	case 1:
		subtle.XORBytes(out, out[:len(in)], in)
	default:
		mulAddSlice(c, in, out[:len(in)])
	}
}

// AddSlice sets out[i] ^= in[i] for every i in in: addition in the field.
// out must be at least as long as in.
func AddSlice(in, out []byte) {
	checkLen("AddSlice", in, out)
	subtle.XORBytes(out, out[:len(in)], in)
}

// DotProduct returns Σ a[i]·b[i] over the common length of a and b: a short
// inner product of two vectors whose entries both vary.
func DotProduct(a, b []byte) byte {
	b = b[:min(len(a), len(b))]
	a = a[:len(b)]
	var s0, s1, s2, s3 byte
	i := 0
	for ; i+4 <= len(b); i += 4 {
		s0 ^= tab.mul[a[i]][b[i]]
		s1 ^= tab.mul[a[i+1]][b[i+1]]
		s2 ^= tab.mul[a[i+2]][b[i+2]]
		s3 ^= tab.mul[a[i+3]][b[i+3]]
	}
	for ; i < len(b); i++ {
		s0 ^= tab.mul[a[i]][b[i]]
	}
	return s0 ^ s1 ^ s2 ^ s3
}

func checkLen(op string, in, out []byte) {
	if len(out) < len(in) {
		panic(fmt.Sprintf("gf256: %s: len(out) = %d < len(in) = %d", op, len(out), len(in)))
	}
}

// mulSliceGeneric is the pure-Go twin of mulSlice; len(out) == len(in).
func mulSliceGeneric(c byte, in, out []byte) {
	t := &tab.mul[c]
	out = out[:len(in)]
	i := 0
	for ; i+8 <= len(in); i += 8 {
		o := out[i : i+8 : i+8]
		x := in[i : i+8 : i+8]
		o[0], o[1], o[2], o[3] = t[x[0]], t[x[1]], t[x[2]], t[x[3]]
		o[4], o[5], o[6], o[7] = t[x[4]], t[x[5]], t[x[6]], t[x[7]]
	}
	for ; i < len(in); i++ {
		out[i] = t[in[i]]
	}
}

// mulAddSliceGeneric is the pure-Go twin of mulAddSlice; len(out) == len(in).
func mulAddSliceGeneric(c byte, in, out []byte) {
	t := &tab.mul[c]
	out = out[:len(in)]
	i := 0
	for ; i+8 <= len(in); i += 8 {
		o := out[i : i+8 : i+8]
		x := in[i : i+8 : i+8]
		o[0] ^= t[x[0]]
		o[1] ^= t[x[1]]
		o[2] ^= t[x[2]]
		o[3] ^= t[x[3]]
		o[4] ^= t[x[4]]
		o[5] ^= t[x[5]]
		o[6] ^= t[x[6]]
		o[7] ^= t[x[7]]
	}
	for ; i < len(in); i++ {
		out[i] ^= t[in[i]]
	}
}
