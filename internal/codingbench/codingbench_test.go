package codingbench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"avalanche/internal/gf256"
)

func TestRun(t *testing.T) {
	cfg := Config{Ks: []int{4, 64}, BlockSizes: []int{1024, 32 << 10}, Duration: 3 * time.Millisecond, Rounds: 1, Batch: 2}
	var seen int
	rs, err := Run(context.Background(), cfg, func(Result) { seen++ })
	if err != nil {
		t.Fatal(err)
	}
	// 5 per block size, 10 per generation shape.
	if want := 2*5 + 4*10; len(rs) != want || seen != want {
		t.Fatalf("Run returned %d results (%d reported), want %d", len(rs), seen, want)
	}
	for _, r := range rs {
		if r.MBPerS <= 0 {
			t.Errorf("%+v: no rate", r)
		}
	}
	var table bytes.Buffer
	if err := WriteTable(&table, rs); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"op", "reedsolomon", "logexp", "encode", "decode", "verify", "Targets at k=64", "decode / encode"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	var js bytes.Buffer
	WriteJSON(&js, rs)
	var back []map[string]any
	if err := json.Unmarshal(js.Bytes(), &back); err != nil || len(back) != len(rs) {
		t.Fatalf("JSON does not round-trip: %v", err)
	}
	for _, f := range []string{"op", "impl", "k", "block", "mb_per_s"} {
		if _, ok := back[0][f]; !ok {
			t.Errorf("JSON record lacks %q: %v", f, back[0])
		}
	}
}

func TestRunCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, Config{Ks: []int{4}, BlockSizes: []int{1024}}, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Run(cancelled) = %v", err)
	}
	if _, err := Run(context.Background(), Config{Ks: []int{300}}, nil); err == nil {
		t.Errorf("Run(k=300) did not fail")
	}
}

func TestTargets(t *testing.T) {
	rs := []Result{
		{OpEncode, ImplAvalanche, 64, 32 << 10, 600},
		{OpEncode, ImplReedSolomon, 64, 32 << 10, 500},
		{OpEncode, ImplLogExp, 64, 32 << 10, 10},
		{OpDecode, ImplAvalanche, 64, 32 << 10, 450},
		{OpDecode, ImplLogExp, 64, 32 << 10, 5},
		{OpVerify, ImplAvalanche, 64, 32 << 10, 2500},
	}
	ts := Targets(rs)
	want := []bool{true, false, false, true, true}
	if len(ts) != len(want) {
		t.Fatalf("%d targets, want %d", len(ts), len(want))
	}
	for i, tg := range ts {
		if tg.Met() != want[i] {
			t.Errorf("%s = %.2f: Met() = %v, want %v", tg.Name, tg.Value, tg.Met(), want[i])
		}
	}
	if Targets(rs[2:]) != nil {
		t.Errorf("targets without our encode")
	}
}

// TestLogExp checks the textbook reference against gf256.
func TestLogExp(t *testing.T) {
	f := newLogExp()
	for a := 0; a < 256; a++ {
		for b := 0; b < 256; b++ {
			if got, want := f.mul(byte(a), byte(b)), gf256.Mul(byte(a), byte(b)); got != want {
				t.Fatalf("logexp %d·%d = %d, want %d", a, b, got, want)
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	d := newLogExpDecoder(f, 3, 100)
	src := [][]byte{randBytes(r, 100), randBytes(r, 100), randBytes(r, 100)}
	c, p := make([]byte, 3), make([]byte, 100)
	for !d.complete() {
		for i := range c {
			c[i] = byte(r.Uint32())
		}
		f.encode(c, src, p)
		d.add(c, p)
		if d.rank == 2 {
			rc, rp := make([]byte, 3), make([]byte, 100)
			d.recode(r, rc, rp)
			if d.add(rc, rp) {
				t.Fatal("a recoded block was innovative for its own decoder")
			}
		}
	}
	for i := range src {
		if !bytes.Equal(d.source(i), src[i]) {
			t.Fatalf("logexp decoder: block %d differs", i)
		}
	}
}
