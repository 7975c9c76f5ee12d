// Package lincheck implements per-peer secret linear checksums, the
// per-packet pollution defence of Avalanche (in the style of the secure
// random checksums of Gkantsidis and Rodriguez).
//
// The origin holds one master secret. A peer's key is derived from it and
// the peer's identity (DeriveKey), so the origin keeps no per-peer state.
// For generation g the key is expanded into t secret checks; check j maps a
// block x of B bytes, cut into s segments of L bytes, to one field element
//
//	σ_j(x) = u_j · Σ_seg R_j[seg]·x_seg      (R_j ∈ GF(256)^s, u_j ∈ GF(256)^L)
//
// σ_j is linear, so the checksums of a coded block follow from those of the
// source blocks: σ_j(Σ a_i x_i) = Σ a_i σ_j(x_i). The origin sends a peer,
// over TLS, the k·t checksums of each generation's source blocks under that
// peer's key (SourceSums); the peer checks every coded block it receives —
// from anyone, after any number of recodings — before it uses or forwards
// it (Verify). A block whose payload differs from the combination its
// coefficients claim passes one check with probability at most 2/256 over
// the secret (σ_j has degree 2 in it), so t = 4 checks let a forgery through
// with probability at most 2^-28. The precise construction is in
// docs/formats.md, "Linear checksums".
//
// The key must stay secret from other peers: anyone who knows it can forge
// blocks that pass its checks.
package lincheck

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"avalanche/internal/gf256"
	"avalanche/internal/rlnc"
)

// DefaultChecks is the default number of checks t per block.
const DefaultChecks = 4

// MaxChecks bounds t.
const MaxChecks = 16

// Errors returned by this package.
var (
	ErrChecks     = errors.New("lincheck: number of checks must be in 1..16")
	ErrDataLength = errors.New("lincheck: generation data must hold 1..k·B bytes")
	ErrSumsLength = errors.New("lincheck: checksum buffer has the wrong length")
)

// Key is a peer's secret: the seed of all its checks.
type Key [32]byte

// keyLabel separates these keys from any other use of the master secret.
const keyLabel = "avalanche lincheck v1 key\x00"

// DeriveKey returns the key of peer peerID under the origin's master
// secret: HMAC-SHA256(master, "avalanche lincheck v1 key\x00" || peerID).
func DeriveKey(master, peerID []byte) Key {
	h := hmac.New(sha256.New, master)
	h.Write([]byte(keyLabel))
	h.Write(peerID)
	var k Key
	h.Sum(k[:0])
	return k
}

// Segments returns how a block of blockSize bytes is cut for the checks:
// with s0 = min(64, ceil(B/512)), the segment length is L = ceil(B/s0)
// rounded up to a multiple of 64 and there are s = ceil(B/L) segments; the
// last one is zero-padded when s·L > B. For B = 32 KiB that is 64 segments
// of 512 bytes.
func Segments(blockSize int) (s, l int) {
	s0 := min(64, (blockSize+511)/512)
	l = ((blockSize+s0-1)/s0 + 63) &^ 63
	return (blockSize + l - 1) / l, l
}

// Checker holds the expanded checks of one key for one generation at a
// time. It allocates only when it is made; SetGeneration, Sum, SourceSums
// and Verify allocate nothing. A Checker is not safe for concurrent use.
type Checker struct {
	bs, k   int // block size B and generation size k
	t, s, l int // checks, segments, segment length
	full    int // segments that lie wholly inside the block
	gen     uint64
	aes     cipher.Block
	r       []byte          // t·s: R_j[seg] at r[j·s+seg]
	u       []byte          // t·L: u_j at u[j·L:]
	uw      []gf256.Weights // u_j, for Dot
	mat     gf256.Matrix
	coeffs  []byte          // scratch: R restricted to the full segments
	segs    [][]byte        // scratch: the segment slices of a payload
	ys      [][]byte        // scratch: Σ_seg R_j[seg]·x_seg for each j
	pad     []byte          // scratch: a short source block, zero-padded
	ctr, ks [16]byte        // AES-CTR counter block and key stream block
	block   uint64          // number of the next key stream block
	used    int             // bytes of ks already consumed
	sums    [MaxChecks]byte // the last block's checksums
}

// NewChecker returns a Checker with t = checks checks per block for the
// blocks of p, set to generation generation.
func NewChecker(key Key, p rlnc.Params, checks int, generation uint64) (*Checker, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if checks < 1 || checks > MaxChecks {
		return nil, fmt.Errorf("%w (%d)", ErrChecks, checks)
	}
	blk, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, err
	}
	s, l := Segments(p.BlockSize)
	c := &Checker{
		bs: p.BlockSize, k: p.K, t: checks, s: s, l: l, full: p.BlockSize / l, aes: blk,
		r:      make([]byte, checks*s),
		u:      make([]byte, checks*l),
		uw:     make([]gf256.Weights, checks),
		coeffs: make([]byte, checks*s),
		segs:   make([][]byte, s),
		ys:     make([][]byte, checks),
	}
	y := make([]byte, checks*l)
	for j := range c.ys {
		c.ys[j] = y[j*l : (j+1)*l : (j+1)*l]
	}
	c.SetGeneration(generation)
	return c, nil
}

