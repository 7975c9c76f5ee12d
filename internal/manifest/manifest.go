// Package manifest implements Avalanche's signed manifest: the description of
// one published file (name, size, coding parameters, one SHA-256 per
// generation and one for the whole file, property and publisher key), its
// canonical binary encoding, the ed25519 signature over it and the content ID
// derived from it.
//
// A manifest is self-authenticating: any node may serve it, and Parse refuses
// anything that is malformed, oversized or not signed by the key it names.
// Whether that key may publish for the property is the caller's question
// (see Manifest.CheckPublisher).
//
// The byte layout is specified in docs/formats.md.
package manifest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// Version is the encoding version this package writes and reads.
const Version = 1

// Polynomial is the GF(2^8) reduction polynomial every manifest declares.
const Polynomial = 0x11D

// Limits. A manifest for a 1 TiB file with the default parameters (2 MiB
// generations) has 524,288 generations and is 16 MiB long; MaxGenerations
// leaves room for 2 TiB at defaults or 1 TiB with 1 MiB generations.
const (
	MaxGenerations  = 1 << 20
	MaxNameLen      = 255
	MaxPropertyLen  = 64
	MinBlockSize    = 1 << 10
	MaxBlockSize    = 1 << 20
	MaxK            = 255
	headerLen       = 4 + 1 + 1 + 2 + 1 + 4 + 8 + 8 + 4 // magic .. generation count
	trailerFixedLen = ed25519.PublicKeySize + sha256.Size
	// MaxEncodedLen bounds the encoded size of any manifest.
	MaxEncodedLen = headerLen + 1 + MaxPropertyLen + 2 + MaxNameLen + trailerFixedLen + MaxGenerations*sha256.Size + ed25519.SignatureSize
)

var magic = [4]byte{'A', 'V', 'M', 'F'}

// Errors returned (wrapped) by Parse and the builders.
var (
	ErrMalformed   = errors.New("manifest: malformed")
	ErrTooLarge    = errors.New("manifest: too large")
	ErrVersion     = errors.New("manifest: unsupported version")
	ErrSignature   = errors.New("manifest: bad signature")
	ErrUnsigned    = errors.New("manifest: not signed")
	ErrPublisher   = errors.New("manifest: publisher not allowed for property")
	ErrBadParams   = errors.New("manifest: invalid coding parameters")
	ErrBadName     = errors.New("manifest: invalid file name")
	ErrBadProperty = errors.New("manifest: invalid property name")
)

// ID is a content ID: the SHA-256 of a manifest's signed body.
type ID [sha256.Size]byte

// String returns the ID in lowercase hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 12 hex digits, for logs and progress lines.
func (id ID) Short() string { return id.String()[:12] }

// ParseID parses a 64-digit hex content ID.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("%w: content ID must be %d hex digits", ErrMalformed, 2*len(id))
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("%w: content ID: %v", ErrMalformed, err)
	}
	return id, nil
}

// Manifest describes one published file. Fields are read-only after Parse
// or Sign; a Manifest is safe for concurrent reads.
type Manifest struct {
	Property  string            // tenant name, e.g. "devtools"
	Name      string            // file name offered to users, no path
	Size      int64             // bytes
	K         int               // blocks per generation
	BlockSize int               // bytes per block
	Created   time.Time         // build time (the publisher CLI uses the file's modification time), second precision
	Publisher ed25519.PublicKey // key that signed the manifest
	FileHash  [sha256.Size]byte // SHA-256 of the whole file
	GenHashes [][sha256.Size]byte

	id        ID
	signature []byte
	encoded   []byte
}

// GenerationSize returns the number of source bytes in a full generation.
func (m *Manifest) GenerationSize() int64 { return int64(m.K) * int64(m.BlockSize) }

// Generations returns the number of generations.
func (m *Manifest) Generations() int { return len(m.GenHashes) }

// GenerationSpan returns the byte offset and length of generation g.
func (m *Manifest) GenerationSpan(g int) (off int64, n int64) {
	gs := m.GenerationSize()
	off = int64(g) * gs
	n = min(gs, m.Size-off)
	return off, n
}

// GenerationBlocks returns the number of blocks in generation g: K, or fewer
// for a short last generation.
func (m *Manifest) GenerationBlocks(g int) int {
	_, n := m.GenerationSpan(g)
	return int((n + int64(m.BlockSize) - 1) / int64(m.BlockSize))
}

// BlockLen returns the block size in bytes (the wire.Layout method).
func (m *Manifest) BlockLen() int { return m.BlockSize }

// ID returns the content ID. It is the zero ID until the manifest is signed
// or parsed.
func (m *Manifest) ID() ID { return m.id }

// Encoded returns the canonical signed encoding. The caller must not modify
// it.
func (m *Manifest) Encoded() []byte { return m.encoded }

// CheckPublisher returns ErrPublisher unless the manifest was signed by one
// of allowed.
func (m *Manifest) CheckPublisher(allowed ...ed25519.PublicKey) error {
	for _, k := range allowed {
		if k.Equal(m.Publisher) {
			return nil
		}
	}
	return fmt.Errorf("%w %q", ErrPublisher, m.Property)
}

