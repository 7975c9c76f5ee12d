package lincheck

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"

	"avalanche/internal/gf256"
	"avalanche/internal/rlnc"
)

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestDeriveKey(t *testing.T) {
	master := []byte("origin master secret")
	a, b := DeriveKey(master, []byte("peer a")), DeriveKey(master, []byte("peer b"))
	if a == b || a != DeriveKey(master, []byte("peer a")) || a == DeriveKey([]byte("other"), []byte("peer a")) {
		t.Errorf("keys are not a function of (master, peer) alone")
	}
	h := hmac.New(sha256.New, master)
	h.Write([]byte("avalanche lincheck v1 key\x00peer a"))
	if !bytes.Equal(h.Sum(nil), a[:]) {
		t.Errorf("DeriveKey differs from HMAC-SHA256(master, label || peer)")
	}
}

func TestSegments(t *testing.T) {
	tests := []struct{ b, s, l int }{
		{1024, 2, 512},
		{1088, 3, 384},
		{32832, 57, 576},
		{16 << 10, 32, 512},
		{32 << 10, 64, 512},
		{64 << 10, 64, 1024},
		{1 << 20, 64, 16 << 10},
	}
	for _, tt := range tests {
		s, l := Segments(tt.b)
		if s != tt.s || l != tt.l {
			t.Errorf("Segments(%d) = %d, %d, want %d, %d", tt.b, s, l, tt.s, tt.l)
		}
	}
	for b := 1024; b <= 1<<20; b += 64 {
		s, l := Segments(b)
		if s < 1 || s > 64 || l%64 != 0 || s*l < b || (s-1)*l >= b {
			t.Fatalf("Segments(%d) = %d, %d: does not cover the block", b, s, l)
		}
	}
}

// slowSum computes σ_j(x) from the definition.
func slowSum(c *Checker, x []byte, j int) byte {
	padded := make([]byte, c.s*c.l)
	copy(padded, x)
	var sum byte
	for p := 0; p < c.l; p++ {
		var y byte
		for seg := 0; seg < c.s; seg++ {
			y ^= gf256.Mul(c.r[j*c.s+seg], padded[seg*c.l+p])
		}
		sum ^= gf256.Mul(c.u[j*c.l+p], y)
	}
	return sum
}

func TestSumDefinition(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, bs := range []int{1024, 1088, 4096, 32 << 10} {
		p := rlnc.Params{K: 4, BlockSize: bs}
		c, err := NewChecker(DeriveKey([]byte("m"), []byte("p")), p, 3, 7)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int{bs, bs - 1, 1} {
			x := randBytes(r, n)
			out := make([]byte, 3)
			if err := c.Sum(x, out); err != nil {
				t.Fatal(err)
			}
			for j := 0; j < 3; j++ {
				if want := slowSum(c, x, j); out[j] != want {
					t.Fatalf("B=%d len=%d: σ_%d = %d, want %d", bs, n, j, out[j], want)
				}
			}
		}
	}
}

func TestExpansion(t *testing.T) {
	key := DeriveKey([]byte("m"), []byte("p"))
	p := rlnc.DefaultParams()
	c1, _ := NewChecker(key, p, 4, 1)
	c2, _ := NewChecker(key, p, 4, 2)
	if bytes.Equal(c1.r, c2.r) || bytes.Equal(c1.u, c2.u) {
		t.Errorf("generations 1 and 2 expand to the same secret")
	}
	r1, u1 := bytes.Clone(c1.r), bytes.Clone(c1.u)
	c2.SetGeneration(1)
	if !bytes.Equal(c2.r, r1) || !bytes.Equal(c2.u, u1) || c2.Generation() != 1 {
		t.Errorf("SetGeneration(1) differs from NewChecker(…, 1)")
	}
	other, _ := NewChecker(DeriveKey([]byte("m"), []byte("q")), p, 4, 1)
	if bytes.Equal(other.r, r1) {
		t.Errorf("two peers expand to the same secret")
	}
}

// setup returns a generation, its encoder and a checker with the source
// sums of one peer.
type fixture struct {
	p    rlnc.Params
	data []byte
	enc  *rlnc.Encoder
}

func newFixture(r *rand.Rand, p rlnc.Params, size int) fixture {
	data := randBytes(r, size)
	e, err := rlnc.NewEncoder(p, data, r)
	if err != nil {
		panic(err)
	}
	return fixture{p, data, e}
}

