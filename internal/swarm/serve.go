package swarm

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"avalanche/internal/identity"
	"avalanche/internal/lincheck"
	"avalanche/internal/rlnc"
	"avalanche/internal/wire"
)

// produce writes into payload the block a neighbour wanted. A whole
// generation is combined from its data; a partial one from the decoder's
// rows (the vector must lie in their span). A seed that already sent a
// generation SeedCap times its size declines further non-urgent wants for
// it. When the want leaves the vector to us, produce chooses it and writes
// it into w.v: a seed sends the next source block it has not sent yet
// (fresh to the whole swarm, so innovative for any receiver, and cheap: a
// copy); others a random vector of what they hold. On failure it returns
// the reason to give the neighbour.
func (s *Swarm) produce(c *conn, w *want, payload []byte) (wire.RejectReason, bool) {
	if uint32(w.gen) == wire.AnyGen {
		return s.produceFresh(c, w, payload)
	}
	gen := s.gens[w.gen]
	if len(w.v) != gen.blocks {
		return wire.RejectNotHeld, false
	}
	if !gen.complete.Load() {
		gen.mu.Lock()
		defer gen.mu.Unlock()
		if gen.dec == nil {
			return wire.RejectNotHeld, false
		}
		if w.any && gen.dec.spanVector(s.rngFor(w), w.v) != nil {
			return wire.RejectNotHeld, false
		}
		if err := gen.dec.combine(w.v, payload); err != nil {
			if errors.Is(err, ErrStorage) {
				s.log.Warn("cannot serve a block", "gen", w.gen, "err", err)
			}
			return wire.RejectNotHeld, false
		}
		return 0, true
	}
	// Past the cap, serve only urgent wants, and only once every generation
	// has been sent in full and delivered: until then the dimensions sent
	// are still on their way through the swarm, and a seed that keeps to
	// one copy must have one of every generation out, not in its socket
	// buffers, before it spends anything on a second.
	capped := s.cfg.SeedCap > 0
	if capped && float64(gen.sent.Load()) >= s.cfg.SeedCap*float64(gen.blocks) &&
		(!w.urgent || !s.firstCopyOut() || !s.urgentTurn(gen, c)) {
		return wire.RejectCapped, false
	}
	src := -1 // the source block to send as is, if any
	switch {
	case w.any && capped:
		if src = s.nextSource(gen, w.v); src < 0 {
			rlnc.RandomCoefficients(s.rngFor(w), w.v)
		}
	case w.any:
		rlnc.RandomCoefficients(s.rngFor(w), w.v)
	case capped && !s.freshVector(gen, w.v):
		return wire.RejectRetry, false
	}
	if i, ok := rlnc.Unit(w.v); ok {
		src = i
	}
	var err error
	if src >= 0 {
		// A source block as is: read it, nothing to compute.
		err = s.sourceBlock(gen, src, payload)
	} else {
		data, release, gerr := s.cache.get(w.gen)
		if gerr != nil {
			s.log.Warn("cannot read generation", "gen", w.gen, "err", gerr)
			return wire.RejectNotHeld, false
		}
		err = s.combine(data[:gen.size], w.v, payload)
		release()
	}
	if err != nil {
		s.log.Error("encode failed", "gen", w.gen, "err", err)
		return wire.RejectNotHeld, false
	}
	gen.sent.Add(1)
	return 0, true
}

