package swarm

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"avalanche/internal/identity"
	"avalanche/internal/lincheck"
	"avalanche/internal/manifest"
	"avalanche/internal/rlnc"
	"avalanche/internal/wire"
)

var (
	errBanned   = errors.New("banned")
	errFull     = errors.New("swarm full")
	errDup      = errors.New("already connected")
	errProtocol = errors.New("protocol violation")
	errPolluted = errors.New("sent a block that failed verification")
)

// Limits on what a neighbour may ask of us.
const (
	maxQueuedWants   = 1024 // wants queued and not yet served
	maxOfferRequests = 256  // requests for offers not yet answered
	maxUnsolicited   = 64   // blocks we did not (or no longer) want
	maxSumsRequests  = 64   // checksum requests queued and not yet answered
)

// want is a block a neighbour asked us for.
type want struct {
	gen    int
	urgent bool
	any    bool // the vector is ours to choose (then written into v)
	v      []byte
	rng    *rand.Rand // the writer's generator, for vectors we choose
	rv     []byte     // the writer's buffer, for the vector of a block of any generation
}

// conn is one authenticated link with a neighbour in one swarm.
type conn struct {
	s        *Swarm
	nc       *tls.Conn
	peer     identity.ID
	addr     netip.AddrPort
	role     wire.Role // the neighbour's role
	outbound bool
	started  time.Time

	// Receiver side, guarded by s.mu.
	remote       []byte        // the neighbour's rank per generation; nil before State
	remoteDone   bool          // the neighbour holds everything
	top          int           // the last generation it holds part of; -1 for none
	useless      []bool        // its offers of g held nothing new, since its last Have
	capped       []bool        // it is a seed that declined g as sent often enough
	noUnits      bool          // it declined a unit vector as already sent: ask it for random ones
	offerReqs    map[int][]int // per generation, counts of Requests not yet answered (FIFO)
	wantsOut     int           // blocks asked of it and not yet received
	anyOut       int           // of those, asked for with Wants of any generation (the origin chooses)
	anyDone      bool          // it declined a Want of any generation: it has sent every source block
	pendingGens  map[int]int   // generations with wants outstanding to it, and how many
	depth        int
	lastBlock    time.Time
	limit        time.Duration // how long a want to it may wait (see wantLimit); 0 before its first block
	stalledUntil time.Time     // its wants timed out: ask it for nothing new before then
	unsolicited  int           // blocks nobody asked for
	wantsIn      int           // wants received (read loop only)
	cancelsIn    int           // cancels received (read loop only)
	late         map[int]int   // per generation, blocks asked for and since given up on, that may still come (or be rejected)

	// Sender side.
	qmu        sync.Mutex
	wants      []want
	offerReqs2 int // Requests being answered (limit)
	ctrl       [][]byte
	signal     chan struct{}

	// Rank changes not yet announced to this neighbour, guarded by qmu;
	// see noteHave.
	haves    map[int]uint8
	told     []uint8      // the ranks it has been told, per generation
	haveNow  bool         // announce them with the next write, even alone
	drained  map[int]bool // generations it asked us for more of than we could offer
	lastHave time.Time
	fresh    []freshSent // fresh blocks sent to it lately (seeds; see lostWith)

	// Checksum requests (origin), answered in order by one goroutine.
	sumsMu   sync.Mutex
	sumsQ    [][2]int // first generation, count
	sumsBusy bool
	sumsChk  *lincheck.Checker // this neighbour's key, used by the one goroutine answering sums

	recvBytes atomic.Int64
	sentBytes atomic.Int64
	buffered  atomic.Int64 // bytes in the writer's buffer, not yet handed to the kernel
	recvRate  rateMeter
	sendRate  rateMeter

	ctx       context.Context // ends when the connection closes
	cancel    context.CancelFunc
	closeOnce sync.Once
	closed    chan struct{}
	bye       []byte // goodbye frame for the writer to send last
}

// hello returns this node's hello for s.
func (s *Swarm) hello() wire.Hello {
	return wire.Hello{Version: wire.Version, Role: s.node.cfg.Role, Content: s.id, Port: s.node.Port(),
		Complete: s.isComplete(), Behind: s.farBehind.Load()}
}

