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