// produceFresh answers a Want of any generation: the next source block,
// in the content's order, that this seed has sent to no one and whose
// generation the neighbour does not hold. w.gen and w.v are set to the
// block's generation and unit vector. Only a source with a seed cap (the
// origin) serves such Wants; once it has sent every source block it
// declines them (capped).
func (s *Swarm) produceFresh(c *conn, w *want, payload []byte) (wire.RejectReason, bool) {
	if s.cfg.SeedCap <= 0 || !s.isComplete() {
		return wire.RejectNotHeld, false
	}
	s.mu.Lock()
	remote := slices.Clone(c.remote) // onHave updates it in place
	s.mu.Unlock()
	holds := func(g int) bool { return remote != nil && int(remote[g]) == s.gens[g].blocks }
	if g, i, ok := s.takeResend(holds); ok {
		v := w.rv[:s.gens[g].blocks]
		clear(v)
		v[i] = 1
		s.stats.resent.Add(1)
		return s.sendFresh(c, w, g, i, v, payload)
	}
	for g := int(s.freshLow.Load()); g < len(s.gens); g++ {
		gen := s.gens[g]
		if gen.nextSrc.Load() >= int64(gen.blocks) {
			if int(s.freshLow.Load()) == g {
				s.freshLow.CompareAndSwap(int32(g), int32(g+1))
			}
			continue
		}
		if holds(g) {
			continue // it holds this one (resumed): leave it to others
		}
		v := w.rv[:gen.blocks]
		i := s.nextSource(gen, v)
		if i < 0 {
			continue
		}
		return s.sendFresh(c, w, g, i, v, payload)
	}
	return wire.RejectCapped, false
}

// sendFresh reads source block i of g into payload as the answer to w, a
// Want of any generation from c, whose vector becomes v (the unit e_i).
func (s *Swarm) sendFresh(c *conn, w *want, g, i int, v, payload []byte) (wire.RejectReason, bool) {
	gen := s.gens[g]
	if err := s.sourceBlock(gen, i, payload); err != nil {
		return wire.RejectNotHeld, false
	}
	gen.sent.Add(1)
	c.noteFresh(g, i)
	w.gen, w.v = g, v
	return 0, true
}

// A fresh block (a source block this seed had sent to no one) is, for a
// while, held by its receiver alone. When the receiver leaves before its
// neighbours took a copy, that dimension is gone from the swarm, and only
// the seed can send it again; left until the seed had sent its whole first
// copy (see firstCopyOut), such losses made the last seconds of the swarm
// lab's churn scenario, where a quarter of the downloaders leave halfway.
// So a seed remembers what it sent each downloader in the last
// resendWindow, and when that downloader leaves, it sends those blocks
// again, first, to whoever asks for fresh blocks next. Some of them will
// have been passed on already: that costs the seed a little more than one
// copy (in the lab, under 3% of the file), against seconds of stall.

// resendWindow is how long a fresh block counts as possibly held by its
// receiver alone.
const resendWindow = 2 * time.Second

// freshSent is a fresh block sent to a neighbour, and when.
type freshSent struct {
	gen, block int
	at         time.Time
}

// noteFresh records that fresh block i of g was sent to c.
func (c *conn) noteFresh(g, i int) {
	now := time.Now()
	c.qmu.Lock()
	n := 0
	for n < len(c.fresh) && now.Sub(c.fresh[n].at) > resendWindow {
		n++
	}
	c.fresh = append(c.fresh[n:], freshSent{gen: g, block: i, at: now})
	c.qmu.Unlock()
}

// lostWith queues for sending again the fresh blocks sent to c, which is
// leaving, in the last resendWindow, of generations c did not hold whole.
// Caller holds s.mu.
func (s *Swarm) lostWith(c *conn) {
	c.qmu.Lock()
	sent := c.fresh
	c.fresh = nil
	c.qmu.Unlock()
	now := time.Now()
	s.resendMu.Lock()
	defer s.resendMu.Unlock()
	for _, f := range sent {
		if s.resendQueued >= s.resendBudget() {
			return
		}
		if now.Sub(f.at) <= resendWindow && !c.holds(f.gen) {
			s.resend = append(s.resend, [2]int{f.gen, f.block})
			s.resendQueued++
		}
	}
}

// resendBudget bounds the blocks a seed sends again over its life: 5% of
// the content, so that neighbours that come and go cannot make it send
// much more than a copy.
func (s *Swarm) resendBudget() int { return len(s.gens)*s.m.K/20 + 1 }

