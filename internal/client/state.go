package client

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"

	"avalanche/internal/atomicfile"
	"avalanche/internal/manifest"
)

// The resume state file records which generations of NAME.partial were
// written and synced. It is a hint: every generation it lists is verified
// against the manifest again before it is trusted.
//
//	magic "AVRS" | version 1 | content ID (32) | generations u32 | bitmap
var stateMagic = [4]byte{'A', 'V', 'R', 'S'}

// ErrBadState is returned for unreadable state files.
var ErrBadState = errors.New("client: bad resume state")

func encodeState(id manifest.ID, have []bool) []byte {
	b := append([]byte(nil), stateMagic[:]...)
	b = append(b, 1)
	b = append(b, id[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(have)))
	bm := make([]byte, (len(have)+7)/8)
	for i, h := range have {
		if h {
			bm[i/8] |= 1 << (i % 8)
		}
	}
	return append(b, bm...)
}

// decodeState parses a state file for content id with n generations.
func decodeState(b []byte, id manifest.ID, n int) ([]bool, error) {
	const hdr = 4 + 1 + 32 + 4
	if len(b) < hdr || [4]byte(b[:4]) != stateMagic || b[4] != 1 {
		return nil, fmt.Errorf("%w: header", ErrBadState)
	}
	if manifest.ID(b[5:37]) != id {
		return nil, fmt.Errorf("%w: for other content", ErrBadState)
	}
	if int64(binary.BigEndian.Uint32(b[37:41])) != int64(n) {
		return nil, fmt.Errorf("%w: generation count", ErrBadState)
	}
	bm := b[hdr:]
	if len(bm) != (n+7)/8 {
		return nil, fmt.Errorf("%w: bitmap length", ErrBadState)
	}
	if n%8 != 0 && bm[len(bm)-1]>>(n%8) != 0 {
		return nil, fmt.Errorf("%w: bits beyond the last generation", ErrBadState)
	}
	have := make([]bool, n)
	for i := range have {
		have[i] = bm[i/8]&(1<<(i%8)) != 0
	}
	return have, nil
}

func writeState(path string, id manifest.ID, have []bool) error {
	return atomicfile.WriteFile(path, encodeState(id, have), 0o644)
}

func readState(path string, id manifest.ID, n int) ([]bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return decodeState(b, id, n)
}