func (f fixture) peer(t testing.TB, id string, checks int) (*Checker, []byte) {
	c, err := NewChecker(DeriveKey([]byte("master"), []byte(id)), f.p, checks, 3)
	if err != nil {
		t.Fatal(err)
	}
	sums := make([]byte, f.enc.Blocks()*checks)
	if err := c.SourceSums(f.data, sums); err != nil {
		t.Fatal(err)
	}
	return c, sums
}

// TestHonestRecodingChain sends blocks through 10 hops of recoding; each
// hop verifies every block it receives under its own key before using it,
// and every honest block passes.
func TestHonestRecodingChain(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	p := rlnc.Params{K: 16, BlockSize: 4096}
	f := newFixture(r, p, 15*4096+123)
	n := f.enc.Blocks()
	const hops = 10
	type peer struct {
		dec  *rlnc.Decoder
		chk  *Checker
		sums []byte
	}
	peers := make([]peer, hops)
	for h := range peers {
		peers[h].dec, _ = rlnc.NewDecoder(p, n)
		peers[h].chk, peers[h].sums = f.peer(t, fmt.Sprint("peer", h), DefaultChecks)
	}
	coeffs, payload := make([]byte, n), make([]byte, 4096)
	verified := 0
	for round := 0; !peers[hops-1].dec.Complete(); round++ {
		if round > 100*n {
			t.Fatal("no progress")
		}
		f.enc.Next(coeffs, payload)
		for h := 0; h < hops; h++ {
			if h > 0 {
				if peers[h-1].dec.Rank() == 0 {
					break
				}
				peers[h-1].dec.Recode(r, coeffs, payload)
			}
			if !peers[h].chk.Verify(coeffs, payload, peers[h].sums) {
				t.Fatalf("round %d hop %d: an honest block failed verification", round, h)
			}
			verified++
			peers[h].dec.Add(coeffs, payload)
		}
	}
	if !bytes.Equal(peers[hops-1].dec.Data()[:len(f.data)], f.data) {
		t.Fatal("decoded generation differs")
	}
	t.Logf("%d honest blocks verified", verified)
}

func TestTamperedBlocksFail(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	p := rlnc.Params{K: 8, BlockSize: 2048}
	f := newFixture(r, p, 8*2048)
	c, sums := f.peer(t, "victim", DefaultChecks)
	coeffs, payload := make([]byte, 8), make([]byte, 2048)
	for trial := 0; trial < 300; trial++ {
		f.enc.Random(coeffs, payload)
		if !c.Verify(coeffs, payload, sums) {
			t.Fatal("honest block failed")
		}
		// Altered payload: one byte, or many.
		bad := bytes.Clone(payload)
		bad[r.IntN(len(bad))] ^= byte(1 + r.IntN(255))
		if trial%2 == 0 {
			for i := 0; i < 50; i++ {
				bad[r.IntN(len(bad))] ^= byte(r.Uint32())
			}
		}
		if !bytes.Equal(bad, payload) && c.Verify(coeffs, bad, sums) {
			t.Fatalf("trial %d: altered payload passed", trial)
		}
		// Altered coefficients with the honest payload.
		badc := bytes.Clone(coeffs)
		badc[r.IntN(len(badc))] ^= byte(1 + r.IntN(255))
		if c.Verify(badc, payload, sums) {
			t.Fatalf("trial %d: altered coefficients passed", trial)
		}
		// A block made for another peer's key is still honest for this one.
		// Checksums of another peer do not verify a tampered block either.
	}
	// Wrong lengths never pass and never panic.
	for _, tc := range []struct{ c, p, s []byte }{
		{coeffs[:7], payload, sums},
		{coeffs, payload[:2047], sums},
		{coeffs, payload, sums[:31]},
		{nil, payload, nil},
	} {
		if c.Verify(tc.c, tc.p, tc.s) {
			t.Errorf("Verify with wrong lengths (%d, %d, %d) passed", len(tc.c), len(tc.p), len(tc.s))
		}
	}
}

