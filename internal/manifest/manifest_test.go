package manifest

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

func testKey(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

func build(t testing.TB, data []byte, k, bs int) *Manifest {
	t.Helper()
	m, err := FromReader(bytes.NewReader(data), k, bs, "devtools", "setup.exe", time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Sign(testKey(1)); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRoundTripSizes(t *testing.T) {
	const k, bs = 4, 1024
	gs := k * bs
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, bs - 1, bs, gs - 1, gs, gs + 1, 3*gs + 17} {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte(rng.Uint32())
		}
		m := build(t, data, k, bs)
		got, err := Parse(m.Encoded())
		if err != nil {
			t.Fatalf("size %d: Parse: %v", size, err)
		}
		if got.ID() != m.ID() || got.Size != int64(size) || got.Name != "setup.exe" || got.Property != "devtools" {
			t.Fatalf("size %d: Parse = %+v", size, got)
		}
		if got.FileHash != sha256.Sum256(data) {
			t.Errorf("size %d: file hash mismatch", size)
		}
		wantGens := (size + gs - 1) / gs
		if got.Generations() != wantGens {
			t.Errorf("size %d: %d generations, want %d", size, got.Generations(), wantGens)
		}
		var total int64
		for g := 0; g < got.Generations(); g++ {
			off, n := got.GenerationSpan(g)
			if got.GenHashes[g] != sha256.Sum256(data[off:off+n]) {
				t.Errorf("size %d: generation %d hash mismatch", size, g)
			}
			if nb := got.GenerationBlocks(g); nb < 1 || nb > k || int64(nb)*int64(bs) < n {
				t.Errorf("size %d: generation %d has %d blocks for %d bytes", size, g, nb, n)
			}
			total += n
		}
		if total != int64(size) {
			t.Errorf("size %d: spans cover %d bytes", size, total)
		}
		if !bytes.Equal(got.Encoded(), m.Encoded()) {
			t.Errorf("size %d: re-encoding differs", size)
		}
	}
}

func TestContentIDIsHashOfBody(t *testing.T) {
	m := build(t, []byte("hello"), 64, 32<<10)
	enc := m.Encoded()
	if m.ID() != sha256.Sum256(enc[:len(enc)-ed25519.SignatureSize]) {
		t.Error("content ID is not the SHA-256 of the signed body")
	}
	if _, err := ParseID(m.ID().String()); err != nil {
		t.Error(err)
	}
}

func TestWrongPublisher(t *testing.T) {
	m := build(t, []byte("hello"), 64, 32<<10)
	p, err := Parse(m.Encoded())
	if err != nil {
		t.Fatal(err)
	}
	if err := p.CheckPublisher(testKey(2).Public().(ed25519.PublicKey)); !errors.Is(err, ErrPublisher) {
		t.Errorf("CheckPublisher(other key) = %v, want ErrPublisher", err)
	}
	if err := p.CheckPublisher(testKey(1).Public().(ed25519.PublicKey)); err != nil {
		t.Errorf("CheckPublisher(right key) = %v", err)
	}
	// Swap in another key without re-signing: the signature no longer verifies.
	enc := append([]byte(nil), m.Encoded()...)
	off := headerLen + 1 + len("devtools") + 2 + len("setup.exe")
	copy(enc[off:], testKey(2).Public().(ed25519.PublicKey))
	if _, err := Parse(enc); !errors.Is(err, ErrSignature) {
		t.Errorf("Parse(key swapped) = %v, want ErrSignature", err)
	}
}

func TestEveryByteIsCovered(t *testing.T) {
	m := build(t, bytes.Repeat([]byte("x"), 10000), 4, 1024)
	enc := m.Encoded()
	for i := range enc {
		bad := append([]byte(nil), enc...)
		bad[i] ^= 0x40
		if _, err := Parse(bad); err == nil {
			t.Fatalf("flipping byte %d was accepted", i)
		}
	}
	for n := 0; n < len(enc); n++ {
		if _, err := Parse(enc[:n]); err == nil {
			t.Fatalf("truncation to %d bytes was accepted", n)
		}
	}
	if _, err := Parse(enc[:len(enc)-ed25519.SignatureSize]); !errors.Is(err, ErrUnsigned) {
		t.Errorf("Parse(unsigned) = %v, want ErrUnsigned", err)
	}
	if _, err := Parse(append(enc, 0)); !errors.Is(err, ErrMalformed) {
		t.Errorf("Parse(trailing byte) = %v, want ErrMalformed", err)
	}
}

// header builds just a manifest header claiming the given parameters.
func header(k byte, bs uint32, size uint64, gens uint32) []byte {
	b := append([]byte(nil), magic[:]...)
	b = append(b, Version, 0)
	b = binary.BigEndian.AppendUint16(b, Polynomial)
	b = append(b, k)
	b = binary.BigEndian.AppendUint32(b, bs)
	b = binary.BigEndian.AppendUint64(b, size)
	b = binary.BigEndian.AppendUint64(b, 0)
	b = binary.BigEndian.AppendUint32(b, gens)
	b = append(b, 1, 'p', 0, 1, 'n')
	b = append(b, make([]byte, 64)...)
	return b
}

func TestHugeClaimsRefusedBeforeAllocating(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want error
	}{
		{"2^52 generations implied by size", header(1, 1024, 1<<62, 0xffffffff), ErrTooLarge},
		{"size 2^63", header(64, 32768, 1<<63, 1<<20), ErrTooLarge},
		{"count disagrees with size", header(64, 32768, 1<<30, 1<<31), ErrMalformed},
		{"hashes missing", header(64, 32768, 1<<40, 1<<19), ErrMalformed},
		{"k = 0", header(0, 32768, 1, 1), ErrBadParams},
		{"block not multiple of 64", header(64, 1000, 1, 1), ErrBadParams},
		{"block too large", header(64, 2<<20, 1, 1), ErrBadParams},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			allocs := testing.AllocsPerRun(1, func() {
				if _, err := Parse(tc.in); !errors.Is(err, tc.want) {
					t.Errorf("Parse = %v, want %v", err, tc.want)
				}
			})
			if allocs > 10 {
				t.Errorf("Parse allocated %v times", allocs)
			}
		})
	}
}

