// Package wire defines the frames of Avalanche's peer protocol and their
// binary encoding (specified in docs/protocol.md). It does no I/O beyond
// reading and writing whole frames on an io.Reader or io.Writer and keeps no
// connection state; the peer engine (package swarm) gives frames meaning.
//
// Every frame is a 4-byte big-endian length n followed by n bytes: a type
// byte and a type-specific body. Lengths are bounded (MaxFrame) and every
// field is checked on decode, so arbitrary bytes yield an error, never a
// panic or an allocation larger than one frame.
package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"avalanche/internal/manifest"
	"avalanche/internal/rlnc"
)

// Version is the protocol version this package speaks.
const Version = 2

// ALPN is the TLS application protocol name of peer links.
const ALPN = "avalanche/1"

// MaxFrame bounds the length field of any frame: a coded block of the
// largest generation (255 coefficients) and block size (1 MiB) plus header.
const MaxFrame = 1 + 4 + manifest.MaxK + manifest.MaxBlockSize

// MaxGenerationsPerState bounds a State frame (one byte per generation).
const MaxGenerationsPerState = manifest.MaxGenerations

// MaxRequest bounds the block count of a single Request.
const MaxRequest = 1024

// Type identifies a frame.
type Type uint8

// Frame types.
const (
	THello     Type = 1  // version, role, content ID, listen port
	TState     Type = 2  // rank of every generation
	THave      Type = 3  // rank change of one generation
	TRequest   Type = 4  // offer me up to n coefficient vectors of generation g
	TOffer     Type = 5  // coefficient vectors the sender can serve
	TWant      Type = 6  // send me the block with this coefficient vector
	TBlock     Type = 7  // one coded block
	TReject    Type = 8  // I will not serve these
	TSumsReq   Type = 9  // send me the checksums of generations [first, first+n)
	TKey       Type = 10 // your checksum key (origin → peer)
	TSums      Type = 11 // checksums of one generation's source blocks
	TBye       Type = 12 // closing, with a reason
	TKeepalive Type = 13 // nothing
	TCancel    Type = 14 // drop my want of this vector if you have not served it
	TSource    Type = 15 // a block whose vector is a unit vector: one source block as is
)