// TestForgeryRate shows the check is real: at t = 1, forged blocks pass at
// the rate the analysis predicts and no more. For each trial a fresh secret
// is drawn (a new generation index expands the key anew) and an honest block
// gets an error δ ≠ 0 added to its payload.
//
//   - random δ: σ(δ) is uniform over the field, so forgeries pass with
//     probability 1/256;
//   - δ in a single byte, the worst case: σ(δ) = u[p]·R[seg]·δ vanishes when
//     either secret byte is 0, probability 2/256 − 1/65536, the bound.
//
// The PRNG is seeded, so the counts are fixed; the bounds are ±8 standard
// deviations around the expectation anyway (σ ≈ 20 and 28 for 100k trials)
// and all far below what an unchecked block would give (every one passes).
func TestForgeryRate(t *testing.T) {
	trials := 100_000
	if testing.Short() {
		trials = 20_000
	}
	r := rand.New(rand.NewPCG(7, 8))
	p := rlnc.Params{K: 4, BlockSize: 1024}
	f := newFixture(r, p, 4*1024)
	key := DeriveKey([]byte("master"), []byte("victim"))
	c, _ := NewChecker(key, p, 1, 0)
	sums := make([]byte, 4)
	coeffs, payload := make([]byte, 4), make([]byte, 1024)
	for _, tc := range []struct {
		name string
		rate float64 // expected pass rate
	}{
		{"random error", 1.0 / 256},
		{"one-byte error", 2.0/256 - 1.0/65536},
	} {
		passed := 0
		for i := 0; i < trials; i++ {
			c.SetGeneration(uint64(i))
			c.SourceSums(f.data, sums)
			f.enc.Random(coeffs, payload)
			if tc.rate < 0.005 {
				for k := range payload {
					payload[k] ^= byte(r.Uint32())
				}
			} else {
				payload[r.IntN(len(payload))] ^= byte(1 + r.IntN(255))
			}
			if c.Verify(coeffs, payload, sums) {
				passed++
			}
		}
		mean := tc.rate * float64(trials)
		sd := sqrt(mean * (1 - tc.rate))
		got := float64(passed)
		t.Logf("%s: %d of %d forgeries passed (rate %.5f; expected %.5f, bound %.5f)", tc.name, passed, trials, got/float64(trials), tc.rate, 2.0/256)
		if got < mean-8*sd || got > mean+8*sd {
			t.Errorf("%s: %d of %d forgeries passed, want %.0f ± %.0f", tc.name, passed, trials, mean, 8*sd)
		}
	}
}

func sqrt(x float64) float64 {
	z := x
	for i := 0; i < 50; i++ {
		z = (z + x/z) / 2
	}
	return z
}

func TestErrors(t *testing.T) {
	key := DeriveKey(nil, nil)
	p := rlnc.Params{K: 4, BlockSize: 1024}
	if _, err := NewChecker(key, p, 0, 0); !errors.Is(err, ErrChecks) {
		t.Errorf("0 checks: %v", err)
	}
	if _, err := NewChecker(key, p, MaxChecks+1, 0); !errors.Is(err, ErrChecks) {
		t.Errorf("17 checks: %v", err)
	}
	if _, err := NewChecker(key, rlnc.Params{K: 4, BlockSize: 100}, 4, 0); !errors.Is(err, rlnc.ErrBlockSize) {
		t.Errorf("bad block size: %v", err)
	}
	c, _ := NewChecker(key, p, 2, 0)
	if err := c.SourceSums(nil, nil); !errors.Is(err, ErrDataLength) {
		t.Errorf("SourceSums(empty) = %v", err)
	}
	if err := c.SourceSums(make([]byte, 4097), make([]byte, 10)); !errors.Is(err, ErrDataLength) {
		t.Errorf("SourceSums(too long) = %v", err)
	}
	if err := c.SourceSums(make([]byte, 2000), make([]byte, 3)); !errors.Is(err, ErrSumsLength) {
		t.Errorf("SourceSums(short sums) = %v", err)
	}
	if err := c.Sum(make([]byte, 1025), make([]byte, 2)); !errors.Is(err, ErrSumsLength) {
		t.Errorf("Sum(long block) = %v", err)
	}
}

func TestNoAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	p := rlnc.DefaultParams()
	f := newFixture(r, p, p.GenerationSize()-100)
	c, sums := f.peer(t, "p", DefaultChecks)
	coeffs, payload := make([]byte, p.K), make([]byte, p.BlockSize)
	f.enc.Random(coeffs, payload)
	if n := testing.AllocsPerRun(20, func() {
		if !c.Verify(coeffs, payload, sums) {
			t.Fatal("honest block failed")
		}
		c.SetGeneration(3)
		c.SourceSums(f.data, sums)
	}); n != 0 {
		t.Errorf("Verify/SetGeneration/SourceSums allocate %v times, want 0", n)
	}
}