// CheckParams validates k and block size as the coding layer accepts them:
// k in 1..255, block size in 1 KiB..1 MiB and a multiple of 64.
func CheckParams(k, blockSize int) error {
	if k < 1 || k > MaxK {
		return fmt.Errorf("%w: k = %d, want 1..%d", ErrBadParams, k, MaxK)
	}
	if blockSize < MinBlockSize || blockSize > MaxBlockSize || blockSize%64 != 0 {
		return fmt.Errorf("%w: block size = %d, want a multiple of 64 in %d..%d", ErrBadParams, blockSize, MinBlockSize, MaxBlockSize)
	}
	return nil
}

// generationsFor returns the number of generations of a file, or an error if
// it exceeds MaxGenerations.
func generationsFor(size int64, k, blockSize int) (int, error) {
	if size < 0 {
		return 0, fmt.Errorf("%w: negative size", ErrMalformed)
	}
	gs := int64(k) * int64(blockSize)
	n := size / gs
	if size%gs != 0 {
		n++
	}
	if n > MaxGenerations {
		return 0, fmt.Errorf("%w: %d generations, limit %d (use larger k or blocks)", ErrTooLarge, n, MaxGenerations)
	}
	return int(n), nil
}

// CheckName validates a file name: 1..255 bytes of UTF-8, no path separators,
// no control characters, not "." or "..".
func CheckName(name string) error {
	if name == "" || len(name) > MaxNameLen || !utf8.ValidString(name) || name == "." || name == ".." {
		return fmt.Errorf("%w: %q", ErrBadName, name)
	}
	for _, r := range name {
		if r == '/' || r == '\\' || r < 0x20 || r == 0x7f {
			return fmt.Errorf("%w: %q", ErrBadName, name)
		}
	}
	return nil
}

// CheckProperty validates a property name: 1..64 bytes of [a-z0-9-],
// starting with a letter or digit.
func CheckProperty(p string) error {
	if p == "" || len(p) > MaxPropertyLen || p[0] == '-' {
		return fmt.Errorf("%w: %q", ErrBadProperty, p)
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("%w: %q", ErrBadProperty, p)
		}
	}
	return nil
}

// Sign validates m, encodes it canonically and signs it with priv, which
// becomes the publisher key. It sets the content ID and the encoding.
func (m *Manifest) Sign(priv ed25519.PrivateKey) error {
	if len(priv) != ed25519.PrivateKeySize {
		return fmt.Errorf("%w: private key has %d bytes", ErrSignature, len(priv))
	}
	m.Publisher = priv.Public().(ed25519.PublicKey)
	if err := m.validate(); err != nil {
		return err
	}
	body := m.appendBody(make([]byte, 0, m.bodyLen()+ed25519.SignatureSize))
	m.signature = ed25519.Sign(priv, body)
	m.id = sha256.Sum256(body)
	m.encoded = append(body, m.signature...)
	return nil
}

func (m *Manifest) validate() error {
	if err := CheckParams(m.K, m.BlockSize); err != nil {
		return err
	}
	if err := CheckName(m.Name); err != nil {
		return err
	}
	if err := CheckProperty(m.Property); err != nil {
		return err
	}
	n, err := generationsFor(m.Size, m.K, m.BlockSize)
	if err != nil {
		return err
	}
	if n != len(m.GenHashes) {
		return fmt.Errorf("%w: %d generation hashes for %d generations", ErrMalformed, len(m.GenHashes), n)
	}
	if len(m.Publisher) != ed25519.PublicKeySize {
		return fmt.Errorf("%w: publisher key has %d bytes", ErrMalformed, len(m.Publisher))
	}
	return nil
}

func (m *Manifest) bodyLen() int {
	return headerLen + 1 + len(m.Property) + 2 + len(m.Name) + trailerFixedLen + len(m.GenHashes)*sha256.Size
}

// appendBody appends the signed body (everything but the signature).
func (m *Manifest) appendBody(b []byte) []byte {
	b = append(b, magic[:]...)
	b = append(b, Version, 0) // version, flags
	b = binary.BigEndian.AppendUint16(b, Polynomial)
	b = append(b, byte(m.K))
	b = binary.BigEndian.AppendUint32(b, uint32(m.BlockSize))
	b = binary.BigEndian.AppendUint64(b, uint64(m.Size))
	b = binary.BigEndian.AppendUint64(b, uint64(m.Created.Unix()))
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.GenHashes)))
	b = append(b, byte(len(m.Property)))
	b = append(b, m.Property...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Name)))
	b = append(b, m.Name...)
	b = append(b, m.Publisher...)
	b = append(b, m.FileHash[:]...)
	for i := range m.GenHashes {
		b = append(b, m.GenHashes[i][:]...)
	}
	return b
}