// admit registers a handshaken connection. For inbound connections it
// also sends our hello.
func (s *Swarm) admit(tc *tls.Conn, peer identity.ID, addr netip.AddrPort, h wire.Hello, outbound bool) (*conn, error) {
	c := &conn{
		s: s, nc: tc, peer: peer, addr: addr, role: h.Role, outbound: outbound,
		started: time.Now(), depth: s.cfg.Depth,
		offerReqs: map[int][]int{}, pendingGens: map[int]int{}, late: map[int]int{},
		signal: make(chan struct{}, 1), closed: make(chan struct{}),
		remoteDone: h.Complete,
	}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if s.banned[peer] {
		return nil, errBanned
	}
	if c.role != wire.RolePeer && s.trusted[peer] != c.role && s.cfg.MasterKey == nil {
		s.log.Debug("neighbour claims a role it was not introduced with; treating it as a peer", "peer", peer.Short(), "role", c.role)
		c.role = wire.RolePeer
	}
	if old := s.byID[peer]; old != nil {
		// Simultaneous dials: keep the connection dialed by the smaller ID.
		keepNew := (outbound && lessID(s.node.id, peer)) || (!outbound && lessID(peer, s.node.id))
		if !keepNew || old.outbound == outbound {
			return nil, errDup
		}
		go old.close(wire.ByeNormal, "duplicate connection")
		s.forget(old)
	}
	// MaxPeers counts links to partial neighbours; as many again may go to
	// peers holding everything (see maintain), and seeds are always let in.
	limit := s.dialLimit(s.farBehind.Load())
	if !outbound {
		limit = s.dialLimit(h.Behind) + s.cfg.MaxPeers/2 // room for newcomers to find us
	}
	n := s.partialLinks()
	if h.Complete {
		n, limit = len(s.conns), limit+s.cfg.MaxPeers
	}
	if n >= limit && h.Role == wire.RolePeer {
		return nil, errFull
	}
	if s.isComplete() && h.Complete {
		return nil, errors.New("both complete")
	}
	if !outbound {
		if _, err := tc.Write(wire.Append(nil, s.hello())); err != nil {
			return nil, err
		}
	}
	s.conns[c] = struct{}{}
	s.byID[peer] = c
	s.node.gate.add(c)
	// Greet: our ranks, and a checksum key if we issue them.
	ranks := s.ranks()
	c.told = append([]uint8(nil), ranks...)
	c.ctrl = append(c.ctrl, wire.Append(nil, wire.State{Ranks: ranks}))
	if s.cfg.MasterKey != nil && h.Role != wire.RoleOrigin {
		c.ctrl = append(c.ctrl, wire.Append(nil, wire.Key{Key: s.issueKey(peer), Checks: uint8(s.checks)}))
	}
	s.log.Debug("connected", "peer", peer.Short(), "addr", addr, "role", h.Role, "outbound", outbound)
	return c, nil
}

func lessID(a, b identity.ID) bool { return bytes.Compare(a[:], b[:]) < 0 }

// partialLinks counts the links to neighbours that do not hold everything
// (or have not said yet). Caller holds s.mu.
func (s *Swarm) partialLinks() int {
	n := 0
	for c := range s.conns {
		if !c.remoteDone {
			n++
		}
	}
	return n
}

// ranks returns our rank per generation.
func (s *Swarm) ranks() []byte {
	r := make([]byte, len(s.gens))
	for i, g := range s.gens {
		r[i] = byte(g.rank.Load())
	}
	return r
}

func (c *conn) stat() PeerStat {
	return PeerStat{
		ID: c.peer, Addr: c.addr.String(), Role: c.role, Outbound: c.outbound, Complete: c.remoteDone,
		RecvRate: c.recvRate.rate(), SendRate: c.sendRate.rate(),
		Received: c.recvBytes.Load(), Sent: c.sentBytes.Load(),
	}
}

// vouched reports whether the neighbour is infrastructure (the origin or
// an edge) whose key was introduced with that role (see admit): its link
// is authenticated by that key, and what it sends comes from content
// verified against the signed manifest, so its blocks are used without
// checksums. Peers' blocks are always verified.
func (c *conn) vouched() bool { return c.role != wire.RolePeer }

// holds reports whether the neighbour holds all of generation g. Caller
// holds s.mu.
func (c *conn) holds(g int) bool {
	return c.remote != nil && int(c.remote[g]) == c.s.gens[g].blocks
}

// run drives the connection until it closes.
func (c *conn) run() {
	go c.writeLoop()
	err := c.readLoop()
	reason, code := "", wire.ByeNormal
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	case errors.Is(err, errPolluted):
		code, reason = wire.ByePollution, "block failed verification"
	case errors.Is(err, errProtocol), errors.Is(err, wire.ErrMalformed), errors.Is(err, wire.ErrTooLarge), errors.Is(err, wire.ErrUnknown):
		code, reason = wire.ByeProtocol, err.Error()
		c.s.log.Warn("closing connection", "peer", c.peer.Short(), "addr", c.addr, "reason", reason)
	default:
		c.s.log.Debug("connection ended", "peer", c.peer.Short(), "err", err)
	}
	c.close(code, reason)
}