func (t Type) String() string {
	switch t {
	case THello:
		return "hello"
	case TState:
		return "state"
	case THave:
		return "have"
	case TRequest:
		return "request"
	case TOffer:
		return "offer"
	case TWant:
		return "want"
	case TBlock:
		return "block"
	case TSource:
		return "source"
	case TReject:
		return "reject"
	case TSumsReq:
		return "sums-request"
	case TKey:
		return "key"
	case TSums:
		return "sums"
	case TBye:
		return "bye"
	case TKeepalive:
		return "keepalive"
	case TCancel:
		return "cancel"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Role says what a node is in a swarm.
type Role uint8

// Roles.
const (
	RolePeer   Role = 0 // an end user, downloading or seeding
	RoleOrigin Role = 1 // the authoritative source; issues checksums
	RoleEdge   Role = 2 // an edge node acting as a super-seed
)

func (r Role) String() string {
	switch r {
	case RolePeer:
		return "peer"
	case RoleOrigin:
		return "origin"
	case RoleEdge:
		return "edge"
	}
	return fmt.Sprintf("role(%d)", uint8(r))
}

// Errors returned (wrapped) by the decoders.
var (
	ErrMalformed = errors.New("wire: malformed frame")
	ErrTooLarge  = errors.New("wire: frame too large")
	ErrUnknown   = errors.New("wire: unknown frame type")
)

// Hello opens a connection in both directions.
type Hello struct {
	Version  uint8
	Role     Role
	Content  manifest.ID
	Port     uint16 // where the sender accepts peer connections; 0 = none
	Complete bool   // the sender holds the whole content
	// Behind: the sender lacks a fifth of the content or more beyond what
	// the median of its neighbours holds (a late joiner), and asks to be let
	// in past a full neighbour's usual limit.
	Behind bool
}

// State carries the sender's rank for every generation.
type State struct {
	Ranks []byte // one byte per generation; the decoder aliases the frame buffer
}

// Have announces a new rank for one generation.
type Have struct {
	Gen  uint32
	Rank uint8
}

// Request asks a neighbour that holds part of generation Gen to offer up to
// Count coefficient vectors it can serve. Units, when present
// (ceil(GenerationBlocks(Gen)/8) bytes), has bit j%8 of byte j/8 set for
// every source block j the asker already holds or has asked for as is (the
// unit vector e_j): the neighbour offers its other unit rows first, which
// cost neither side any field arithmetic. Decode aliases the frame buffer.
type Request struct {
	Gen   uint32
	Count uint16
	Units []byte
}

// MaxOffer bounds the vectors of one Offer.
const MaxOffer = 255

// Offer answers one Request with coefficient vectors (each
// GenerationBlocks(Gen) bytes, back to back) of blocks the sender can serve;
// none if it holds nothing of the generation. Decode aliases the frame
// buffer.
type Offer struct {
	Gen     uint32
	Vectors []byte
}

// Want asks for the block of generation Gen whose coefficient vector is
// Coeffs. Urgent asks a seed to serve it even past its per-generation cap.
// Any leaves the vector to the sender (Coeffs is then all zero): a seed
// answers with a source block no one has had from it yet, which is
// innovative for every receiver.
//
// With Gen = AnyGen (and Any set, no coefficients) a seed chooses the
// generation too: it answers with the next source block of the content
// that it has sent to no one, whichever generation that is.
type Want struct {
	Gen    uint32
	Urgent bool
	Any    bool
	Coeffs []byte
}

// AnyGen in a Want leaves the generation to the sender; in a Reject it
// declines such Wants.
const AnyGen = ^uint32(0)

// Block is one coded block: the generation, its coefficient vector (one
// byte per source block of the generation) and its payload (block size
// bytes). Decode aliases the frame buffer for the payload. A block whose
// vector is a unit vector e_i — source block i as is, most blocks in a
// swarm — travels as a source frame, with the index in place of the
// vector (see SourceHeader); it decodes to a Block like any other.
type Block struct {
	Gen     uint32
	Coeffs  []byte
	Payload []byte
}

// Reject declines the oldest Count outstanding Wants for Gen.
type Reject struct {
	Gen    uint32
	Count  uint16
	Reason RejectReason
}

// RejectReason says why a Reject was sent.
type RejectReason uint8

// Reject reasons.
const (
	RejectNotHeld RejectReason = 0 // the sender holds nothing (more) of it
	RejectCapped  RejectReason = 1 // a seed already sent this generation enough; ask peers (or be Urgent)
	RejectRetry   RejectReason = 2 // a seed already sent that vector's span; ask again with another
	RejectCancel  RejectReason = 3 // answering a Cancel: the want was dropped
)

// Cancel asks the sender to drop the Want of generation Gen for Coeffs
// (all zero: one that left the vector to the sender) if it has not begun
// to serve it: the asker gave it up (a slow link, or the generation
// completed) and would only throw the block away. The sender answers with
// Reject{Count: 1, Reason: RejectCancel} if it dropped one, after any block
// it was already writing; otherwise the block is on its way. Decode
// aliases the frame buffer.
type Cancel struct {
	Gen    uint32
	Coeffs []byte
}

// SumsReq asks the origin for the checksums of generations First..First+N-1.
type SumsReq struct{ First, N uint32 }

// Key carries the requester's checksum key and the number of checks per
// block. Only an origin sends it, over the authenticated link.
type Key struct {
	Key    [32]byte
	Checks uint8
}

// Sums carries one generation's source-block checksums (blocks × checks
// bytes). Decode aliases the frame buffer.
type Sums struct {
	Gen  uint32
	Sums []byte
}

// Bye closes a connection with a reason.
type Bye struct {
	Code   ByeCode
	Reason string
}

// ByeCode classifies why a connection closes.
type ByeCode uint8

// Bye codes.
const (
	ByeNormal    ByeCode = 0 // done or shutting down
	ByeProtocol  ByeCode = 1 // the other side broke the protocol
	ByePollution ByeCode = 2 // the other side sent a block that failed verification
	ByeBusy      ByeCode = 3 // no upload slot
	ByeBanned    ByeCode = 4 // the other side is banned
	ByeUnknown   ByeCode = 5 // the content is unknown here
)

// MaxReason bounds the reason text of a Bye.
const MaxReason = 256

// Layout is what the decoder needs to know of the content to check Block,
// State and Sums frames: provided by the manifest.
type Layout interface {
	Generations() int
	GenerationBlocks(g int) int
	BlockLen() int
}

// Frame is a decoded frame: one of the types above.
type Frame interface{ frameType() Type }

func (Hello) frameType() Type     { return THello }
func (State) frameType() Type     { return TState }
func (Have) frameType() Type      { return THave }
func (Request) frameType() Type   { return TRequest }
func (Block) frameType() Type     { return TBlock }
func (Offer) frameType() Type     { return TOffer }
func (Want) frameType() Type      { return TWant }
func (Reject) frameType() Type    { return TReject }
func (SumsReq) frameType() Type   { return TSumsReq }
func (Key) frameType() Type       { return TKey }
func (Sums) frameType() Type      { return TSums }
func (Bye) frameType() Type       { return TBye }
func (Keepalive) frameType() Type { return TKeepalive }
func (Cancel) frameType() Type    { return TCancel }

// Keepalive carries nothing.
type Keepalive struct{}

// TypeOf returns the type of a frame.
func TypeOf(f Frame) Type { return f.frameType() }

// ReadFrame reads one frame into buf (grown if needed, never beyond
// MaxFrame+4) and returns the frame body (type byte first) and the buffer
// for reuse.
func ReadFrame(r io.Reader, buf []byte) (body, newBuf []byte, err error) {
	if cap(buf) < 4 {
		buf = make([]byte, 4, 64<<10)
	}
	buf = buf[:4]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, buf, err
	}
	n := binary.BigEndian.Uint32(buf)
	if n == 0 {
		return nil, buf, fmt.Errorf("%w: empty frame", ErrMalformed)
	}
	if n > MaxFrame {
		return nil, buf, fmt.Errorf("%w: %d bytes", ErrTooLarge, n)
	}
	if cap(buf) < int(n) {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, buf, err
	}
	return buf, buf, nil
}

// Decode parses a frame body as returned by ReadFrame. l may be nil before
// the content is known; Block, State and Sums frames then fail. The result
// may alias body.
func Decode(body []byte, l Layout) (Frame, error) {
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: empty frame", ErrMalformed)
	}
	t, b := Type(body[0]), body[1:]
	bad := func(what string) error { return fmt.Errorf("%w: %s: %s", ErrMalformed, t, what) }
	exact := func(n int) error {
		if len(b) != n {
			return bad(fmt.Sprintf("%d body bytes, want %d", len(b), n))
		}
		return nil
	}
	needLayout := func() error {
		if l == nil {
			return bad("before hello")
		}
		return nil
	}
	genOK := func(g uint32) error {
		if int64(g) >= int64(l.Generations()) {
			return bad(fmt.Sprintf("generation %d of %d", g, l.Generations()))
		}
		return nil
	}
	// leadingGen checks the generation a frame body starts with.
	leadingGen := func() (uint32, error) {
		if err := needLayout(); err != nil {
			return 0, err
		}
		if len(b) < 4 {
			return 0, bad("short")
		}
		g := binary.BigEndian.Uint32(b)
		return g, genOK(g)
	}
	switch t {
	case THello:
		if err := exact(1 + 1 + 1 + 32 + 2); err != nil {
			return nil, err
		}
		h := Hello{Version: b[0], Role: Role(b[1])}
		flags := b[2]
		if h.Role > RoleEdge {
			return nil, bad(fmt.Sprintf("unknown role %d", h.Role))
		}
		if flags&^3 != 0 {
			return nil, bad(fmt.Sprintf("unknown flags %#x", flags))
		}
		h.Complete, h.Behind = flags&1 != 0, flags&2 != 0
		copy(h.Content[:], b[3:35])
		h.Port = binary.BigEndian.Uint16(b[35:])
		return h, nil
	case TState:
		if err := needLayout(); err != nil {
			return nil, err
		}
		if err := exact(l.Generations()); err != nil {
			return nil, err
		}
		for g, r := range b {
			if int(r) > l.GenerationBlocks(g) {
				return nil, bad(fmt.Sprintf("generation %d rank %d > %d", g, r, l.GenerationBlocks(g)))
			}
		}
		return State{Ranks: b}, nil
	case THave:
		if err := exact(5); err != nil {
			return nil, err
		}
		if err := needLayout(); err != nil {
			return nil, err
		}
		h := Have{Gen: binary.BigEndian.Uint32(b), Rank: b[4]}
		if err := genOK(h.Gen); err != nil {
			return nil, err
		}
		if int(h.Rank) > l.GenerationBlocks(int(h.Gen)) {
			return nil, bad("rank above generation size")
		}
		return h, nil
	case TRequest, TReject:
		want := 6
		if t == TReject {
			want = 7
		}
		if t == TRequest && len(b) > want {
			want = len(b) // checked against the generation below
		}
		if err := exact(want); err != nil {
			return nil, err
		}
		if err := needLayout(); err != nil {
			return nil, err
		}
		g, n := binary.BigEndian.Uint32(b), binary.BigEndian.Uint16(b[4:])
		if t == TRequest || g != AnyGen {
			if err := genOK(g); err != nil {
				return nil, err
			}
		}
		if n == 0 || n > MaxRequest {
			return nil, bad(fmt.Sprintf("count %d", n))
		}
		if t == TRequest {
			r := Request{Gen: g, Count: n}
			if len(b) > 6 {
				k := l.GenerationBlocks(int(g))
				if len(b) != 6+(k+7)/8 {
					return nil, bad(fmt.Sprintf("unit map of %d bytes for %d blocks", len(b)-6, k))
				}
				r.Units = b[6:]
				if k%8 != 0 && r.Units[len(r.Units)-1]>>(k%8) != 0 {
					return nil, bad("unit map beyond the generation")
				}
			}
			return r, nil
		}
		r := RejectReason(b[6])
		if r > RejectCancel || (r == RejectCancel && g == AnyGen) {
			return nil, bad(fmt.Sprintf("reason %d", r))
		}
		return Reject{Gen: g, Count: n, Reason: r}, nil
	case TOffer:
		g, err := leadingGen()
		if err != nil {
			return nil, err
		}
		k := l.GenerationBlocks(int(g))
		v := b[4:]
		if len(v)%k != 0 || len(v)/k > MaxOffer {
			return nil, bad(fmt.Sprintf("%d vector bytes for %d blocks", len(v), k))
		}
		return Offer{Gen: g, Vectors: v}, nil
	case TWant:
		if err := needLayout(); err != nil {
			return nil, err
		}
		if len(b) < 5 {
			return nil, bad("short")
		}
		g := binary.BigEndian.Uint32(b)
		if b[4]&^3 != 0 {
			return nil, bad(fmt.Sprintf("flags %#x", b[4]))
		}
		if g == AnyGen {
			if err := exact(5); err != nil {
				return nil, err
			}
			if b[4]&2 == 0 {
				return nil, bad("a want of any generation must leave the vector to the sender")
			}
			return Want{Gen: g, Urgent: b[4]&1 != 0, Any: true}, nil
		}
		if err := genOK(g); err != nil {
			return nil, err
		}
		if err := exact(5 + l.GenerationBlocks(int(g))); err != nil {
			return nil, err
		}
		wt := Want{Gen: g, Urgent: b[4]&1 != 0, Any: b[4]&2 != 0, Coeffs: b[5:]}
		zero := true
		for _, c := range wt.Coeffs {
			if c != 0 {
				zero = false
				break
			}
		}
		if wt.Any != zero {
			return nil, bad("the vector must be zero exactly when the sender chooses it")
		}
		return wt, nil
	case TBlock:
		g, err := leadingGen()
		if err != nil {
			return nil, err
		}
		k := l.GenerationBlocks(int(g))
		if err := exact(4 + k + l.BlockLen()); err != nil {
			return nil, err
		}
		if _, ok := rlnc.Unit(b[4 : 4+k]); ok {
			return nil, bad("a unit vector travels in a source frame")
		}
		return Block{Gen: g, Coeffs: b[4 : 4+k], Payload: b[4+k:]}, nil
	case TSource:
		g, err := leadingGen()
		if err != nil {
			return nil, err
		}
		k := l.GenerationBlocks(int(g))
		if err := exact(5 + l.BlockLen()); err != nil {
			return nil, err
		}
		if int(b[4]) >= k {
			return nil, bad(fmt.Sprintf("source block %d of %d", b[4], k))
		}
		coeffs := make([]byte, k)
		coeffs[b[4]] = 1
		return Block{Gen: g, Coeffs: coeffs, Payload: b[5:]}, nil
	case TSumsReq:
		if err := exact(8); err != nil {
			return nil, err
		}
		if err := needLayout(); err != nil {
			return nil, err
		}
		s := SumsReq{First: binary.BigEndian.Uint32(b), N: binary.BigEndian.Uint32(b[4:])}
		if s.N == 0 || uint64(s.First)+uint64(s.N) > uint64(l.Generations()) {
			return nil, bad(fmt.Sprintf("generations %d+%d of %d", s.First, s.N, l.Generations()))
		}
		return s, nil
	case TKey:
		if err := exact(33); err != nil {
			return nil, err
		}
		k := Key{Checks: b[32]}
		copy(k.Key[:], b[:32])
		if k.Checks == 0 || k.Checks > 16 {
			return nil, bad(fmt.Sprintf("%d checks", k.Checks))
		}
		return k, nil
	case TSums:
		g, err := leadingGen()
		if err != nil {
			return nil, err
		}
		k := l.GenerationBlocks(int(g))
		s := b[4:]
		if len(s) == 0 || len(s)%k != 0 || len(s)/k > 16 {
			return nil, bad(fmt.Sprintf("%d checksum bytes for %d blocks", len(s), k))
		}
		return Sums{Gen: g, Sums: s}, nil
	case TBye:
		if len(b) < 1 || len(b) > 1+MaxReason {
			return nil, bad("length")
		}
		return Bye{Code: ByeCode(b[0]), Reason: string(b[1:])}, nil
	case TKeepalive:
		if err := exact(0); err != nil {
			return nil, err
		}
		return Keepalive{}, nil
	case TCancel:
		g, err := leadingGen()
		if err != nil {
			return nil, err
		}
		if err := exact(4 + l.GenerationBlocks(int(g))); err != nil {
			return nil, err
		}
		return Cancel{Gen: g, Coeffs: b[4:]}, nil
	}
	return nil, fmt.Errorf("%w %d", ErrUnknown, uint8(t))
}