// takeResend returns the oldest block queued to be sent again whose
// generation the asker does not hold (per holds).
func (s *Swarm) takeResend(holds func(g int) bool) (g, i int, ok bool) {
	s.resendMu.Lock()
	defer s.resendMu.Unlock()
	for k, r := range s.resend {
		if !holds(r[0]) {
			s.resend = append(s.resend[:k], s.resend[k+1:]...)
			return r[0], r[1], true
		}
	}
	return 0, 0, false
}

// firstCopyOut reports whether a seed has sent every generation in full and
// its neighbours have acknowledged all it sent. Once true, it stays true.
func (s *Swarm) firstCopyOut() bool {
	if s.firstOut.Load() {
		return true
	}
	if int(s.seeded.Load()) < len(s.gens) {
		return false
	}
	if st := s.Stats(); st.Delivered < st.Sent {
		return false
	}
	s.firstOut.Store(true)
	return true
}

// urgentTurn reports whether c may have urgent blocks of gen past the cap
// now. Every downloader stuck on a generation whose missing dimensions left
// with other peers asks at about the same time, and each needs the same
// few dimensions: one of them gets them from the seed, as random
// combinations, and passes them on, recoded, to the others, who are turned
// away for urgentHold. Serving all of them would cost the seed a copy of
// those dimensions per downloader.
func (s *Swarm) urgentTurn(gen *generation, c *conn) bool {
	gen.mu.Lock()
	defer gen.mu.Unlock()
	now := time.Now()
	if gen.urgentTo != c && now.Sub(gen.urgentAt) < urgentHold {
		return false
	}
	gen.urgentTo, gen.urgentAt = c, now
	return true
}

// urgentHold is how long a seed serves urgent wants of a generation past
// its cap to one downloader only.
const urgentHold = time.Second

// sourceBlock writes source block i of whole generation gen into payload,
// zero-padded. Where storage is read with raw system calls it reads just
// that block; elsewhere from the generation cache: neighbours ask a holder
// for a stream of blocks of the same few generations, and one read of the
// whole generation costs one system call where block-sized reads cost one
// per block (each of them waking the Go runtime's sysmon thread: with
// thirty peers on two cores, that polling took a tenth of the CPU).
func (s *Swarm) sourceBlock(gen *generation, i int, payload []byte) error {
	if s.store.rawOK() {
		err := s.storedBlock(gen, i, payload)
		if err != nil {
			s.log.Warn("cannot read block", "gen", gen.index, "block", i, "err", err)
		}
		return err
	}
	data, release, err := s.cache.get(gen.index)
	if err != nil {
		s.log.Warn("cannot read block", "gen", gen.index, "block", i, "err", err)
		return err
	}
	bs := s.m.BlockSize
	copy(payload, data[i*bs:(i+1)*bs])
	release()
	return nil
}

// nextSource picks, for a seed, the next source block of gen it has not
// sent, writes its unit vector into v and returns its index, or -1 once
// every source block is spanned by what was sent.
func (s *Swarm) nextSource(gen *generation, v []byte) int {
	for {
		i := int(gen.nextSrc.Add(1) - 1)
		if i >= gen.blocks {
			return -1
		}
		clear(v)
		v[i] = 1
		if s.freshVector(gen, v) {
			return i
		}
	}
}

// rngFor returns a generator for a writer goroutine's want. Writers each
// own one; see conn.writeLoop.
func (s *Swarm) rngFor(w *want) *rand.Rand { return w.rng }