// close ends the connection once. The goodbye, if any, is written by the
// writer goroutine at a frame boundary, which then closes the socket; a
// writer stuck on a peer that does not read gives up after two seconds.
func (c *conn) close(code wire.ByeCode, reason string) {
	c.closeOnce.Do(func() {
		if reason != "" || code != wire.ByeNormal {
			c.bye = wire.Append(nil, wire.Bye{Code: code, Reason: truncate(reason, wire.MaxReason)})
		}
		c.nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
		close(c.closed)
		c.cancel()
		time.AfterFunc(3*time.Second, func() { c.nc.Close() })
		c.s.mu.Lock()
		c.s.forget(c)
		c.s.mu.Unlock()
		c.s.kick()
	})
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// forget removes a connection and everything asked of it. Caller holds s.mu.
func (s *Swarm) forget(c *conn) {
	if _, ok := s.conns[c]; !ok {
		return
	}
	delete(s.conns, c)
	s.node.gate.remove(c)
	if s.cfg.SeedCap > 0 && !c.remoteDone {
		s.lostWith(c)
	}
	if s.byID[c.peer] == c {
		delete(s.byID, c.peer)
	}
	if c.remote != nil {
		for g, r := range c.remote {
			s.avail[g] -= int32(r)
		}
	}
	for g, reqs := range c.offerReqs {
		for _, n := range reqs {
			s.outstanding[g] -= int32(n)
		}
	}
	c.offerReqs = map[int][]int{}
	for g := range c.pendingGens {
		if len(s.dropWants(c, g, nil, false)) > 0 {
			s.reconsider(g)
		}
	}
	c.pendingGens = map[int]int{}
	c.wantsOut = 0
	c.anyOut = 0
}

// dropWants forgets the wants of g outstanding to c that drop selects (all
// if it is nil), rebuilds the generation's basis and returns those it
// dropped; late says their blocks may still arrive. Caller holds s.mu.
func (s *Swarm) dropWants(c *conn, g int, drop func(pendingWant) bool, late bool) []pendingWant {
	gen := s.gens[g]
	gen.mu.Lock()
	var dropped []pendingWant
	kept := gen.pending[:0]
	for _, p := range gen.pending {
		if p.c == c && (drop == nil || drop(p)) {
			dropped = append(dropped, p)
			continue
		}
		kept = append(kept, p)
	}
	clear(gen.pending[len(kept):])
	gen.pending = kept
	gen.npending.Store(int32(len(kept)))
	if len(dropped) > 0 {
		s.rebuildBasis(gen)
	}
	gen.mu.Unlock()
	n := len(dropped)
	if left := c.pendingGens[g] - n; left > 0 {
		c.pendingGens[g] = left
	} else {
		delete(c.pendingGens, g)
	}
	c.wantsOut = max(0, c.wantsOut-n)
	if late && n > 0 {
		c.late[g] += n
	}
	return dropped
}

// firstN selects n wants.
func firstN(n int) func(pendingWant) bool {
	return func(pendingWant) bool {
		n--
		return n >= 0
	}
}

// cancelWant asks c to drop a given-up want of g if it has not begun to
// serve it.
func (c *conn) cancelWant(g int, p pendingWant) {
	v := p.v
	if v == nil { // the sender was to choose the vector
		v = make([]byte, c.s.gens[g].blocks)
	}
	c.enqueue(wire.Append(nil, wire.Cancel{Gen: uint32(g), Coeffs: v}))
}

// reconsider forgets which neighbours' offers of g held nothing new: they
// were judged against a span that included wants since given up (to a
// link that closed or stalled), and may hold what those wants were for.
// Caller holds s.mu.
func (s *Swarm) reconsider(g int) {
	for o := range s.conns {
		if o.useless != nil {
			o.useless[g] = false
		}
	}
}

// mootWants settles the books of wants that completion of their generation
// made moot, and asks their links to drop those not yet served; blocks
// already on the way still arrive. Caller holds s.mu.
func (s *Swarm) mootWants(g int, moot []pendingWant) {
	for _, p := range moot {
		c := p.c
		if _, ok := s.conns[c]; !ok {
			continue
		}
		c.wantsOut = max(0, c.wantsOut-1)
		if c.pendingGens[g]--; c.pendingGens[g] <= 0 {
			delete(c.pendingGens, g)
		}
		c.late[g]++
		c.cancelWant(g, p)
	}
}

// rebuildBasis recomputes the span of the decoder plus the pending wants.
// Caller holds gen.mu.
func (s *Swarm) rebuildBasis(gen *generation) {
	if gen.basis == nil {
		return
	}
	gen.basis.Reset()
	if gen.dec != nil {
		gen.dec.addRowsTo(gen.basis)
	}
	for _, p := range gen.pending {
		if p.v != nil {
			gen.basis.Add(p.v)
		}
	}
}

// enqueue queues an encoded control frame for sending.
func (c *conn) enqueue(frame []byte) {
	c.qmu.Lock()
	c.ctrl = append(c.ctrl, frame)
	c.qmu.Unlock()
	c.wakeWriter()
}

func (c *conn) wakeWriter() {
	select {
	case c.signal <- struct{}{}:
	default:
	}
}

// noteHave records that our rank of g grew to rank, to be announced to
// the neighbour with the next frame written to it anyway, or on its own
// (haveNow) when it matters at once: the first blocks of a generation it
// had heard nothing of from us, more of a generation it asked us for more
// of than we could offer, and a whole generation (then it asks us directly
// instead of for offers). Other changes wait at most haveSlow.
// It reports whether the change matters at once.
func (c *conn) noteHave(g, rank int) bool {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if g >= len(c.told) || rank <= int(c.told[g]) || rank <= int(c.haves[g]) {
		return false
	}
	if c.haves == nil {
		c.haves = map[int]uint8{}
	}
	c.haves[g] = uint8(rank)
	now := c.told[g] == 0 || rank == c.s.gens[g].blocks || c.drained[g]
	if now {
		delete(c.drained, g)
		c.haveNow = true
	}
	return now
}

// takeHaves appends the pending rank changes to frames as Have frames and
// records them as told. Caller holds qmu.
func (c *conn) takeHaves(frames [][]byte, now time.Time) [][]byte {
	if len(c.haves) == 0 {
		return frames
	}
	var b []byte
	for g, r := range c.haves {
		b = wire.Append(b, wire.Have{Gen: uint32(g), Rank: r})
		c.told[g] = r
	}
	clear(c.haves)
	c.haveNow = false
	c.lastHave = now
	return append(frames, b)
}

func (c *conn) readLoop() error {
	// Small, so that the payload of a block (larger) is read from TLS
	// straight into the frame buffer rather than copied through it.
	br := bufio.NewReaderSize(c.nc, 4<<10)
	s := c.s
	var buf []byte
	sawState := false
	for {
		body, nb, err := wire.ReadFrame(br, buf)
		buf = nb
		if err != nil {
			return err
		}
		f, err := wire.Decode(body, s.m)
		if err != nil {
			return err
		}
		switch f := f.(type) {
		case wire.Hello:
			return fmt.Errorf("%w: second hello", errProtocol)
		case wire.State:
			if sawState {
				return fmt.Errorf("%w: second state", errProtocol)
			}
			sawState = true
			c.onState(f.Ranks)
		case wire.Have:
			if !sawState {
				return fmt.Errorf("%w: have before state", errProtocol)
			}
			c.onHave(int(f.Gen), int(f.Rank))
		case wire.Request:
			if err := c.onRequest(f); err != nil {
				return err
			}
		case wire.Offer:
			if err := c.onOffer(int(f.Gen), f.Vectors); err != nil {
				return err
			}
		case wire.Want:
			if err := c.onWant(f); err != nil {
				return err
			}
		case wire.Block:
			if err := c.onBlock(f); err != nil {
				return err
			}
		case wire.Reject:
			c.onReject(int(f.Gen), int(f.Count), f.Reason)
		case wire.SumsReq:
			if s.cfg.MasterKey == nil {
				return fmt.Errorf("%w: checksums requested from a node that does not issue them", errProtocol)
			}
			if err := c.queueSums(int(f.First), int(f.N)); err != nil {
				return err
			}
		case wire.Key:
			if c.role != wire.RoleOrigin {
				return fmt.Errorf("%w: checksum key from a non-origin", errProtocol)
			}
			s.setKey(f.Key, int(f.Checks), c)
		case wire.Sums:
			if c.role != wire.RoleOrigin {
				return fmt.Errorf("%w: checksums from a non-origin", errProtocol)
			}
			if err := s.setSums(int(f.Gen), f.Sums); err != nil {
				return err
			}
		case wire.Bye:
			if f.Code != wire.ByeNormal {
				s.log.Info("neighbour closed", "peer", c.peer.Short(), "code", f.Code, "reason", f.Reason)
			}
			return io.EOF
		case wire.Keepalive:
		case wire.Cancel:
			if err := c.onCancel(int(f.Gen), f.Coeffs); err != nil {
				return err
			}
		}
	}
}

func (c *conn) onState(ranks []byte) {
	s := c.s
	s.mu.Lock()
	c.remote = append([]byte(nil), ranks...)
	c.useless = make([]bool, len(ranks))
	c.capped = make([]bool, len(ranks))
	done := true
	c.top = -1
	for g, r := range c.remote {
		s.avail[g] += int32(r)
		if int(r) < s.gens[g].blocks {
			done = false
		}
		if r > 0 {
			c.top = g
		}
	}
	c.remoteDone = done
	s.mu.Unlock()
	s.kick()
}

func (c *conn) onHave(g, rank int) {
	s := c.s
	s.mu.Lock()
	if old := int(c.remote[g]); rank > old {
		s.avail[g] += int32(rank - old)
		c.remote[g] = byte(rank)
		c.useless[g] = false
		c.top = max(c.top, g)
		if rank == s.gens[g].blocks {
			done := true
			for g2, r := range c.remote {
				if int(r) < s.gens[g2].blocks {
					done = false
					break
				}
			}
			c.remoteDone = done
		}
	}
	finished := c.remoteDone
	s.mu.Unlock()
	if finished && !s.isComplete() && s.leftFraction() >= 1.0/8 {
		// It no longer counts against MaxPeers: room to dial another.
		select {
		case s.dialWake <- struct{}{}:
		default:
		}
	}
	s.kick()
}

// onRequest answers a neighbour's request for offers: first the source
// blocks we hold as is and it does not (unit vectors, in random order: a
// copy to serve, nothing to decode), then, if we hold combinations, random
// vectors of the span we hold of g, as many as asked and our rank allows;
// or none. What we hold is all source blocks when the generation is
// complete, or decoded directly: then the units it lacks are every
// dimension we can add to its span, and a random vector of ours could only
// repeat them (in the swarm lab 73% of all offered vectors were such
// repeats).
func (c *conn) onRequest(r wire.Request) error {
	s := c.s
	g, n := int(r.Gen), int(r.Count)
	gen := s.gens[g]
	k := gen.blocks
	rng := newRand()
	theirs := func(j int) bool { return r.Units != nil && r.Units[j/8]&(1<<(j%8)) != 0 }
	var vecs []byte
	// offer offers up to m vectors: unit rows the neighbour lacks, those
	// for which first holds before the others, each group in an order that
	// starts at a random column; then vectors of the span, if span is not
	// nil.
	offer := func(m int, unit, first func(j int) bool, span func(v []byte)) {
		vecs = make([]byte, 0, m*k)
		var offered [manifest.MaxK]bool
		start := rng.IntN(k)
		for pass := 0; pass < 2; pass++ {
			for i := 0; i < k && len(vecs) < m*k; i++ {
				j := (start + i) % k
				if offered[j] || !unit(j) || theirs(j) || (pass == 0 && !first(j)) {
					continue
				}
				offered[j] = true
				vecs = vecs[:len(vecs)+k]
				vecs[len(vecs)-k+j] = 1
			}
		}
		for span != nil && len(vecs) < m*k {
			vecs = vecs[:len(vecs)+k]
			span(vecs[len(vecs)-k:])
		}
	}
	m := 0 // what we could offer at most
	if gen.complete.Load() {
		all := func(int) bool { return true }
		m = min(n, k, wire.MaxOffer)
		offer(m, all, all, nil)
	} else {
		gen.mu.Lock()
		if d := gen.dec; d != nil && d.rank() > 0 {
			var span func(v []byte)
			if !d.direct() {
				span = func(v []byte) { d.spanVector(rng, v) }
			}
			m = min(n, d.rank(), wire.MaxOffer)
			offer(m, d.unitRow, d.unique, span)
		}
		gen.mu.Unlock()
	}
	if m < n {
		// We hold less than it asked for: the neighbour may soon find us of
		// no use for g, and should hear at once when we hold more. (Not
		// when we merely hold no source block it lacks, as before offers
		// stopped being padded: our next Have tells it of a new one soon
		// enough, and announcing every change at once to all such
		// neighbours would cost a wake-up each.)
		c.qmu.Lock()
		if c.drained == nil {
			c.drained = map[int]bool{}
		}
		c.drained[g] = true
		c.qmu.Unlock()
	}
	c.enqueue(wire.Append(nil, wire.Offer{Gen: uint32(g), Vectors: vecs}))
	return nil
}

// onOffer accepts the offered vectors that are innovative with respect to
// what we hold and have asked for, up to what the generation still needs,
// and asks for their blocks.
func (c *conn) onOffer(g int, vecs []byte) error {
	s := c.s
	gen := s.gens[g]
	k := gen.blocks
	s.mu.Lock()
	reqs := c.offerReqs[g]
	if len(reqs) == 0 {
		s.mu.Unlock()
		return fmt.Errorf("%w: offer for generation %d not requested", errProtocol, g)
	}
	s.outstanding[g] -= int32(reqs[0])
	if len(reqs) == 1 {
		delete(c.offerReqs, g)
	} else {
		c.offerReqs[g] = reqs[1:]
	}
	var accepted [][]byte
	gen.mu.Lock()
	if !gen.complete.Load() && gen.basis != nil {
		now := time.Now()
		for i := 0; i+k <= len(vecs); i += k {
			if gen.blocks-int(gen.rank.Load())-len(gen.pending) <= 0 {
				break
			}
			v := vecs[i : i+k]
			if gen.basis.Add(v) {
				v = append([]byte(nil), v...)
				gen.pending = append(gen.pending, pendingWant{c: c, v: v, at: now})
				accepted = append(accepted, v)
			}
		}
		gen.npending.Store(int32(len(gen.pending)))
	}
	gen.mu.Unlock()
	if len(accepted) > 0 {
		c.wantsOut += len(accepted)
		c.pendingGens[g] += len(accepted)
	} else if c.useless != nil {
		// Nothing new, or nothing at all: a neighbour holding only source
		// blocks offers none when it holds none we lack.
		c.useless[g] = true
	}
	s.mu.Unlock()
	for _, v := range accepted {
		c.enqueue(wire.Append(nil, wire.Want{Gen: uint32(g), Coeffs: v}))
	}
	s.kick()
	return nil
}

// onWant queues a block the neighbour asked for.
func (c *conn) onWant(w wire.Want) error {
	c.qmu.Lock()
	if len(c.wants) >= maxQueuedWants {
		c.qmu.Unlock()
		return fmt.Errorf("%w: more than %d blocks wanted", errProtocol, maxQueuedWants)
	}
	c.wants = append(c.wants, want{gen: int(w.Gen), urgent: w.Urgent, any: w.Any, v: append([]byte(nil), w.Coeffs...)})
	c.qmu.Unlock()
	c.wantsIn++
	c.wakeWriter()
	return nil
}

// onCancel drops the neighbour's want of generation g for vector v if we
// have not begun to serve it, and says so; the writer sends that after any
// block it is writing now. A want being served is not dropped: its block
// is on the way. Each cancel searches the queue, so a neighbour may send
// no more of them than it sent wants.
func (c *conn) onCancel(g int, v []byte) error {
	if c.cancelsIn++; c.cancelsIn > c.wantsIn {
		return fmt.Errorf("%w: %d cancels for %d wants", errProtocol, c.cancelsIn, c.wantsIn)
	}
	c.qmu.Lock()
	i := slices.IndexFunc(c.wants, func(w want) bool { return w.gen == g && bytes.Equal(w.v, v) })
	if i >= 0 {
		c.wants = slices.Delete(c.wants, i, i+1)
	}
	c.qmu.Unlock()
	if i >= 0 {
		c.enqueue(wire.Append(nil, wire.Reject{Gen: uint32(g), Count: 1, Reason: wire.RejectCancel}))
	}
	return nil
}

// onReject forgets wants the neighbour declined.
func (c *conn) onReject(g, n int, reason wire.RejectReason) {
	s := c.s
	s.mu.Lock()
	if uint32(g) == wire.AnyGen {
		// The origin has sent every source block: from now on it is asked
		// generation by generation (and serves those only as urgent).
		k := min(n, c.anyOut)
		c.anyOut -= k
		c.wantsOut = max(0, c.wantsOut-k)
		c.anyDone = true
		s.originDone = true
		s.mu.Unlock()
		s.kick()
		return
	}
	// A sender answers in order, so a reject is for the oldest wants: those
	// given up on first (their blocks will not come now), then pending ones.
	// One that answers a Cancel is only for wants given up, and says
	// nothing of what the sender holds.
	k := min(n, c.late[g])
	if c.late[g] -= k; c.late[g] == 0 {
		delete(c.late, g)
	}
	if reason == wire.RejectCancel {
		s.mu.Unlock()
		return
	}
	if n -= k; n > 0 {
		s.dropWants(c, g, firstN(n), false)
	}
	if c.capped != nil {
		switch reason {
		case wire.RejectCapped:
			c.capped[g] = true
		case wire.RejectRetry:
			// Ask again: the scheduler draws a new vector, a random one
			// (it has sent units we lack to others already).
			c.noUnits = true
		default:
			c.useless[g] = true
		}
	}
	s.mu.Unlock()
	s.kick()
}

// onBlock handles a coded block: it must answer one of our wants; its
// payload is verified before it is decoded.
func (c *conn) onBlock(b wire.Block) error {
	s := c.s
	g := int(b.Gen)
	gen := s.gens[g]
	n := int64(len(b.Payload))
	c.recvBytes.Add(n)
	c.recvRate.add(n)
	s.stats.blocksIn.Add(1)
	if _, ok := rlnc.Unit(b.Coeffs); ok {
		s.stats.unitsIn.Add(1)
	}
	s.stats.received[sourceOf(c.role)].Add(n)
	if err := waitN(s.ctx, s.node.down, int(n)); err != nil {
		return err
	}
	defer s.kick()

	// Match it to a want and take the want off the books.
	s.mu.Lock()
	c.lastBlock = time.Now()
	c.limit = s.wantLimit(c)
	gen.mu.Lock()
	// The want with exactly this vector, else one that left the vector to
	// the sender.
	idx, anyIdx := -1, -1
	for i, p := range gen.pending {
		if p.c != c {
			continue
		}
		if p.v == nil {
			if anyIdx < 0 {
				anyIdx = i
			}
		} else if bytes.Equal(p.v, b.Coeffs) {
			idx = i
			break
		}
	}
	chosen := idx < 0 && anyIdx >= 0 // the sender chose the vector
	if chosen {
		idx = anyIdx
	}
	anyGen := idx < 0 && c.anyOut > 0 // the sender chose the generation too
	if anyGen {
		c.anyOut--
		c.wantsOut = max(0, c.wantsOut-1)
		chosen = true
		s.adjustDepth(c, c.wantsOut+len(c.offerReqs)+1 >= c.depth)
		if !gen.complete.Load() {
			s.activate(gen)
			if !s.isActive(g) {
				s.active = append(s.active, g)
			}
			if gen.progress.Load() == 0 {
				gen.progress.Store(time.Now().UnixNano())
			}
		}
	}
	extra := false
	if idx >= 0 {
		extra = gen.pending[idx].extra
		s.adjustDepth(c, c.wantsOut+len(c.offerReqs) >= c.depth)
		last := len(gen.pending) - 1
		gen.pending[idx] = gen.pending[last]
		gen.pending[last] = pendingWant{}
		gen.pending = gen.pending[:last]
		gen.npending.Store(int32(last))
		c.wantsOut = max(0, c.wantsOut-1)
		if c.pendingGens[g]--; c.pendingGens[g] <= 0 {
			delete(c.pendingGens, g)
		}
	}
	if idx < 0 && !anyGen {
		// A block we gave up waiting for (or never asked for). Use it if it
		// still brings something new: it may carry the only copy of a
		// dimension a seed sent.
		if c.late[g] > 0 {
			if c.late[g]--; c.late[g] == 0 {
				delete(c.late, g)
			}
		} else {
			c.unsolicited++
			if c.unsolicited > maxUnsolicited {
				gen.mu.Unlock()
				s.mu.Unlock()
				return fmt.Errorf("%w: %d blocks nobody asked for", errProtocol, c.unsolicited)
			}
		}
	}
	if gen.complete.Load() || gen.dec == nil || ((idx < 0 || chosen) && !gen.dec.innovative(b.Coeffs)) {
		gen.mu.Unlock()
		s.stats.wasted.Add(1)
		s.mu.Unlock()
		return nil
	}
	sums := gen.sums
	gen.mu.Unlock()
	s.mu.Unlock()

	if c.vouched() {
		// From the origin or an edge, authenticated by the key it was
		// introduced with: its blocks need no checksum.
	} else if sums == nil || !s.verify(g, b.Coeffs, b.Payload, sums) {
		s.stats.polluted.Add(1)
		if sums == nil {
			return fmt.Errorf("%w: block of generation %d before its checksums", errProtocol, g)
		}
		s.polluter(c, g)
		return errPolluted
	}

	gen.mu.Lock()
	if gen.complete.Load() || gen.dec == nil {
		gen.mu.Unlock()
		s.stats.wasted.Add(1)
		return nil
	}
	if ok, err := gen.dec.add(b.Coeffs, b.Payload, c.vouched()); err != nil {
		gen.mu.Unlock()
		s.fail(err)
		return err
	} else if !ok {
		gen.mu.Unlock()
		s.stats.nonInnovative.Add(1)
		return nil
	}
	switch {
	case idx < 0 && !anyGen, extra:
		// The row came from outside the pending set (or the basis): keep
		// the basis exact.
		s.rebuildBasis(gen)
	case chosen && gen.basis != nil:
		gen.basis.Add(b.Coeffs)
	}
	rank := gen.dec.rank()
	gen.rank.Store(int32(rank))
	gen.progress.Store(time.Now().UnixNano())
	if rank < gen.blocks {
		gen.mu.Unlock()
		s.broadcastHave(g, rank)
		return nil
	}
	// Full rank: check and store.
	data, stored, err := gen.dec.finish()
	if err == nil {
		err = s.finishGeneration(g, data, stored)
		if stored {
			s.bufs.put(data)
		}
	} else {
		s.fail(err)
	}
	if errors.Is(err, ErrStorage) {
		gen.mu.Unlock()
		return err
	}
	if err != nil {
		s.log.Warn("generation failed its manifest hash; fetching it again", "gen", g, "err", err)
		gen.dec.reset()
		gen.rank.Store(0)
		s.rebuildBasis(gen)
		gen.mu.Unlock()
		return nil
	}
	s.releaseDecoder(gen)
	gen.basis = nil
	moot := gen.pending
	gen.pending = nil
	gen.npending.Store(0)
	gen.mu.Unlock()
	s.afterComplete(g, moot)
	return nil
}

// adjustDepth sets how many blocks may be asked of c ahead of delivery as
// one arrives (full: with the pipeline full). Additive increase: a link
// that delivers with its pipeline full may be asked for one more block
// ahead, up to MaxDepth and to what it delivers in depthDelay at its
// recent rate (never below the initial Depth); above that, because its
// rate fell, one less with every block. Beyond what keeps a link busy,
// depth only queues wants at the sender, and a slow link kept the last
// blocks of a generation for seconds while faster links had nothing to do.
// Caller holds s.mu.
func (s *Swarm) adjustDepth(c *conn, full bool) {
	limit := s.cfg.MaxDepth
	if rate := c.recvRate.rate(); rate > 0 {
		limit = min(limit, max(s.cfg.Depth, int(rate*depthDelay.Seconds())/s.m.BlockSize))
	}
	switch {
	case c.depth > limit:
		c.depth--
	case full && c.depth < limit:
		c.depth++
	}
}

// broadcastHave records a rank change to announce. Announcements are
// coalesced every haveEvery and then ride along with other frames to each
// neighbour (see noteHave): a downloader's rank changes with every block,
// and a frame per change per neighbour cost a system call at both ends —
// in the swarm lab, announcements were most of all writes and reads.
func (s *Swarm) broadcastHave(g, rank int) {
	s.haveMu.Lock()
	if s.haveDirty == nil {
		s.haveDirty = map[int]int{}
	}
	if rank > s.haveDirty[g] {
		s.haveDirty[g] = rank
	}
	s.haveMu.Unlock()
}

// Announcements: rank changes are gathered every haveEvery; those that do
// not matter at once wait for another frame to the neighbour, or haveSlow.
const (
	haveEvery = 25 * time.Millisecond
	haveSlow  = 100 * time.Millisecond
)

// flushHaves hands the rank changes recorded since the last call to every
// neighbour that may want them (not one that holds the generation), and
// wakes the writers of those that should hear now.
func (s *Swarm) flushHaves() {
	s.haveMu.Lock()
	dirty := s.haveDirty
	s.haveDirty = nil
	s.haveMu.Unlock()
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.remoteDone {
			continue
		}
		for g, r := range dirty {
			if !c.holds(g) {
				c.noteHave(g, r)
			}
		}
		c.qmu.Lock()
		wake := len(c.haves) > 0 && (c.haveNow || now.Sub(c.lastHave) >= haveSlow)
		if wake {
			c.haveNow = true
		}
		c.qmu.Unlock()
		if wake {
			c.wakeWriter()
		}
	}
}

