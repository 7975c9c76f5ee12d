package rlnc

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

// FuzzDecoder feeds a Decoder blocks whose coefficients come from the fuzzer
// and whose payloads are either honest (the encoder's combination for those
// coefficients) or taken from the fuzzer too, interleaved with real coded
// blocks, Innovative checks and recoding. The Decoder must never panic, its
// rank must stay within 0..n, Innovative must predict Add, and when every
// accepted block was honest the decoded generation must be the source.
//
// Input layout: byte 0 picks n (1..16), byte 1 the data length, then
// records: an opcode byte followed by n coefficient bytes and, for junk
// payloads, up to B payload bytes (zero-padded).
func FuzzDecoder(f *testing.F) {
	f.Add([]byte{4, 200, 0, 0, 0, 0})
	f.Add([]byte{3, 7, 1, 1, 0, 0, 1, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Add([]byte{2, 255, 2, 9, 9, 3, 1, 2, 4, 0, 0, 0, 0})
	f.Add([]byte{1, 1, 1, 0, 1, 5, 1, 0, 0})
	f.Add([]byte{16, 128, 3, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 2 {
			return
		}
		const bs = 1024
		n := 1 + int(in[0])%16
		size := (n-1)*bs + 1 + int(in[1])*(bs-1)/255
		in = in[2:]
		p := Params{K: 16, BlockSize: bs}
		r := rand.New(rand.NewPCG(uint64(n), uint64(size)))
		data := randData(r, size)
		e, err := NewEncoder(p, data, r)
		if err != nil || e.Blocks() != n {
			t.Fatalf("NewEncoder(%d bytes) = %d blocks, %v; want %d", size, e.Blocks(), err, n)
		}
		d, err := NewDecoder(p, n)
		if err != nil {
			t.Fatal(err)
		}
		coeffs, payload := make([]byte, n), make([]byte, bs)
		honest := true
		take := func(k int) []byte {
			k = min(k, len(in))
			b := in[:k:k]
			in = in[k:]
			return b
		}
		takeByte := func() int {
			if b := take(1); len(b) == 1 {
				return int(b[0])
			}
			return 0
		}
		for len(in) > 0 {
			op := takeByte() % 5
			switch op {
			case 0: // a real coded block
				e.Next(coeffs, payload)
			case 1, 2: // fuzzer coefficients, honest or junk payload
				clear(coeffs)
				copy(coeffs, take(n))
				e.Combine(coeffs, payload)
				if op == 2 {
					clear(payload)
					copy(payload, take(1+takeByte()%64))
				}
			case 3: // recode what the decoder holds
				if err := d.Recode(r, coeffs, payload); err != nil {
					if !errors.Is(err, ErrNothingToSend) || d.Rank() != 0 {
						t.Fatalf("Recode at rank %d: %v", d.Rank(), err)
					}
					continue
				}
				if d.Innovative(coeffs) {
					t.Fatalf("a block recoded from the decoder is innovative for it")
				}
			case 4: // wrong lengths are errors, not panics
				if _, err := d.Add(coeffs[:n-1], payload); err == nil {
					t.Fatalf("Add with %d coefficients succeeded", n-1)
				}
				continue
			}
			before := d.Rank()
			want := d.Innovative(coeffs)
			got, err := d.Add(coeffs, payload)
			if err != nil {
				t.Fatal(err)
			}
			if got != want || d.Rank() != before+b2i(got) || d.Rank() > n {
				t.Fatalf("Innovative = %v, Add = %v, rank %d -> %d of %d", want, got, before, d.Rank(), n)
			}
			if got && op == 2 {
				honest = false
			}
		}
		if d.Complete() && honest && !bytes.Equal(d.Data()[:size], data) {
			t.Fatalf("decoded generation differs from the source")
		}
		if !d.Complete() && d.Data() != nil {
			t.Fatalf("incomplete decoder returned data")
		}
		// The coefficient rows are in RREF whatever was fed.
		for s := 0; s < n; s++ {
			if !d.has[s] {
				continue
			}
			for q := 0; q < n; q++ {
				if d.has[q] && d.coeffs[s*n+q] != b2u(q == s) {
					t.Fatalf("row %d has %d in pivot column %d", s, d.coeffs[s*n+q], q)
				}
			}
		}
	})
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// FuzzLayout checks Params validation and the layout of any file size:
// no panic, errors exactly for invalid input, and generations that tile
// the file.
func FuzzLayout(f *testing.F) {
	f.Add(int64(0), 64, 32<<10)
	f.Add(int64(1), 1, 1024)
	f.Add(int64(64*32<<10-1), 64, 32<<10)
	f.Add(int64(64*32<<10+1), 64, 32<<10)
	f.Add(int64(1<<62), 255, 1<<20)
	f.Add(int64(-1), 64, 32<<10)
	f.Add(int64(100), 0, 1024)
	f.Add(int64(100), 64, 1000)
	f.Add(int64(9223372036854775807), 1, 1024)
	f.Fuzz(func(t *testing.T, size int64, k, bs int) {
		p := Params{K: k, BlockSize: bs}
		valid := k >= 1 && k <= 255 && bs >= 1024 && bs <= 1<<20 && bs%64 == 0
		if err := p.Validate(); (err == nil) != valid {
			t.Fatalf("%+v.Validate() = %v, want valid = %v", p, err, valid)
		}
		l, err := NewLayout(size, p)
		if (err == nil) != (valid && size >= 0) {
			t.Fatalf("NewLayout(%d, %+v) = %v", size, p, err)
		}
		if err != nil {
			return
		}
		checkLayout(t, l)
	})
}
