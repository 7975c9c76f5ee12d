package rlnc

import (
	"fmt"
	"math"
)

// Layout is how a file of a given size is cut into generations: generation
// g covers the bytes [g·k·B, min((g+1)·k·B, size)) and has ceil(length/B)
// blocks; every generation but the last is full. A file of 0 bytes has no
// generations. Layout is a small value, safe to copy and to share.
type Layout struct {
	p    Params
	size int64
	gens int
}

// Generation describes one generation of a Layout.
type Generation struct {
	Index  int   // position in the file, from 0
	Offset int64 // byte offset of the generation's first byte in the file
	Length int   // real bytes, 1..k·B; the rest of the last block is padding
	Blocks int   // ceil(Length/B): the length of its coefficient vectors
	// BlockSize is B, the Params' block size.
	BlockSize int
}

// NewLayout returns the layout of a file of size bytes under p. It fails if
// p is invalid or size is negative.
func NewLayout(size int64, p Params) (Layout, error) {
	if err := p.Validate(); err != nil {
		return Layout{}, err
	}
	if size < 0 {
		return Layout{}, fmt.Errorf("%w (%d)", ErrFileSize, size)
	}
	gs := int64(p.GenerationSize())
	n := size / gs
	if size%gs != 0 {
		n++
	}
	if n > math.MaxInt {
		return Layout{}, fmt.Errorf("%w (%d generations)", ErrFileTooLarge, n)
	}
	return Layout{p: p, size: size, gens: int(n)}, nil
}

// Params returns the parameters the layout was built with.
func (l Layout) Params() Params { return l.p }

// Size returns the file size in bytes.
func (l Layout) Size() int64 { return l.size }

// Generations returns the number of generations, 0 for an empty file.
func (l Layout) Generations() int { return l.gens }

// Generation returns generation g, or an error wrapping ErrGeneration when g
// is outside 0..Generations()-1.
func (l Layout) Generation(g int) (Generation, error) {
	if g < 0 || g >= l.gens {
		return Generation{}, fmt.Errorf("%w (%d of %d)", ErrGeneration, g, l.gens)
	}
	gs := int64(l.p.GenerationSize())
	off := int64(g) * gs
	n := int(min(gs, l.size-off))
	return Generation{
		Index:     g,
		Offset:    off,
		Length:    n,
		Blocks:    (n + l.p.BlockSize - 1) / l.p.BlockSize,
		BlockSize: l.p.BlockSize,
	}, nil
}

// GenerationAt returns the index of the generation holding byte offset off,
// or an error wrapping ErrGeneration when off is outside the file.
func (l Layout) GenerationAt(off int64) (int, error) {
	if off < 0 || off >= l.size {
		return 0, fmt.Errorf("%w (offset %d of %d bytes)", ErrGeneration, off, l.size)
	}
	return int(off / int64(l.p.GenerationSize())), nil
}

// BlockLength returns how many bytes of block i of g are real: the block
// size for every block but the last, whose tail is padding; 0 for an index
// outside the generation.
func (g Generation) BlockLength(i int) int {
	if i < 0 || i >= g.Blocks {
		return 0
	}
	return min(g.BlockSize, g.Length-i*g.BlockSize)
}