// polluter bans a neighbour that sent a bad block; the caller closes the
// connection.
func (s *Swarm) polluter(c *conn, g int) {
	s.log.Warn("block failed verification: banning neighbour", "peer", c.peer.Short(), "addr", c.addr, "gen", g)
	s.mu.Lock()
	s.banned[c.peer] = true
	delete(s.candidates, c.addr.String())
	s.mu.Unlock()
	if s.cfg.OnPolluter != nil {
		go s.cfg.OnPolluter(c.peer, c.addr)
	}
}

// writeLoop sends control frames first, then the blocks wanted, in order.
// It owns every write to the socket, and closes it.
func (c *conn) writeLoop() {
	s := c.s
	bw := bufio.NewWriterSize(c.nc, 64<<10)
	defer c.nc.Close()
	// The socket gathers the TLS records of everything written between
	// two flushes into one system call (see sockConn); it is not gathering
	// while the writer waits, so that what TLS writes by itself then (an
	// alert, a key update) leaves at once.
	g, _ := c.nc.NetConn().(gatherer)
	gather := func() {
		if g != nil {
			g.Gather()
		}
	}
	flush := func() error {
		err := bw.Flush()
		if g != nil {
			if ferr := g.Flush(); err == nil {
				err = ferr
			}
		}
		return err
	}
	bs := s.m.BlockSize
	// A block frame is written from one buffer: header and coefficients
	// right-aligned before the payload, which produce fills in place. TLS
	// encrypts it from there, without a copy into the buffered writer.
	frame := make([]byte, wire.BlockHeaderSize+s.m.K+bs)
	payload := frame[wire.BlockHeaderSize+s.m.K:]
	anyVec := make([]byte, s.m.K)
	rng := newRand()
	keepalive := time.NewTimer(30 * time.Second)
	defer keepalive.Stop()
	for {
		select {
		case <-c.closed:
			if c.bye != nil {
				bw.Write(c.bye)
				flush()
			}
			return
		default:
		}
		gather()
		c.qmu.Lock()
		ctrl := c.ctrl
		c.ctrl = nil
		var w want
		haveWant := len(c.wants) > 0
		if haveWant {
			w = c.wants[0]
			c.wants[0] = want{}
			c.wants = c.wants[1:]
		}
		if haveWant || len(ctrl) > 0 || c.haveNow {
			ctrl = c.takeHaves(ctrl, time.Now())
		}
		c.qmu.Unlock()
		for _, f := range ctrl {
			if _, err := bw.Write(f); err != nil {
				c.close(wire.ByeNormal, "")
				return
			}
		}
		if !haveWant {
			if err := flush(); err != nil {
				c.close(wire.ByeNormal, "")
				return
			}
			c.buffered.Store(0)
			select {
			case <-c.closed:
			case <-c.signal:
			case <-keepalive.C:
				c.enqueue(wire.Append(nil, wire.Keepalive{}))
			}
			keepalive.Reset(30 * time.Second)
			continue
		}
		w.rng, w.rv = rng, anyVec
		if reason, ok := s.produce(c, &w, payload); !ok {
			c.enqueue(wire.Append(nil, wire.Reject{Gen: uint32(w.gen), Count: 1, Reason: reason}))
			continue
		}
		// Flush what is buffered before waiting for upload tokens, so that
		// control frames are not held back by the rate limiter.
		if s.node.up != nil && bw.Buffered() > 0 {
			if err := flush(); err != nil {
				c.close(wire.ByeNormal, "")
				return
			}
			c.buffered.Store(0)
		}
		if !s.node.gate.ready(bs) {
			// The uplink's queue is full: let what is buffered go first.
			if bw.Buffered() > 0 {
				if err := flush(); err != nil {
					c.close(wire.ByeNormal, "")
					return
				}
				c.buffered.Store(0)
			}
			if err := s.node.gate.wait(c.ctx, bs); err != nil {
				continue // closing
			}
		}
		if err := waitN(c.ctx, s.node.up, bs); err != nil {
			continue // closing
		}
		gather()
		start := s.m.K - len(w.v)
		if i, ok := rlnc.Unit(w.v); ok {
			// A source block as is: its index instead of the vector.
			start = wire.BlockHeaderSize + s.m.K - wire.SourceHeaderSize
			wire.SourceHeader(frame[start:start], uint32(w.gen), i, bs)
		} else {
			wire.BlockHeader(frame[start:start], uint32(w.gen), len(w.v), bs)
			copy(frame[start+wire.BlockHeaderSize:], w.v)
		}
		var err error
		if bw.Buffered() > 0 {
			err = bw.Flush() // control frames first
		}
		if err == nil {
			_, err = c.nc.Write(frame[start:])
		}
		if err != nil {
			c.close(wire.ByeNormal, "")
			return
		}
		c.sentBytes.Add(int64(bs))
		c.buffered.Add(int64(len(frame) - start))
		c.sendRate.add(int64(bs))
		s.stats.sent.Add(int64(bs))
		// Flush unless another block follows at once (the socket gathers
		// up to maxGather by itself): fewer, larger writes.
		c.qmu.Lock()
		more := len(c.wants) > 0 && len(c.ctrl) == 0
		c.qmu.Unlock()
		if !more {
			if err := flush(); err != nil {
				c.close(wire.ByeNormal, "")
				return
			}
			c.buffered.Store(0)
		}
	}
}

// gatherer is a connection that can gather writes into one system call
// (sockConn).
type gatherer interface {
	Gather()
	Flush() error
}

// rateMeter is an exponentially smoothed byte rate.
type rateMeter struct {
	mu    sync.Mutex
	last  time.Time
	value float64 // bytes per second
	acc   int64
}

const rateWindow = 2 * time.Second

func (m *rateMeter) add(n int64) {
	m.mu.Lock()
	m.acc += n
	m.tick(time.Now())
	m.mu.Unlock()
}

func (m *rateMeter) tick(now time.Time) {
	if m.last.IsZero() {
		m.last = now
		return
	}
	dt := now.Sub(m.last)
	if dt < 100*time.Millisecond {
		return
	}
	inst := float64(m.acc) / dt.Seconds()
	alpha := min(1, dt.Seconds()/rateWindow.Seconds())
	m.value += alpha * (inst - m.value)
	m.acc = 0
	m.last = now
}

func (m *rateMeter) rate() float64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tick(time.Now())
	return m.value
}
