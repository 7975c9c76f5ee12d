package swarm

import (
	"fmt"
	"math/rand/v2"
	"sync"

	"avalanche/internal/identity"
	"avalanche/internal/lincheck"
	"avalanche/internal/manifest"
	"avalanche/internal/rlnc"
)

// This file adapts the coding core (packages rlnc and lincheck) to the
// engine's needs.

// decoder is one generation's progressive decoder. While every block it
// took is a source block as is (a unit vector) and the swarm's storage
// reads back what it writes, it keeps no payloads: each source block goes
// straight to its place in storage, and the decoder only records which
// ones it holds ("direct"). The first other block, or the first want for a
// combination of what it holds, reads them back into an rlnc.Decoder that
// takes over ("coded").
//
// Why: in the swarm lab every block a downloader received was a source
// block, and copying each into a decoder row, then the whole generation
// into the file and into a serving cache, cost a fifth of all CPU time at
// N=32 — two thirds of it the kernel copying 2 MiB generations from rows
// filled a while ago, which is several times slower in the lab's virtual
// machine than writing each block from the buffer it just arrived in.
//
// Callers hold the generation's mu.
type decoder struct {
	s   *Swarm
	gen *generation
	d   *rlnc.Decoder // coded mode; nil while direct
	// Direct mode: source blocks held, in storage at their place.
	held []bool
	n    int
	// fresh marks source blocks that came from a seed and have not been
	// served to anyone since: as far as we know nobody else holds them,
	// and they are lost if we leave. They are offered first, so that the
	// swarm takes a copy soon (in the swarm lab's churn scenario, blocks
	// that downloaders left with had to be sent again at the very end).
	fresh []bool
}

// newDecoder returns an empty decoder for gen: direct when the storage
// reads back what is written, else coded from the start. Caller holds
// gen.mu.
func (s *Swarm) newDecoder(gen *generation) *decoder {
	d := &decoder{s: s, gen: gen}
	if s.store.readBack() {
		d.held = make([]bool, gen.blocks)
		d.fresh = make([]bool, gen.blocks)
	} else {
		d.d = s.codedDecoder(gen)
	}
	return d
}

func (d *decoder) direct() bool { return d.d == nil }

func (d *decoder) rank() int {
	if d.direct() {
		return d.n
	}
	return d.d.Rank()
}

// outside reports whether v has a non-zero coefficient on a source block
// not held (direct mode): what it holds spans exactly the vectors
// supported on the blocks held.
func (d *decoder) outside(v []byte) bool {
	for j, c := range v {
		if c != 0 && !d.held[j] {
			return true
		}
	}
	return false
}

func (d *decoder) innovative(coeffs []byte) bool {
	if len(coeffs) != d.gen.blocks {
		return false
	}
	if d.direct() {
		return d.outside(coeffs)
	}
	return d.d.Innovative(coeffs)
}

// add takes a block (verified) and reports whether it was innovative;
// fromSeed says it came from a seed (an origin or edge). The error is a
// storage failure.
func (d *decoder) add(coeffs, payload []byte, fromSeed bool) (bool, error) {
	if len(coeffs) != d.gen.blocks || len(payload) != d.s.m.BlockSize {
		return false, nil
	}
	if d.direct() {
		if j, ok := rlnc.Unit(coeffs); ok {
			if d.held[j] {
				return false, nil
			}
			off, end := d.s.blockSpan(d.gen, j)
			if err := d.s.store.writeAt(payload[:end-off], d.gen.off+int64(off)); err != nil {
				return false, fmt.Errorf("%w: writing generation %d: %w", ErrStorage, d.gen.index, err)
			}
			d.held[j] = true
			d.fresh[j] = fromSeed
			d.n++
			return true, nil
		}
		if !d.outside(coeffs) {
			return false, nil
		}
		if err := d.materialize(); err != nil {
			return false, err
		}
	}
	ok, err := d.d.Add(coeffs, payload)
	return err == nil && ok, nil
}

