package lincheck

import (
	"math/rand/v2"
	"testing"

	"avalanche/internal/rlnc"
)

// FuzzVerify feeds Verify coefficient vectors, payloads and checksum
// buffers from the network, of any length. It must never panic, must reject
// every length that does not fit, and must accept the honest block for the
// fuzzed coefficients.
func FuzzVerify(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4}, []byte{9}, []byte{})
	f.Add([]byte{0, 0, 0, 0}, []byte{}, make([]byte, 16))
	f.Add([]byte{1, 0, 0}, make([]byte, 1024), make([]byte, 12))
	f.Add([]byte{}, []byte{}, []byte{})
	p := rlnc.Params{K: 4, BlockSize: 1024}
	r := rand.New(rand.NewPCG(1, 2))
	fx := newFixture(r, p, 3*1024+10)
	c, sums := fx.peer(f, "fuzz", DefaultChecks)
	n := fx.enc.Blocks()
	honest := make([]byte, 1024)
	f.Fuzz(func(t *testing.T, coeffs, payload, fsums []byte) {
		fits := len(coeffs) >= 1 && len(coeffs) <= p.K && len(payload) == p.BlockSize && len(fsums) == len(coeffs)*DefaultChecks
		if c.Verify(coeffs, payload, fsums) && !fits {
			t.Fatalf("Verify passed buffers of lengths %d, %d, %d", len(coeffs), len(payload), len(fsums))
		}
		if len(coeffs) == n {
			fx.enc.Combine(coeffs, honest)
			if !c.Verify(coeffs, honest, sums) {
				t.Fatalf("honest block for coefficients %v failed", coeffs)
			}
		}
	})
}
