package rlnc

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
)

func TestCombineServesOfferedVectors(t *testing.T) {
	p := Params{K: 16, BlockSize: 1024}
	rng := rand.New(rand.NewPCG(7, 8))
	data := make([]byte, p.GenerationSize()-100)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	enc, err := NewEncoder(p, data, rng)
	if err != nil {
		t.Fatal(err)
	}
	n := enc.Blocks()
	d, _ := NewDecoder(p, n)
	coeffs, payload := make([]byte, n), make([]byte, p.BlockSize)
	for i := 0; i < 5; i++ {
		enc.Random(coeffs, payload)
		d.Add(coeffs, payload)
	}
	// Offer a vector, decode more, then serve it: still right.
	offer := make([]byte, n)
	if err := d.SpanVector(rng, offer); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		enc.Random(coeffs, payload)
		d.Add(coeffs, payload)
	}
	got := make([]byte, p.BlockSize)
	if err := d.Combine(offer, got); err != nil {
		t.Fatal(err)
	}
	want := make([]byte, p.BlockSize)
	enc.Combine(offer, want)
	if !bytes.Equal(got, want) {
		t.Fatal("Combine of an offered vector differs from the encoder's block")
	}
	// A vector outside the span is refused.
	for {
		RandomCoefficients(rng, coeffs)
		if d.Innovative(coeffs) {
			break
		}
	}
	if err := d.Combine(coeffs, got); !errors.Is(err, ErrNotInSpan) {
		t.Errorf("Combine(outside) = %v, want ErrNotInSpan", err)
	}
}

func TestBasis(t *testing.T) {
	const n = 8
	rng := rand.New(rand.NewPCG(1, 1))
	b := NewBasis(n)
	vs := make([][]byte, 0, n)
	for b.Rank() < n {
		v := make([]byte, n)
		RandomCoefficients(rng, v)
		if b.Add(v) {
			vs = append(vs, v)
		}
	}
	// Any combination of added vectors is not innovative.
	comb := make([]byte, n)
	for _, v := range vs[:3] {
		for i := range comb {
			comb[i] ^= v[i]
		}
	}
	b2 := NewBasis(n)
	for _, v := range vs[:3] {
		b2.Add(v)
	}
	if b2.Innovative(comb) || b2.Add(comb) {
		t.Error("a combination of the basis was innovative")
	}
	if !b2.Innovative(vs[3]) {
		t.Error("an independent vector was not innovative")
	}
	b2.Reset()
	if b2.Rank() != 0 || !b2.Innovative(comb) {
		t.Error("Reset did not empty the basis")
	}
}

// Peers that trade source blocks as they are: unit rows are recognised on
// both sides, served by a copy, and a unit that is mixed into a dense row is
// no longer reported as held.
func TestUnitRows(t *testing.T) {
	p := Params{K: 8, BlockSize: 1024}
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, p.GenerationSize())
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	enc, _ := NewEncoder(p, data, rng)
	d, _ := NewDecoder(p, 8)
	b := NewBasis(8)
	coeffs, payload := make([]byte, 8), make([]byte, p.BlockSize)
	for _, i := range []int{1, 5} {
		enc.Systematic(i, coeffs, payload)
		d.Add(coeffs, payload)
		b.Add(coeffs)
	}
	for s := range 8 {
		if got, want := d.UnitRow(s), s == 1 || s == 5; got != want {
			t.Errorf("UnitRow(%d) = %v, want %v", s, got, want)
		}
	}
	bits := []byte{0xff}
	b.UnitColumns(bits)
	if bits[0] != 1<<1|1<<5 {
		t.Errorf("UnitColumns = %08b, want %08b", bits[0], 1<<1|1<<5)
	}
	if free := b.UnitFree(nil); len(free) != 6 || free[0] != 0 || free[1] != 2 {
		t.Errorf("UnitFree = %v", free)
	}
	// A copy serves e_5 and 3·e_1 exactly.
	got, want := make([]byte, p.BlockSize), make([]byte, p.BlockSize)
	for _, c := range []byte{1, 3} {
		v := make([]byte, 8)
		v[5] = c
		if err := d.Combine(v, got); err != nil {
			t.Fatal(err)
		}
		enc.Combine(v, want)
		if !bytes.Equal(got, want) {
			t.Errorf("Combine(%d·e_5) differs from the encoder's block", c)
		}
	}
	if i, ok := Unit([]byte{0, 0, 1, 0}); !ok || i != 2 {
		t.Errorf("Unit(e_2) = %d, %v", i, ok)
	}
	for _, v := range [][]byte{{0, 0}, {0, 2}, {1, 1}} {
		if _, ok := Unit(v); ok {
			t.Errorf("Unit(%v) = true", v)
		}
	}
	// A row that is not a unit (pivot 3, a non-zero in free column 6) is
	// not reported as one and leaves the unit rows alone.
	v := []byte{0, 0, 0, 1, 0, 0, 7, 0}
	enc.Combine(v, payload)
	d.Add(v, payload)
	b.Add(v)
	if d.UnitRow(3) {
		t.Error("a dense row reported as a unit")
	}
	b.UnitColumns(bits)
	if bits[0] != 1<<1|1<<5 {
		t.Errorf("UnitColumns after a dense row = %08b", bits[0])
	}
	if !d.UnitRow(1) || !d.UnitRow(5) {
		t.Error("unit rows lost to a dense one")
	}
}
