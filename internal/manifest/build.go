package manifest

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"time"
)

// Builder hashes a file as it streams past and produces an unsigned
// Manifest. It is an io.Writer; write the whole file, then call Manifest.
type Builder struct {
	k, blockSize int
	genSize      int64
	file         hashState
	gen          hashState
	genFill      int64
	genHashes    [][sha256.Size]byte
	size         int64
}

type hashState = interface {
	io.Writer
	Sum([]byte) []byte
	Reset()
}

// NewBuilder returns a Builder for the given coding parameters.
func NewBuilder(k, blockSize int) (*Builder, error) {
	if err := CheckParams(k, blockSize); err != nil {
		return nil, err
	}
	return &Builder{k: k, blockSize: blockSize, genSize: int64(k) * int64(blockSize), file: sha256.New(), gen: sha256.New()}, nil
}

// Write hashes p. It never fails except when the file grows past the
// generation limit.
func (b *Builder) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		take := min(int64(len(p)), b.genSize-b.genFill)
		b.gen.Write(p[:take])
		b.file.Write(p[:take])
		b.genFill += take
		b.size += take
		p = p[take:]
		if b.genFill == b.genSize {
			b.closeGen()
			if len(b.genHashes) > MaxGenerations {
				return n - len(p), fmt.Errorf("%w: more than %d generations", ErrTooLarge, MaxGenerations)
			}
		}
	}
	return n, nil
}

func (b *Builder) closeGen() {
	var h [sha256.Size]byte
	b.gen.Sum(h[:0])
	b.genHashes = append(b.genHashes, h)
	b.gen.Reset()
	b.genFill = 0
}

// Manifest returns the unsigned manifest for everything written so far.
func (b *Builder) Manifest(property, name string, created time.Time) (*Manifest, error) {
	hashes := b.genHashes
	if b.genFill > 0 {
		var h [sha256.Size]byte
		b.gen.Sum(h[:0])
		hashes = append(hashes[:len(hashes):len(hashes)], h)
	}
	m := &Manifest{
		Property:  property,
		Name:      name,
		Size:      b.size,
		K:         b.k,
		BlockSize: b.blockSize,
		Created:   created.Truncate(time.Second).UTC(),
		GenHashes: hashes,
	}
	b.file.Sum(m.FileHash[:0])
	if err := CheckName(name); err != nil {
		return nil, err
	}
	if err := CheckProperty(property); err != nil {
		return nil, err
	}
	return m, nil
}

// FromReader streams r through a Builder.
func FromReader(r io.Reader, k, blockSize int, property, name string, created time.Time) (*Manifest, error) {
	b, err := NewBuilder(k, blockSize)
	if err != nil {
		return nil, err
	}
	if _, err := io.CopyBuffer(b, r, make([]byte, 1<<20)); err != nil {
		if errors.Is(err, ErrTooLarge) {
			return nil, err
		}
		return nil, fmt.Errorf("manifest: reading input: %w", err)
	}
	return b.Manifest(property, name, created)
}