// materialize switches to coded mode: the source blocks held are read back
// from storage into an rlnc.Decoder.
func (d *decoder) materialize() error {
	cd := d.s.codedDecoder(d.gen)
	buf := make([]byte, d.s.m.BlockSize)
	unit := make([]byte, d.gen.blocks)
	for j, ok := range d.held {
		if !ok {
			continue
		}
		if err := d.s.storedBlock(d.gen, j, buf); err != nil {
			d.s.putCoded(cd)
			return fmt.Errorf("%w: reading generation %d back: %w", ErrStorage, d.gen.index, err)
		}
		clear(unit)
		unit[j] = 1
		cd.Add(unit, buf)
	}
	d.d, d.held, d.fresh, d.n = cd, nil, nil, 0
	return nil
}

// unique reports whether source block j came from a seed and has not been
// served since (direct mode only; coded decoders keep no such record).
func (d *decoder) unique(j int) bool {
	return d.direct() && j >= 0 && j < len(d.fresh) && d.fresh[j]
}

func (d *decoder) unitRow(j int) bool {
	if d.direct() {
		return j >= 0 && j < len(d.held) && d.held[j]
	}
	return d.d.UnitRow(j)
}

// spanVector writes a random vector of the span held into v.
func (d *decoder) spanVector(rng *rand.Rand, v []byte) error {
	if !d.direct() {
		return d.d.SpanVector(rng, v)
	}
	if d.n == 0 || len(v) != len(d.held) {
		return rlnc.ErrNothingToSend
	}
	for {
		clear(v)
		nz := false
		for j, ok := range d.held {
			if ok {
				v[j] = byte(rng.Uint32())
				nz = nz || v[j] != 0
			}
		}
		if nz {
			return nil
		}
	}
}

// combine writes the block with coefficient vector v, which must lie in
// the span held, into payload.
func (d *decoder) combine(v, payload []byte) error {
	if d.direct() {
		if len(v) != len(d.held) || d.outside(v) {
			return rlnc.ErrNotInSpan
		}
		if j, ok := rlnc.Unit(v); ok {
			d.fresh[j] = false
			return d.s.storedBlock(d.gen, j, payload)
		}
		if err := d.materialize(); err != nil {
			return err
		}
	}
	return d.d.Combine(v, payload)
}

// addRowsTo adds the rows held to b.
func (d *decoder) addRowsTo(b *rlnc.Basis) {
	if !d.direct() {
		d.d.AddRowsTo(b)
		return
	}
	unit := make([]byte, len(d.held))
	for j, ok := range d.held {
		if ok {
			clear(unit)
			unit[j] = 1
			b.Add(unit)
		}
	}
}

// finish returns the complete generation, padded to whole blocks, in a
// buffer of the slab, and whether it is in storage already (direct mode:
// read back from there). The caller gives the buffer back with
// release.
func (d *decoder) finish() (data []byte, stored bool, err error) {
	if !d.direct() {
		return d.d.Data(), false, nil
	}
	buf, err := d.s.readGeneration(d.gen, d.s.bufs.get())
	if err != nil {
		d.s.bufs.put(buf)
		return nil, false, fmt.Errorf("%w: reading generation %d back: %w", ErrStorage, d.gen.index, err)
	}
	return buf, true, nil
}

// reset empties the decoder (a generation that failed its hash is fetched
// again), back in direct mode where the storage allows.
func (d *decoder) reset() {
	if d.s.store.readBack() {
		if d.d != nil {
			d.s.putCoded(d.d)
			d.d = nil
		}
		d.held = make([]bool, d.gen.blocks)
		d.fresh = make([]bool, d.gen.blocks)
		d.n = 0
		return
	}
	d.d.Reset()
}

// release gives the decoder's memory back once its generation is done.
func (d *decoder) release() {
	if d.d != nil && d.d.Complete() {
		d.s.putCoded(d.d)
	}
	d.d, d.held, d.fresh = nil, nil, nil
}