// Parse decodes and verifies a signed manifest: structure, limits, coding
// parameters, names, and the signature under the embedded publisher key.
// It never allocates more than a small multiple of len(data).
func Parse(data []byte) (*Manifest, error) {
	if len(data) > MaxEncodedLen {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(data))
	}
	r := reader{b: data}
	if mg := r.next(4); mg == nil || [4]byte(mg) != magic {
		return nil, fmt.Errorf("%w: not a manifest (bad magic)", ErrMalformed)
	}
	ver, flags := r.u8(), r.u8()
	if r.err == nil && ver != Version {
		return nil, fmt.Errorf("%w %d", ErrVersion, ver)
	}
	if r.err == nil && flags != 0 {
		return nil, fmt.Errorf("%w: unknown flags %#x", ErrMalformed, flags)
	}
	if poly := r.u16(); r.err == nil && poly != Polynomial {
		return nil, fmt.Errorf("%w: field polynomial %#x, want %#x", ErrBadParams, poly, Polynomial)
	}
	m := &Manifest{}
	m.K = int(r.u8())
	m.BlockSize = int(r.u32())
	size := r.u64()
	created := r.u64()
	nGen := r.u32()
	if r.err != nil {
		return nil, r.err
	}
	if size > 1<<62 {
		return nil, fmt.Errorf("%w: size %d", ErrTooLarge, size)
	}
	m.Size = int64(size)
	m.Created = time.Unix(int64(created), 0).UTC()
	if err := CheckParams(m.K, m.BlockSize); err != nil {
		return nil, err
	}
	want, err := generationsFor(m.Size, m.K, m.BlockSize)
	if err != nil {
		return nil, err
	}
	if uint64(nGen) != uint64(want) {
		return nil, fmt.Errorf("%w: %d generations declared, size implies %d", ErrMalformed, nGen, want)
	}
	m.Property = string(r.next(int(r.u8())))
	m.Name = string(r.next(int(r.u16())))
	m.Publisher = ed25519.PublicKey(append([]byte(nil), r.next(ed25519.PublicKeySize)...))
	copy(m.FileHash[:], r.next(sha256.Size))
	if r.err != nil {
		return nil, r.err
	}
	// The remaining bytes must be exactly the hashes and the signature:
	// check before allocating.
	rest := len(data) - r.off
	need := want*sha256.Size + ed25519.SignatureSize
	if rest < want*sha256.Size {
		return nil, fmt.Errorf("%w: truncated generation hashes", ErrMalformed)
	}
	if rest == want*sha256.Size {
		return nil, ErrUnsigned
	}
	if rest != need {
		return nil, fmt.Errorf("%w: %d trailing bytes, want %d", ErrMalformed, rest, need)
	}
	if err := CheckProperty(m.Property); err != nil {
		return nil, err
	}
	if err := CheckName(m.Name); err != nil {
		return nil, err
	}
	m.GenHashes = make([][sha256.Size]byte, want)
	for i := range m.GenHashes {
		copy(m.GenHashes[i][:], r.next(sha256.Size))
	}
	body := data[:r.off]
	sig := r.next(ed25519.SignatureSize)
	if !ed25519.Verify(m.Publisher, body, sig) {
		return nil, ErrSignature
	}
	m.signature = append([]byte(nil), sig...)
	m.id = sha256.Sum256(body)
	m.encoded = append([]byte(nil), data...)
	return m, nil
}

// reader is a bounds-checked big-endian cursor; the first short read sets
// err and later reads return zero values.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) next(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.err = fmt.Errorf("%w: truncated at byte %d", ErrMalformed, r.off)
		return nil
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

func (r *reader) u8() uint8 {
	if b := r.next(1); b != nil {
		return b[0]
	}
	return 0
}

func (r *reader) u16() uint16 {
	if b := r.next(2); b != nil {
		return binary.BigEndian.Uint16(b)
	}
	return 0
}

func (r *reader) u32() uint32 {
	if b := r.next(4); b != nil {
		return binary.BigEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if b := r.next(8); b != nil {
		return binary.BigEndian.Uint64(b)
	}
	return 0
}

// Summary returns a short human-readable description.
func (m *Manifest) Summary() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "content   %s\n", m.ID())
	fmt.Fprintf(&sb, "property  %s\n", m.Property)
	fmt.Fprintf(&sb, "name      %s\n", m.Name)
	fmt.Fprintf(&sb, "size      %d bytes\n", m.Size)
	fmt.Fprintf(&sb, "coding    k=%d, block=%d B, %d generations of %d B, GF(2^8)/0x%X\n", m.K, m.BlockSize, m.Generations(), m.GenerationSize(), Polynomial)
	fmt.Fprintf(&sb, "sha256    %x\n", m.FileHash)
	fmt.Fprintf(&sb, "publisher %x\n", []byte(m.Publisher))
	fmt.Fprintf(&sb, "created   %s\n", m.Created.Format(time.RFC3339))
	fmt.Fprintf(&sb, "manifest  %d bytes\n", len(m.encoded))
	return sb.String()
}