func TestOneTebibyte(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 16 MiB manifest")
	}
	const size = 1 << 40
	m := &Manifest{Property: "big", Name: "disk.img", Size: size, K: 64, BlockSize: 32 << 10, Created: time.Unix(0, 0)}
	m.GenHashes = make([][32]byte, size/(64*32<<10))
	if err := m.Sign(testKey(3)); err != nil {
		t.Fatal(err)
	}
	got, err := Parse(m.Encoded())
	if err != nil {
		t.Fatal(err)
	}
	if got.Generations() != 1<<19 || len(m.Encoded()) > 17<<20 {
		t.Errorf("1 TiB: %d generations, %d bytes", got.Generations(), len(m.Encoded()))
	}
}

func TestValidation(t *testing.T) {
	for _, name := range []string{"", ".", "..", "a/b", "a\\b", "nul\x00", string([]byte{0xff}), string(make([]byte, 256))} {
		if CheckName(name) == nil {
			t.Errorf("CheckName(%q) accepted", name)
		}
	}
	for _, p := range []string{"", "-x", "Dev", "a_b", string(make([]byte, 65))} {
		if CheckProperty(p) == nil {
			t.Errorf("CheckProperty(%q) accepted", p)
		}
	}
	for _, c := range []struct{ k, b int }{{0, 1024}, {256, 1024}, {64, 512}, {64, 1 << 21}, {64, 1088 + 1}} {
		if CheckParams(c.k, c.b) == nil {
			t.Errorf("CheckParams(%d, %d) accepted", c.k, c.b)
		}
	}
	if _, err := FromReader(bytes.NewReader(nil), 64, 32<<10, "ok", "a/b", time.Now()); !errors.Is(err, ErrBadName) {
		t.Errorf("FromReader(bad name) = %v", err)
	}
	if err := (&Manifest{K: 64, BlockSize: 32768, Name: "x", Property: "p"}).Sign(nil); err == nil {
		t.Error("Sign(nil key) accepted")
	}
}

func FuzzParse(f *testing.F) {
	for _, size := range []int{0, 1, 5000} {
		m := build(f, bytes.Repeat([]byte{7}, size), 4, 1024)
		f.Add(m.Encoded())
	}
	f.Add(header(1, 1024, 1<<62, 0xffffffff))
	f.Add(header(64, 32768, 100, 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse(data)
		if err != nil {
			return
		}
		if !bytes.Equal(m.Encoded(), data) {
			t.Fatal("accepted manifest does not re-encode to its input")
		}
		body := data[:len(data)-ed25519.SignatureSize]
		if m.ID() != sha256.Sum256(body) {
			t.Fatal("ID mismatch")
		}
	})
}