// Checks returns t, the number of checks per block.
func (c *Checker) Checks() int { return c.t }

// Generation returns the generation the Checker is set to.
func (c *Checker) Generation() uint64 { return c.gen }

// SetGeneration expands the key for generation g. The key stream is
// AES-256 in counter mode: its 16-byte block i is AES_key(g as 8 bytes
// big-endian || i as 8 bytes big-endian). Its first t·s bytes are R_0, …,
// R_{t-1} (s bytes each), the next t·L bytes u_0, …, u_{t-1} (L bytes each).
func (c *Checker) SetGeneration(g uint64) {
	c.gen = g
	binary.BigEndian.PutUint64(c.ctr[:8], g)
	c.block, c.used = 0, len(c.ks)
	c.stream(c.r)
	c.stream(c.u)
	for j := range c.uw {
		c.uw[j].Set(c.u[j*c.l : (j+1)*c.l])
	}
	// The product matrix of Sum: output j takes R_j[seg] times segment seg,
	// over the segments that are wholly inside the block.
	for j := 0; j < c.t; j++ {
		copy(c.coeffs[j*c.full:(j+1)*c.full], c.r[j*c.s:])
	}
	c.mat.Reset(c.t, c.full, c.coeffs[:c.t*c.full])
}

// stream fills dst with the next bytes of the generation's key stream.
func (c *Checker) stream(dst []byte) {
	for len(dst) > 0 {
		if c.used == len(c.ks) {
			binary.BigEndian.PutUint64(c.ctr[8:], c.block)
			c.aes.Encrypt(c.ks[:], c.ctr[:])
			c.block, c.used = c.block+1, 0
		}
		n := copy(dst, c.ks[c.used:])
		dst, c.used = dst[n:], c.used+n
	}
}

// sum computes σ_j(x) for the t checks into c.sums; len(x) == B.
func (c *Checker) sum(x []byte) {
	l := c.l
	for seg := 0; seg < c.full; seg++ {
		c.segs[seg] = x[seg*l : (seg+1)*l]
	}
	c.mat.Mul(c.segs[:c.full], c.ys)
	if tail := x[c.full*l:]; len(tail) > 0 {
		// The last segment, zero-padded: its padding contributes nothing.
		for j, y := range c.ys {
			gf256.MulAddSlice(c.r[j*c.s+c.full], tail, y)
		}
	}
	for j, y := range c.ys {
		c.sums[j] = c.uw[j].Dot(y)
	}
	clear(c.segs)
}

// Sum writes the t checksums of one block into out (t bytes). payload may
// be shorter than B (a file's last block); it is zero-padded.
func (c *Checker) Sum(payload, out []byte) error {
	if len(payload) > c.bs || len(out) != c.t {
		return fmt.Errorf("%w (%d-byte block, %d-byte output)", ErrSumsLength, len(payload), len(out))
	}
	if len(payload) < c.bs {
		c.pad = grow(c.pad, c.bs)
		copy(c.pad, payload)
		clear(c.pad[len(payload):])
		payload = c.pad
	}
	c.sum(payload)
	copy(out, c.sums[:c.t])
	return nil
}

// SourceSums writes the checksums of a generation's source blocks: data is
// the generation's real bytes (1..k·B, the last block zero-padded
// implicitly) and sums receives n·t bytes, n = ceil(len(data)/B), the t
// checksums of block i at sums[i·t:(i+1)·t]. This is what the origin sends a
// peer for each generation.
func (c *Checker) SourceSums(data, sums []byte) error {
	if len(data) < 1 || len(data) > c.k*c.bs {
		return fmt.Errorf("%w (%d bytes)", ErrDataLength, len(data))
	}
	n := (len(data) + c.bs - 1) / c.bs
	if len(sums) != n*c.t {
		return fmt.Errorf("%w (%d, want %d)", ErrSumsLength, len(sums), n*c.t)
	}
	for i := 0; i < n; i++ {
		c.Sum(data[i*c.bs:min(len(data), (i+1)*c.bs)], sums[i*c.t:(i+1)*c.t])
	}
	return nil
}

// Verify reports whether a coded block is consistent with the source
// checksums: for every check j, σ_j(payload) = Σ_i coeffs[i]·σ_j(block i).
// It reads the payload once (the fused kernel with the segments as inputs
// and the t partial sums as outputs) and then does t dot products of L
// bytes. Buffers of the wrong length — coeffs of n bytes, payload of B,
// sourceSums of n·t — make it return false.
func (c *Checker) Verify(coeffs, payload, sourceSums []byte) bool {
	n := len(coeffs)
	if n < 1 || n > c.k || len(payload) != c.bs || len(sourceSums) != n*c.t {
		return false
	}
	var want [MaxChecks]byte
	for i, a := range coeffs {
		if a == 0 {
			continue
		}
		for j, s := range sourceSums[i*c.t : (i+1)*c.t] {
			want[j] ^= gf256.Mul(a, s)
		}
	}
	c.sum(payload)
	return c.sums == want
}

func grow(b []byte, n int) []byte {
	if cap(b) < n {
		return make([]byte, n)
	}
	return b[:n]
}