// freshVector reports whether a seed should send the block with vector v
// of whole generation gen: until the seed has sent a full generation's
// worth of independent vectors, only vectors outside the span of those
// already sent are, so that one copy's worth of blocks always carries the
// whole generation (receivers choose vectors at random and would otherwise
// repeat a dimension once in about 256 generations). Afterwards every
// vector is.
func (s *Swarm) freshVector(gen *generation, v []byte) bool {
	gen.mu.Lock()
	defer gen.mu.Unlock()
	if gen.seedDone {
		return true
	}
	if gen.seedBasis == nil {
		gen.seedBasis = rlnc.NewBasis(gen.blocks)
	}
	if !gen.seedBasis.Add(v) {
		return false
	}
	if gen.seedBasis.Rank() == gen.blocks {
		gen.seedBasis, gen.seedDone = nil, true
		s.seeded.Add(1)
	}
	return true
}

// checkKey is a downloader's checksum key as issued by the origin.
type checkKey struct {
	key    [32]byte
	checks int
}

// issueKey derives the checksum key of a neighbour (origin only).
func (s *Swarm) issueKey(peer identity.ID) [32]byte {
	return deriveKey(s.cfg.MasterKey, s.id, peer)
}

// queueSums queues a downloader's request for checksums. One goroutine per
// link answers them in order, so that the first generations' checksums,
// which the downloader waits for before it can use any block, are not
// computed behind the later ones, and a downloader cannot make the origin
// compute for it in more goroutines than one.
func (c *conn) queueSums(first, n int) error {
	c.sumsMu.Lock()
	defer c.sumsMu.Unlock()
	if len(c.sumsQ) >= maxSumsRequests {
		return fmt.Errorf("%w: more than %d checksum requests queued", errProtocol, maxSumsRequests)
	}
	c.sumsQ = append(c.sumsQ, [2]int{first, n})
	if !c.sumsBusy {
		c.sumsBusy = true
		go c.answerSums()
	}
	return nil
}

// answerSums answers queued checksum requests until none is left.
func (c *conn) answerSums() {
	for {
		c.sumsMu.Lock()
		if len(c.sumsQ) == 0 {
			c.sumsBusy = false
			c.sumsMu.Unlock()
			return
		}
		r := c.sumsQ[0]
		c.sumsQ = c.sumsQ[1:]
		c.sumsMu.Unlock()
		c.serveSums(r[0], r[1])
	}
}

// serveSums computes and sends the checksums of generations
// [first, first+n) under the neighbour's key (origin only). The link's
// checker is made once and set to each generation in turn: making one
// allocates its tables, which for sixteen downloaders starting at once was
// a good part of the origin's work.
func (c *conn) serveSums(first, n int) {
	s := c.s
	if c.sumsChk == nil {
		chk, err := lincheck.NewChecker(s.issueKey(c.peer), s.params(), s.checks, 0)
		if err != nil {
			s.log.Error("checksums failed", "err", err)
			return
		}
		c.sumsChk = chk
	}
	for g := first; g < first+n; g++ {
		select {
		case <-c.closed:
			return
		default:
		}
		data, release, err := s.cache.get(g)
		if err != nil {
			s.log.Warn("cannot compute checksums", "gen", g, "err", err)
			return
		}
		sums, err := s.sourceSums(c.sumsChk, g, data[:s.gens[g].size])
		release()
		if err != nil {
			s.log.Error("checksums failed", "gen", g, "err", err)
			return
		}
		c.enqueue(wire.Append(nil, wire.Sums{Gen: uint32(g), Sums: sums}))
	}
}

// sumsChunk is how many consecutive generations one sums-request covers.
const sumsChunk = 8

// setKey installs our checksum key and starts asking the origin for
// checksums.
func (s *Swarm) setKey(key [32]byte, checks int, from *conn) {
	s.keyMu.Lock()
	if s.key != nil && s.key.key != key {
		s.keyMu.Unlock()
		s.log.Warn("origin sent a different checksum key; ignoring it", "peer", from.peer.Short())
		return
	}
	s.key = &checkKey{key: key, checks: checks}
	s.keyMu.Unlock()
	s.mu.Lock()
	s.sumsFrom = from
	// A new link to the origin: whatever was asked of an earlier one and
	// never came is asked again.
	for g := range s.sumsAsked {
		if !s.gens[g].hasSums.Load() {
			s.sumsAsked[g] = false
		}
	}
	s.sumsNext = 0
	s.requestSums()
	s.mu.Unlock()
}