// Append appends the encoding of f, length prefix included, to dst.
func Append(dst []byte, f Frame) []byte {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0, byte(f.frameType()))
	switch f := f.(type) {
	case Hello:
		var flags byte
		if f.Complete {
			flags |= 1
		}
		if f.Behind {
			flags |= 2
		}
		dst = append(dst, f.Version, byte(f.Role), flags)
		dst = append(dst, f.Content[:]...)
		dst = binary.BigEndian.AppendUint16(dst, f.Port)
	case State:
		dst = append(dst, f.Ranks...)
	case Have:
		dst = binary.BigEndian.AppendUint32(dst, f.Gen)
		dst = append(dst, f.Rank)
	case Request:
		dst = binary.BigEndian.AppendUint32(dst, f.Gen)
		dst = binary.BigEndian.AppendUint16(dst, f.Count)
		dst = append(dst, f.Units...)
	case Reject:
		dst = binary.BigEndian.AppendUint32(dst, f.Gen)
		dst = binary.BigEndian.AppendUint16(dst, f.Count)
		dst = append(dst, byte(f.Reason))
	case Offer:
		dst = binary.BigEndian.AppendUint32(dst, f.Gen)
		dst = append(dst, f.Vectors...)
	case Want:
		dst = binary.BigEndian.AppendUint32(dst, f.Gen)
		var flags byte
		if f.Urgent {
			flags |= 1
		}
		if f.Any {
			flags |= 2
		}
		dst = append(dst, flags)
		dst = append(dst, f.Coeffs...)
	case Block:
		dst = binary.BigEndian.AppendUint32(dst, f.Gen)
		if i, ok := rlnc.Unit(f.Coeffs); ok && i <= manifest.MaxK {
			dst[start+4] = byte(TSource)
			dst = append(dst, byte(i))
		} else {
			dst = append(dst, f.Coeffs...)
		}
		dst = append(dst, f.Payload...)
	case SumsReq:
		dst = binary.BigEndian.AppendUint32(dst, f.First)
		dst = binary.BigEndian.AppendUint32(dst, f.N)
	case Key:
		dst = append(dst, f.Key[:]...)
		dst = append(dst, f.Checks)
	case Sums:
		dst = binary.BigEndian.AppendUint32(dst, f.Gen)
		dst = append(dst, f.Sums...)
	case Bye:
		r := f.Reason
		if len(r) > MaxReason {
			r = r[:MaxReason]
		}
		dst = append(dst, byte(f.Code))
		dst = append(dst, r...)
	case Keepalive:
	case Cancel:
		dst = binary.BigEndian.AppendUint32(dst, f.Gen)
		dst = append(dst, f.Coeffs...)
	}
	binary.BigEndian.PutUint32(dst[start:], uint32(len(dst)-start-4))
	return dst
}

