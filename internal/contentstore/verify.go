package contentstore

import (
	"crypto/sha256"
	"fmt"
	"hash"

	"avalanche/internal/manifest"
)

// verifier checks a byte stream against a manifest as it passes: the size
// limit on every write, each generation's SHA-256 as soon as the generation
// is complete, and the whole-file SHA-256 in finish. It fails on the first
// wrong byte count or hash, so a bad upload is refused early.
type verifier struct {
	m       *manifest.Manifest
	genSize int64
	gen     int   // generation being hashed
	genFill int64 // bytes of gen seen
	n       int64 // bytes seen in total
	genHash hash.Hash
	file    hash.Hash
	sum     [sha256.Size]byte
}

func newVerifier(m *manifest.Manifest) *verifier {
	return &verifier{m: m, genSize: m.GenerationSize(), genHash: sha256.New(), file: sha256.New()}
}

// Write hashes p. It returns ErrTooLong if the stream grows past the
// manifest's size and ErrHashMismatch when a generation completes with the
// wrong hash; in both cases nothing of p should be kept.
func (v *verifier) Write(p []byte) (int, error) {
	if int64(len(p)) > v.m.Size-v.n {
		return 0, fmt.Errorf("%w: more than the manifest's %d bytes", ErrTooLong, v.m.Size)
	}
	n := len(p)
	for len(p) > 0 {
		take := min(int64(len(p)), v.genSize-v.genFill)
		v.genHash.Write(p[:take])
		v.file.Write(p[:take])
		v.genFill += take
		v.n += take
		p = p[take:]
		if v.genFill == v.genSize || v.n == v.m.Size {
			if err := v.closeGen(); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

func (v *verifier) closeGen() error {
	v.genHash.Sum(v.sum[:0])
	if v.gen >= len(v.m.GenHashes) || v.sum != v.m.GenHashes[v.gen] {
		return fmt.Errorf("%w: generation %d (bytes %d..%d)", ErrHashMismatch, v.gen, v.n-v.genFill, v.n)
	}
	v.gen++
	v.genFill = 0
	v.genHash.Reset()
	return nil
}

// finish checks that the whole file arrived and matches the whole-file hash.
func (v *verifier) finish() error {
	if v.n != v.m.Size {
		return fmt.Errorf("%w: got %d of %d bytes", ErrTooShort, v.n, v.m.Size)
	}
	if v.gen != len(v.m.GenHashes) {
		return fmt.Errorf("%w: %d of %d generations", ErrTooShort, v.gen, len(v.m.GenHashes))
	}
	v.file.Sum(v.sum[:0])
	if v.sum != v.m.FileHash {
		return fmt.Errorf("%w: whole-file SHA-256", ErrHashMismatch)
	}
	return nil
}
