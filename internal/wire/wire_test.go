package wire

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"testing"
)

// testLayout: 3 generations of 4, 4 and 2 blocks of 1024 bytes.
type testLayout struct{}

func (testLayout) Generations() int { return 3 }
func (testLayout) GenerationBlocks(g int) int {
	if g == 2 {
		return 2
	}
	return 4
}
func (testLayout) BlockLen() int { return 1024 }

func sampleFrames() []Frame {
	payload := bytes.Repeat([]byte{0xAB}, 1024)
	return []Frame{
		Hello{Version: Version, Role: RoleOrigin, Content: [32]byte{1, 2, 3}, Port: 7000, Complete: true},
		Hello{Version: Version, Role: RolePeer},
		Hello{Version: Version, Role: RolePeer, Port: 7001, Behind: true},
		State{Ranks: []byte{4, 0, 2}},
		Have{Gen: 2, Rank: 1},
		Request{Gen: 1, Count: 16},
		Request{Gen: 0, Count: 2, Units: []byte{0x05}},
		Block{Gen: 0, Coeffs: []byte{1, 2, 3, 4}, Payload: payload},
		Block{Gen: 2, Coeffs: []byte{9, 8}, Payload: payload},
		Block{Gen: 1, Coeffs: []byte{0, 0, 1, 0}, Payload: payload},
		Block{Gen: 2, Coeffs: []byte{1, 0}, Payload: payload},
		Offer{Gen: 0, Vectors: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		Offer{Gen: 1, Vectors: []byte{}},
		Want{Gen: 2, Urgent: true, Coeffs: []byte{3, 4}},
		Want{Gen: 0, Coeffs: []byte{3, 4, 5, 6}},
		Want{Gen: 1, Any: true, Coeffs: []byte{0, 0, 0, 0}},
		Want{Gen: AnyGen, Any: true},
		Want{Gen: AnyGen, Any: true, Urgent: true},
		Reject{Gen: AnyGen, Count: 2, Reason: RejectCapped},
		Reject{Gen: 0, Count: 3, Reason: RejectCapped},
		SumsReq{First: 0, N: 3},
		Key{Key: [32]byte{7}, Checks: 4},
		Sums{Gen: 2, Sums: []byte{1, 2, 3, 4, 5, 6, 7, 8}},
		Bye{Code: ByePollution, Reason: "block failed verification"},
		Keepalive{},
		Cancel{Gen: 1, Coeffs: []byte{0, 1, 0, 0}},
		Cancel{Gen: 2, Coeffs: []byte{0, 0}},
		Reject{Gen: 2, Count: 5, Reason: RejectCancel},
	}
}

func TestRoundTrip(t *testing.T) {
	var stream []byte
	for _, f := range sampleFrames() {
		stream = Append(stream, f)
	}
	r := bytes.NewReader(stream)
	var buf []byte
	for i, want := range sampleFrames() {
		body, nb, err := ReadFrame(r, buf)
		buf = nb
		if err != nil {
			t.Fatalf("frame %d: ReadFrame: %v", i, err)
		}
		got, err := Decode(body, testLayout{})
		if err != nil {
			t.Fatalf("frame %d (%s): Decode: %v", i, TypeOf(want), err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("frame %d: Decode = %+v, want %+v", i, got, want)
		}
	}
	if _, _, err := ReadFrame(r, buf); err != io.EOF {
		t.Errorf("after last frame: %v, want EOF", err)
	}
}

func TestBlockHeaderMatchesAppend(t *testing.T) {
	b := Block{Gen: 1, Coeffs: []byte{1, 2, 3, 4}, Payload: make([]byte, 1024)}
	full := Append(nil, b)
	hdr := BlockHeader(nil, 1, 4, 1024)
	if !bytes.Equal(full[:len(hdr)], hdr) {
		t.Errorf("BlockHeader = %x, want %x", hdr, full[:len(hdr)])
	}
}

// A block with a unit vector travels as a source frame: the index instead
// of the vector, and the same Block when decoded.
func TestSourceFrame(t *testing.T) {
	payload := bytes.Repeat([]byte{0xCD}, 1024)
	unit := Block{Gen: 1, Coeffs: []byte{0, 0, 0, 1}, Payload: payload}
	enc := Append(nil, unit)
	if got, want := len(enc), 4+1+4+1+1024; got != want {
		t.Fatalf("source frame of %d bytes, want %d", got, want)
	}
	if got := TypeOf(mustDecode(t, enc)); got != TBlock {
		t.Errorf("decodes to a %s frame, want a block", got)
	}
	if hdr := SourceHeader(nil, 1, 3, 1024); !bytes.Equal(enc[:len(hdr)], hdr) || len(hdr) != SourceHeaderSize {
		t.Errorf("SourceHeader = %x, want %x", hdr, enc[:SourceHeaderSize])
	}
	if b := mustDecode(t, enc).(Block); !bytes.Equal(b.Coeffs, unit.Coeffs) || !bytes.Equal(b.Payload, payload) {
		t.Errorf("decoded %v, want %v", b.Coeffs, unit.Coeffs)
	}
	// Any other vector, zero included, keeps its coefficients.
	for _, v := range [][]byte{{0, 0, 0, 0}, {0, 2, 0, 0}, {1, 1, 0, 0}} {
		if enc := Append(nil, Block{Gen: 1, Coeffs: v, Payload: payload}); Type(enc[4]) != TBlock || len(enc) != 4+1+4+4+1024 {
			t.Errorf("vector %v: %s frame of %d bytes", v, Type(enc[4]), len(enc))
		}
	}
}

func mustDecode(t *testing.T, enc []byte) Frame {
	t.Helper()
	f, err := Decode(enc[4:], testLayout{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestDecodeErrors(t *testing.T) {
	frame := func(typ Type, body ...byte) []byte { return append([]byte{byte(typ)}, body...) }
	blk := func(gen byte, k, n int) []byte {
		return append(frame(TBlock, 0, 0, 0, gen), make([]byte, k+n)...)
	}
	tests := []struct {
		name string
		body []byte
		l    Layout
		want error
	}{
		{"empty", nil, testLayout{}, ErrMalformed},
		{"unknown type", frame(99), testLayout{}, ErrUnknown},
		{"hello short", frame(THello, 1, 0), nil, ErrMalformed},
		{"hello bad role", append(frame(THello, 1, 9, 0), make([]byte, 34)...), nil, ErrMalformed},
		{"hello bad flags", append(frame(THello, 1, 0, 4), make([]byte, 34)...), nil, ErrMalformed},
		{"block before hello", blk(0, 4, 1024), nil, ErrMalformed},
		{"block bad generation", blk(3, 4, 1024), testLayout{}, ErrMalformed},
		{"block wrong k", blk(2, 4, 1024), testLayout{}, ErrMalformed},
		{"block short payload", blk(0, 4, 1000), testLayout{}, ErrMalformed},
		{"block with a unit vector", append(frame(TBlock, 0, 0, 0, 0, 0, 1, 0, 0), make([]byte, 1024)...), testLayout{}, ErrMalformed},
		{"source before hello", append(frame(TSource, 0, 0, 0, 0, 0), make([]byte, 1024)...), nil, ErrMalformed},
		{"source index past the generation", append(frame(TSource, 0, 0, 0, 2, 2), make([]byte, 1024)...), testLayout{}, ErrMalformed},
		{"source bad generation", append(frame(TSource, 0, 0, 0, 3, 0), make([]byte, 1024)...), testLayout{}, ErrMalformed},
		{"source short payload", append(frame(TSource, 0, 0, 0, 0, 0), make([]byte, 1000)...), testLayout{}, ErrMalformed},
		{"state wrong length", frame(TState, 1, 1), testLayout{}, ErrMalformed},
		{"state rank too high", frame(TState, 1, 1, 3), testLayout{}, ErrMalformed},
		{"have rank too high", frame(THave, 0, 0, 0, 2, 3), testLayout{}, ErrMalformed},
		{"request zero", frame(TRequest, 0, 0, 0, 0, 0, 0), testLayout{}, ErrMalformed},
		{"request huge", frame(TRequest, 0, 0, 0, 0, 0xff, 0xff), testLayout{}, ErrMalformed},
		{"request unit map too long", frame(TRequest, 0, 0, 0, 0, 0, 1, 1, 0), testLayout{}, ErrMalformed},
		{"request unit map beyond the generation", frame(TRequest, 0, 0, 0, 0, 0, 1, 0x10), testLayout{}, ErrMalformed},
		{"reject bad reason", frame(TReject, 0, 0, 0, 0, 0, 1, 9), testLayout{}, ErrMalformed},
		{"offer ragged", frame(TOffer, 0, 0, 0, 0, 1, 2, 3), testLayout{}, ErrMalformed},
		{"want wrong k", frame(TWant, 0, 0, 0, 2, 0, 1, 2, 3), testLayout{}, ErrMalformed},
		{"want bad flags", frame(TWant, 0, 0, 0, 2, 4, 1, 2), testLayout{}, ErrMalformed},
		{"want any with a vector", frame(TWant, 0, 0, 0, 2, 2, 1, 2), testLayout{}, ErrMalformed},
		{"want zero vector", frame(TWant, 0, 0, 0, 2, 0, 0, 0), testLayout{}, ErrMalformed},
		{"want any generation, chosen vector", frame(TWant, 0xff, 0xff, 0xff, 0xff, 0), testLayout{}, ErrMalformed},
		{"want any generation with a vector", frame(TWant, 0xff, 0xff, 0xff, 0xff, 2, 0, 0), testLayout{}, ErrMalformed},
		{"want generation past the end", frame(TWant, 0xff, 0xff, 0xff, 0xfe, 2), testLayout{}, ErrMalformed},
		{"request any generation", frame(TRequest, 0xff, 0xff, 0xff, 0xff, 0, 1), testLayout{}, ErrMalformed},
		{"sums-request overflow", frame(TSumsReq, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2), testLayout{}, ErrMalformed},
		{"key zero checks", append(frame(TKey, make([]byte, 32)...), 0), nil, ErrMalformed},
		{"sums ragged", frame(TSums, 0, 0, 0, 2, 1, 2, 3), testLayout{}, ErrMalformed},
		{"bye long", append(frame(TBye, 0), make([]byte, 300)...), nil, ErrMalformed},
		{"keepalive with body", frame(TKeepalive, 1), nil, ErrMalformed},
		{"cancel before hello", frame(TCancel, 0, 0, 0, 2, 1, 0), nil, ErrMalformed},
		{"cancel bad generation", frame(TCancel, 0, 0, 0, 3, 1, 0), testLayout{}, ErrMalformed},
		{"cancel any generation", frame(TCancel, 0xff, 0xff, 0xff, 0xff), testLayout{}, ErrMalformed},
		{"cancel short", frame(TCancel, 0, 0, 0), testLayout{}, ErrMalformed},
		{"cancel wrong k", frame(TCancel, 0, 0, 0, 2, 1, 0, 0), testLayout{}, ErrMalformed},
		{"reject cancel of any generation", frame(TReject, 0xff, 0xff, 0xff, 0xff, 0, 1, 3), testLayout{}, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Decode(tc.body, tc.l); !errors.Is(err, tc.want) {
				t.Errorf("Decode = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestReadFrameLimits(t *testing.T) {
	if _, _, err := ReadFrame(bytes.NewReader([]byte{0xff, 0xff, 0xff, 0xff}), nil); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge length: %v", err)
	}
	if _, _, err := ReadFrame(bytes.NewReader([]byte{0, 0, 0, 0}), nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("zero length: %v", err)
	}
	if _, _, err := ReadFrame(bytes.NewReader([]byte{0, 0, 0, 9, 1}), nil); err != io.ErrUnexpectedEOF {
		t.Errorf("truncated: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, fr := range sampleFrames() {
		f.Add(Append(nil, fr)[4:])
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		fr, err := Decode(body, testLayout{})
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to the same bytes.
		if got := Append(nil, fr)[4:]; !bytes.Equal(got, body) {
			t.Fatalf("re-encoding %s: %x, want %x", TypeOf(fr), got, body)
		}
	})
}

func FuzzReadFrame(f *testing.F) {
	var stream []byte
	for _, fr := range sampleFrames() {
		stream = Append(stream, fr)
	}
	f.Add(stream)
	f.Fuzz(func(t *testing.T, stream []byte) {
		r := bytes.NewReader(stream)
		var buf []byte
		for {
			body, nb, err := ReadFrame(r, buf)
			buf = nb
			if err != nil {
				return
			}
			Decode(body, testLayout{})
		}
	})
}

func BenchmarkDecodeBlock(b *testing.B) {
	enc := Append(nil, Block{Gen: 1, Coeffs: make([]byte, 4), Payload: make([]byte, 1024)})
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	r := bytes.NewReader(enc)
	var buf []byte
	for b.Loop() {
		r.Reset(enc)
		body, nb, _ := ReadFrame(r, buf)
		buf = nb
		if _, err := Decode(body, testLayout{}); err != nil {
			b.Fatal(err)
		}
	}
}
