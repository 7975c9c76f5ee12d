// Package rlnc implements random linear network coding over GF(2^8) for
// Avalanche: how a file is laid out in generations of blocks, an Encoder
// that turns a generation's bytes into coded blocks (the source blocks first,
// then dense random combinations), a progressive Gauss–Jordan Decoder that
// turns coded blocks back into the generation, and recoding, by which a peer
// that holds only part of a generation sends fresh random combinations of
// what it has (Decoder.Recode).
//
// A coded block of a generation with n blocks of B bytes is a coefficient
// vector of n bytes and a payload of B bytes, the payload being the sum of
// the source blocks weighted by the coefficients. Every generation has n = k
// blocks except the last, which has as many as its bytes need; the last block
// of the file is zero-padded to B bytes, and the padding never shows in
// decoded output (Generation.Length says how many bytes are real).
//
// The package does no I/O. Encoders and Decoders work on caller-provided
// buffers and allocate nothing per block. None of its types is safe for
// concurrent use, but independent generations — each with its own Encoder
// or Decoder — can be coded in parallel on all cores.
package rlnc

import (
	"errors"
	"fmt"
)

// Limits and defaults of Params.
const (
	DefaultK         = 64
	DefaultBlockSize = 32 << 10
	MaxK             = 255
	MinBlockSize     = 1 << 10
	MaxBlockSize     = 1 << 20
	// BlockAlign is what every block size must be a multiple of.
	BlockAlign = 64
)

// Errors returned by this package. Functions wrap them with details; test
// for them with errors.Is.
var (
	ErrK             = errors.New("rlnc: generation size k must be in 1..255")
	ErrBlockSize     = errors.New("rlnc: block size must be a multiple of 64 in 1 KiB..1 MiB")
	ErrFileSize      = errors.New("rlnc: file size is negative")
	ErrFileTooLarge  = errors.New("rlnc: file has more generations than an int can count")
	ErrGeneration    = errors.New("rlnc: generation index out of range")
	ErrBlockIndex    = errors.New("rlnc: block index out of range")
	ErrDataLength    = errors.New("rlnc: generation data must hold 1..k·B bytes")
	ErrBlocks        = errors.New("rlnc: block count must be in 1..k")
	ErrCoeffLength   = errors.New("rlnc: coefficient vector length differs from the generation's block count")
	ErrPayloadLength = errors.New("rlnc: payload length differs from the block size")
	ErrNothingToSend = errors.New("rlnc: rank is 0, nothing to recode")
)

// Params are the coding parameters of a file: K source blocks per
// generation, each BlockSize bytes. Both sides of a transfer must use the
// same Params; the manifest carries them.
type Params struct {
	K         int // blocks per generation, 1..255; DefaultK is 64
	BlockSize int // bytes per block, a multiple of 64 in 1 KiB..1 MiB; DefaultBlockSize is 32 KiB
}

// DefaultParams returns k = 64 blocks of 32 KiB: 2 MiB generations, small
// enough to stay in cache while coding.
func DefaultParams() Params { return Params{K: DefaultK, BlockSize: DefaultBlockSize} }

// Validate reports whether p is usable, with an error wrapping ErrK or
// ErrBlockSize if not.
func (p Params) Validate() error {
	if p.K < 1 || p.K > MaxK {
		return fmt.Errorf("%w (k = %d)", ErrK, p.K)
	}
	if p.BlockSize < MinBlockSize || p.BlockSize > MaxBlockSize || p.BlockSize%BlockAlign != 0 {
		return fmt.Errorf("%w (block size = %d)", ErrBlockSize, p.BlockSize)
	}
	return nil
}

// GenerationSize returns K·BlockSize, the bytes in a full generation.
func (p Params) GenerationSize() int { return p.K * p.BlockSize }
