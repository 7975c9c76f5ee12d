package client

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"

	"avalanche/internal/manifest"
)

func TestStateRoundTrip(t *testing.T) {
	id := manifest.ID{1, 2, 3}
	for _, n := range []int{0, 1, 7, 8, 9, 100} {
		have := make([]bool, n)
		for i := range have {
			have[i] = i%3 == 0
		}
		p := filepath.Join(t.TempDir(), "s")
		if err := writeState(p, id, have); err != nil {
			t.Fatal(err)
		}
		got, err := readState(p, id, n)
		if err != nil || !reflect.DeepEqual(got, have) {
			t.Errorf("n=%d: readState = %v, %v; want %v", n, got, err, have)
		}
		if _, err := readState(p, manifest.ID{9}, n); !errors.Is(err, ErrBadState) {
			t.Errorf("n=%d: state for other content accepted: %v", n, err)
		}
		if _, err := readState(p, id, n+1); !errors.Is(err, ErrBadState) {
			t.Errorf("n=%d: wrong generation count accepted: %v", n, err)
		}
	}
}

func FuzzDecodeState(f *testing.F) {
	id := manifest.ID{7}
	f.Add(encodeState(id, []bool{true, false, true}), 3)
	f.Add(encodeState(id, nil), 0)
	f.Add([]byte("AVRS"), 1)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if n < 0 || n > 1<<16 {
			return
		}
		have, err := decodeState(b, id, n)
		if err != nil {
			return
		}
		if len(have) != n {
			t.Fatalf("decoded %d generations, want %d", len(have), n)
		}
		if string(encodeState(id, have)) != string(b) {
			t.Fatal("accepted state does not re-encode to its input")
		}
	})
}
