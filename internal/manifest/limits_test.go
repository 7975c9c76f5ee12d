package manifest

import (
	"errors"
	"io"
	"testing"
	"time"
)

// TestOversizedInputRefused checks that input longer than any manifest can
// be is refused as too large, before it is looked at.
func TestOversizedInputRefused(t *testing.T) {
	big := make([]byte, MaxEncodedLen+1)
	copy(big, header(64, 32768, 1<<40, 1<<19))
	allocs := testing.AllocsPerRun(1, func() {
		if _, err := Parse(big); !errors.Is(err, ErrTooLarge) {
			t.Errorf("Parse(%d bytes) = %v, want ErrTooLarge", len(big), err)
		}
	})
	if allocs > 10 {
		t.Errorf("Parse of oversized input allocated %v times", allocs)
	}
}

// TestBuilderGenerationLimit streams a file one generation longer than a
// manifest may describe (k = 1, B = 1 KiB: 1 GiB + 1 KiB) and expects the
// Builder to refuse it as too large.
func TestBuilderGenerationLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("hashes 1 GiB")
	}
	r := io.LimitReader(zeros{}, int64(MaxGenerations+1)*1024)
	_, err := FromReader(r, 1, 1024, "devtools", "big.img", time.Unix(0, 0))
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("FromReader(%d generations) = %v, want ErrTooLarge", MaxGenerations+1, err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