// sumsAhead is how many generations past the last one in play a
// downloader has checksums asked for: at about three generations a second
// per seed (2 MiB at 50 Mbit/s), they come well before a neighbour has
// blocks of those generations to offer.
const sumsAhead = 4

// requestSums asks the origin, a chunk at a time and in order, for the
// checksums of the generations a neighbour's blocks may come from soon
// (see sumsHorizon) that we lack. Checksums asked for ahead of need cost
// the origin a pass over the generation per downloader: sixteen
// downloaders asking for 32 generations each as they started kept the
// swarm lab's origin busy with little else for its first second, when
// every process on the host was starting and nobody had blocks to trade
// yet. Caller holds s.mu.
func (s *Swarm) requestSums() {
	c := s.sumsFrom
	if c == nil || s.cfg.Out == nil {
		return
	}
	if _, ok := s.conns[c]; !ok || s.sumsNext*sumsChunk >= len(s.gens) {
		return // every chunk asked for: nothing to work out on this pass
	}
	last := min(s.sumsHorizon()+sumsAhead, len(s.gens)-1)
	for ; s.sumsNext*sumsChunk <= last; s.sumsNext++ {
		first := s.sumsNext * sumsChunk
		end := min(first+sumsChunk, len(s.gens))
		lo, hi := -1, -1
		for g := first; g < end; g++ {
			if !s.sumsAsked[g] && !s.gens[g].complete.Load() {
				if lo < 0 {
					lo = g
				}
				hi = g
			}
			s.sumsAsked[g] = true
		}
		if lo >= 0 {
			c.enqueue(wire.Append(nil, wire.SumsReq{First: uint32(lo), N: uint32(hi - lo + 1)}))
		}
	}
}

// sumsHorizon returns the last generation whose blocks may need our
// checksums soon: one we decode, one a partial neighbour (not an origin
// or edge, whose blocks are not checked) holds part of, or, with a
// finished peer among the neighbours, the last of the generations we
// would open from it next (in order; see choose). -1 when there is none.
// Caller holds s.mu.
func (s *Swarm) sumsHorizon() int {
	h := -1
	for _, g := range s.active {
		h = max(h, g)
	}
	fromFull := false
	for c := range s.conns {
		if c.remote == nil || c.vouched() {
			continue
		}
		if c.remoteDone {
			fromFull = true
			continue
		}
		h = max(h, c.top)
	}
	if fromFull {
		open := 2 * s.cfg.Slots
		for g, gen := range s.gens {
			if gen.complete.Load() {
				continue
			}
			h = max(h, g)
			if open--; open == 0 {
				break
			}
		}
	}
	return h
}

// setSums installs the checksums of generation g.
func (s *Swarm) setSums(g int, sums []byte) error {
	s.keyMu.Lock()
	key := s.key
	s.keyMu.Unlock()
	gen := s.gens[g]
	if key == nil || len(sums) != gen.blocks*key.checks {
		return fmt.Errorf("%w: checksums of generation %d do not fit the key", errProtocol, g)
	}
	chk, err := s.newChecker(key.key, key.checks, uint32(g))
	if err != nil {
		return err
	}
	gen.mu.Lock()
	if gen.sums == nil {
		gen.sums = append([]byte(nil), sums...)
		gen.checker = chk
		gen.hasSums.Store(true)
	}
	gen.mu.Unlock()
	s.kick()
	return nil
}

// verify checks a coded block against our checksums of generation g.
func (s *Swarm) verify(g int, coeffs, payload, sums []byte) bool {
	gen := s.gens[g]
	gen.mu.Lock()
	chk := gen.checker
	gen.mu.Unlock()
	return chk != nil && chk.verify(coeffs, payload, sums)
}