func (s *Swarm) params() rlnc.Params { return rlnc.Params{K: s.m.K, BlockSize: s.m.BlockSize} }

// codedDecoder returns an empty rlnc.Decoder for gen, reusing a released
// one when the shape matches.
func (s *Swarm) codedDecoder(gen *generation) *rlnc.Decoder {
	if gen.blocks == s.m.K {
		s.decMu.Lock()
		if n := len(s.decoders); n > 0 {
			d := s.decoders[n-1]
			s.decoders = s.decoders[:n-1]
			s.decMu.Unlock()
			d.Reset()
			return d
		}
		s.decMu.Unlock()
	}
	var rows []byte
	if gen.blocks == s.m.K {
		rows = s.bufs.get()
	}
	d, err := rlnc.NewDecoderIn(s.params(), gen.blocks, rows)
	if err != nil {
		panic(err) // parameters were validated by the manifest
	}
	return d
}

// putCoded keeps a coded decoder of K blocks for another generation, as
// many as may be active at once, and gives the rows of any other back to
// the slab (a complete one's) or to the collector.
func (s *Swarm) putCoded(d *rlnc.Decoder) {
	if d.Blocks() != s.m.K {
		return
	}
	s.decMu.Lock()
	kept := len(s.decoders) < 2*max(1, s.cfg.Slots)
	if kept {
		s.decoders = append(s.decoders, d)
	}
	s.decMu.Unlock()
	if !kept && d.Complete() {
		s.bufs.put(d.Data())
	}
}

// blockSpan returns the real bytes of source block j of gen: [off, end)
// from the generation's start (the last block of the content may be short,
// and is zero-padded to B on the wire).
func (s *Swarm) blockSpan(gen *generation, j int) (off, end int) {
	off = min(j*s.m.BlockSize, gen.size)
	return off, min(off+s.m.BlockSize, gen.size)
}

// storedBlock reads source block j of gen from storage into payload,
// zero-padded to B.
func (s *Swarm) storedBlock(gen *generation, j int, payload []byte) error {
	off, end := s.blockSpan(gen, j)
	if err := s.store.readAt(payload[:end-off], gen.off+int64(off)); err != nil {
		return err
	}
	clear(payload[end-off:])
	return nil
}

// combine writes the block with coefficient vector v of a whole
// generation whose real bytes are data.
func (s *Swarm) combine(data, v, payload []byte) error {
	enc, err := rlnc.NewEncoder(s.params(), data, s.encRand)
	if err != nil {
		return err
	}
	return enc.Combine(v, payload)
}

// deriveKey derives a neighbour's checksum key from the origin's master
// secret, the content and the neighbour's identity.
func deriveKey(master []byte, content manifest.ID, peer identity.ID) [32]byte {
	return lincheck.DeriveKey(master, append(content[:], peer[:]...))
}

// sourceSums computes the checksums of a generation's source blocks under
// chk's key; data holds the generation's real bytes.
func (s *Swarm) sourceSums(chk *lincheck.Checker, gen int, data []byte) ([]byte, error) {
	chk.SetGeneration(uint64(gen))
	out := make([]byte, s.gens[gen].blocks*s.checks)
	if err := chk.SourceSums(data, out); err != nil {
		return nil, err
	}
	return out, nil
}

// checker verifies blocks of one generation; safe for concurrent use.
type checker struct {
	mu sync.Mutex
	c  *lincheck.Checker
}

func (s *Swarm) newChecker(key [32]byte, checks int, gen uint32) (*checker, error) {
	c, err := lincheck.NewChecker(key, s.params(), checks, uint64(gen))
	if err != nil {
		return nil, err
	}
	return &checker{c: c}, nil
}

func (c *checker) verify(coeffs, payload, sums []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.c.Verify(coeffs, payload, sums)
}

// releaseDecoder lets go of gen's decoder once gen is complete. Caller
// holds gen.mu.
func (s *Swarm) releaseDecoder(gen *generation) {
	if gen.dec != nil {
		gen.dec.release()
	}
	gen.dec = nil
}
