package codingbench

import "math/rand/v2"

// logExp is the reference "pure-Go RLNC as a textbook writes it": GF(2^8)
// over the same polynomial through log/exp tables, one byte at a time, with
// the zero test every table multiply needs, and a progressive Gauss–Jordan
// decoder over an augmented matrix (coefficients then payload in each row).
// It is written from scratch here as a stand-in for github.com/itzmeanjan/kodr,
// which follows this design but could not be fetched (see docs/formats.md
// and README: the module proxy answers 403 for every version).
type logExp struct {
	log [256]int
	exp [512]byte
}

func newLogExp() *logExp {
	f := new(logExp)
	x := 1
	for i := 0; i < 255; i++ {
		f.exp[i], f.exp[i+255] = byte(x), byte(x)
		f.log[x] = i
		x <<= 1
		if x&0x100 != 0 {
			x ^= 0x11D
		}
	}
	return f
}

func (f *logExp) mul(a, b byte) byte {
	if a == 0 || b == 0 {
		return 0
	}
	return f.exp[f.log[a]+f.log[b]]
}

func (f *logExp) inv(a byte) byte { return f.exp[255-f.log[a]] }

// mulAdd sets out[i] ^= c·in[i].
func (f *logExp) mulAdd(c byte, in, out []byte) {
	for i, x := range in {
		out[i] ^= f.mul(c, x)
	}
}

// scale sets row[i] = c·row[i].
func (f *logExp) scale(c byte, row []byte) {
	for i, x := range row {
		row[i] = f.mul(c, x)
	}
}

// encode writes into out the combination of blocks with coeffs.
func (f *logExp) encode(coeffs []byte, blocks [][]byte, out []byte) {
	clear(out)
	for i, b := range blocks {
		f.mulAdd(coeffs[i], b, out)
	}
}

// logExpDecoder is the textbook progressive Gauss–Jordan decoder: rows of
// k coefficient bytes followed by B payload bytes, kept in RREF.
type logExpDecoder struct {
	f     *logExp
	k     int
	rows  [][]byte // k rows of k+B bytes; the first rank are in use
	pivot []int    // pivot column of each row in use
	rank  int
	buf   []byte // recoding scratch
}

func newLogExpDecoder(f *logExp, k, bs int) *logExpDecoder {
	d := &logExpDecoder{f: f, k: k, rows: make([][]byte, k), pivot: make([]int, k), buf: make([]byte, k+bs)}
	for i := range d.rows {
		d.rows[i] = make([]byte, k+bs)
	}
	return d
}

func (d *logExpDecoder) reset() { d.rank = 0 }

func (d *logExpDecoder) complete() bool { return d.rank == d.k }

// add reduces a coded block against the rows and keeps it if innovative.
func (d *logExpDecoder) add(coeffs, payload []byte) bool {
	if d.rank == d.k {
		return false
	}
	row := d.rows[d.rank]
	copy(row, coeffs)
	copy(row[d.k:], payload)
	for i, r := range d.rows[:d.rank] {
		if c := row[d.pivot[i]]; c != 0 {
			d.f.mulAdd(c, r, row)
		}
	}
	p := -1
	for j := 0; j < d.k; j++ {
		if row[j] != 0 {
			p = j
			break
		}
	}
	if p < 0 {
		return false
	}
	d.f.scale(d.f.inv(row[p]), row)
	for _, r := range d.rows[:d.rank] {
		if c := r[p]; c != 0 {
			d.f.mulAdd(c, row, r)
		}
	}
	d.pivot[d.rank] = p
	d.rank++
	return true
}

// recode writes a random combination of the rows into coeffs and payload.
func (d *logExpDecoder) recode(rng *rand.Rand, coeffs, payload []byte) {
	out := d.buf
	clear(out)
	for _, r := range d.rows[:d.rank] {
		d.f.mulAdd(byte(1+rng.IntN(255)), r, out)
	}
	copy(coeffs, out[:d.k])
	copy(payload, out[d.k:])
}

// source returns source block j of a complete decoder.
func (d *logExpDecoder) source(j int) []byte {
	for i, p := range d.pivot[:d.rank] {
		if p == j {
			return d.rows[i][d.k:]
		}
	}
	return nil
}