// BlockHeaderSize is the length of what BlockHeader appends.
const BlockHeaderSize = 9

// BlockHeader appends the 9-byte frame header (length, type, generation)
// of a Block frame carrying k coefficients and a payload of blockSize
// bytes, so that a sender can lay out header, coefficients and payload
// around a payload it has already written.
func BlockHeader(dst []byte, gen uint32, k, blockSize int) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(1+4+k+blockSize))
	dst = append(dst, byte(TBlock))
	return binary.BigEndian.AppendUint32(dst, gen)
}

// SourceHeaderSize is the length of what SourceHeader appends.
const SourceHeaderSize = 10

// SourceHeader appends the whole 10-byte header (length, type, generation,
// index) of the frame that carries source block i of a generation as is
// — the Block with unit vector e_i — and a payload of blockSize bytes.
// It saves the k-byte vector: 0.19% of every such block at k = 64 and 32
// KiB, which on a seed's uplink is that much sooner done.
func SourceHeader(dst []byte, gen uint32, i, blockSize int) []byte {
	dst = binary.BigEndian.AppendUint32(dst, uint32(1+4+1+blockSize))
	dst = append(dst, byte(TSource))
	dst = binary.BigEndian.AppendUint32(dst, gen)
	return append(dst, byte(i))
}
