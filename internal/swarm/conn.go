package swarm

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"avalanche/internal/identity"
	"avalanche/internal/wire"
)

var (
	errBanned   = errors.New("banned")
	errFull     = errors.New("swarm full")
	errDup      = errors.New("already connected")
	errProtocol = errors.New("protocol violation")
)

// maxQueued bounds blocks a neighbour may have requested from us and not
// yet received.
const maxQueued = 4 * wire.MaxRequest

// request is credit granted to us by the neighbour: send count blocks of gen.
type request struct {
	gen   int
	count int
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
	remote     []byte // the neighbour's rank per generation; nil before State
	remoteDone bool   // the neighbour holds everything
	useless    []bool // the neighbour's blocks of g were not innovative since its last Have
	out        map[int]int32
	inflight   int
	depth      int
	lastBlock  time.Time
	asked      time.Time // when inflight last went from 0 to positive

	// Sender side.
	qmu    sync.Mutex
	queue  []request
	queued int
	ctrl   [][]byte
	signal chan struct{}
	rr     int // round-robin position in queue

	recvBytes atomic.Int64
	sentBytes atomic.Int64
	recvRate  rateMeter
	sendRate  rateMeter

	closeOnce sync.Once
	closed    chan struct{}
}

// hello returns this node's hello for s.
func (s *Swarm) hello() wire.Hello {
	return wire.Hello{Version: wire.Version, Role: s.node.cfg.Role, Content: s.id, Port: s.node.Port(), Complete: s.isComplete()}
}

// admit registers a handshaken connection. For inbound connections it
// also sends our hello.
func (s *Swarm) admit(tc *tls.Conn, peer identity.ID, addr netip.AddrPort, h wire.Hello, outbound bool) (*conn, error) {
	c := &conn{
		s: s, nc: tc, peer: peer, addr: addr, role: h.Role, outbound: outbound,
		started: time.Now(), out: map[int]int32{}, depth: s.cfg.Depth,
		signal: make(chan struct{}, 1), closed: make(chan struct{}),
		remoteDone: h.Complete,
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if s.banned[peer] {
		return nil, errBanned
	}
	if old := s.byID[peer]; old != nil {
		// Simultaneous dials: keep the connection dialed by the smaller ID.
		keepNew := (outbound && lessID(s.node.id, peer)) || (!outbound && lessID(peer, s.node.id))
		if !keepNew || old.outbound == outbound {
			return nil, errDup
		}
		go old.close(wire.ByeNormal, "duplicate connection", nil)
		delete(s.conns, old)
	}
	limit := s.cfg.MaxPeers
	if !outbound {
		limit += s.cfg.MaxPeers / 2 // room for newcomers to find us
	}
	if len(s.conns) >= limit && h.Role == wire.RolePeer {
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
	// Greet: our ranks, and a checksum key if we issue them.
	c.ctrl = append(c.ctrl, wire.Append(nil, wire.State{Ranks: s.ranks()}))
	if s.cfg.MasterKey != nil && h.Role != wire.RoleOrigin {
		c.ctrl = append(c.ctrl, wire.Append(nil, wire.Key{Key: s.issueKey(peer), Checks: uint8(s.checks)}))
	}
	s.log.Debug("connected", "peer", peer.Short(), "addr", addr, "role", h.Role, "outbound", outbound)
	return c, nil
}

func lessID(a, b identity.ID) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
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
		ID: c.peer, Addr: c.addr.String(), Role: c.role, Outbound: c.outbound,
		RecvRate: c.recvRate.rate(), SendRate: c.sendRate.rate(),
		Received: c.recvBytes.Load(), Sent: c.sentBytes.Load(),
	}
}

// run drives the connection until it closes.
func (c *conn) run() {
	go c.writeLoop()
	err := c.readLoop()
	reason, code := "", wire.ByeNormal
	switch {
	case err == nil, errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
	case errors.Is(err, errProtocol), errors.Is(err, wire.ErrMalformed), errors.Is(err, wire.ErrTooLarge), errors.Is(err, wire.ErrUnknown):
		code, reason = wire.ByeProtocol, err.Error()
		c.s.log.Info("closing connection", "peer", c.peer.Short(), "addr", c.addr, "reason", reason)
	default:
		reason = err.Error()
		c.s.log.Debug("connection ended", "peer", c.peer.Short(), "err", err)
	}
	c.close(code, reason, nil)
}

// close ends the connection once, sending a goodbye when it has a reason.
func (c *conn) close(code wire.ByeCode, reason string, _ error) {
	c.closeOnce.Do(func() {
		close(c.closed)
		if reason != "" || code != wire.ByeNormal {
			c.nc.SetWriteDeadline(time.Now().Add(time.Second))
			writeBye(c.nc, code, reason)
		}
		c.nc.Close()
		c.s.dropConn(c)
	})
}

// dropConn forgets a closed connection and returns its credits.
func (s *Swarm) dropConn(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	if s.byID[c.peer] == c {
		delete(s.byID, c.peer)
	}
	if c.remote != nil {
		for g, r := range c.remote {
			s.avail[g] -= int32(r)
		}
	}
	for g, n := range c.out {
		s.outstanding[g] = max(0, s.outstanding[g]-n)
	}
	c.out = map[int]int32{}
	c.inflight = 0
	s.mu.Unlock()
	s.kick()
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

// sendHave tells the neighbour our new rank of g. Caller may hold s.mu.
func (c *conn) sendHave(g, rank int) {
	c.enqueue(wire.Append(nil, wire.Have{Gen: uint32(g), Rank: uint8(rank)}))
}

func (c *conn) readLoop() error {
	br := bufio.NewReaderSize(c.nc, 64<<10)
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
			if err := c.onRequest(int(f.Gen), int(f.Count)); err != nil {
				return err
			}
		case wire.Block:
			if err := c.onBlock(f); err != nil {
				return err
			}
		case wire.Useless:
			c.dropRequests(int(f.Gen))
		case wire.Reject:
			c.onReject(int(f.Gen), int(f.Count))
		case wire.SumsReq:
			if s.cfg.MasterKey == nil {
				return fmt.Errorf("%w: checksums requested from a node that does not issue them", errProtocol)
			}
			go c.serveSums(int(f.First), int(f.N))
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
		}
	}
}

func (c *conn) onState(ranks []byte) {
	s := c.s
	s.mu.Lock()
	c.remote = append([]byte(nil), ranks...)
	c.useless = make([]bool, len(ranks))
	done := true
	for g, r := range c.remote {
		s.avail[g] += int32(r)
		if int(r) < s.gens[g].blocks {
			done = false
		}
	}
	c.remoteDone = done
	s.mu.Unlock()
	s.kick()
}

func (c *conn) onHave(g, rank int) {
	s := c.s
	s.mu.Lock()
	old := int(c.remote[g])
	if rank > old {
		s.avail[g] += int32(rank - old)
		c.remote[g] = byte(rank)
		c.useless[g] = false
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
	s.mu.Unlock()
	if rank == s.gens[g].blocks {
		c.dropRequests(g)
	}
	s.kick()
}

// onRequest records credit to send blocks of g.
func (c *conn) onRequest(g, n int) error {
	c.qmu.Lock()
	if c.queued+n > maxQueued {
		c.qmu.Unlock()
		return fmt.Errorf("%w: more than %d blocks requested", errProtocol, maxQueued)
	}
	c.queued += n
	merged := false
	for i := range c.queue {
		if c.queue[i].gen == g {
			c.queue[i].count += n
			merged = true
			break
		}
	}
	if !merged {
		c.queue = append(c.queue, request{gen: g, count: n})
	}
	c.qmu.Unlock()
	c.wakeWriter()
	return nil
}

// dropRequests forgets credit for g (the neighbour has it or our blocks are
// useless to it).
func (c *conn) dropRequests(g int) {
	c.qmu.Lock()
	for i := range c.queue {
		if c.queue[i].gen == g {
			c.queued -= c.queue[i].count
			c.queue = append(c.queue[:i], c.queue[i+1:]...)
			break
		}
	}
	c.qmu.Unlock()
}

// onReject returns credit we granted.
func (c *conn) onReject(g, n int) {
	s := c.s
	s.mu.Lock()
	c.credit(g, n)
	c.useless[g] = true
	s.mu.Unlock()
	s.kick()
}

// credit returns n blocks of g requested from c. Caller holds s.mu.
func (c *conn) credit(g, n int) {
	s := c.s
	have := c.out[g]
	n = min(n, int(have))
	if n <= 0 {
		return
	}
	if have == int32(n) {
		delete(c.out, g)
	} else {
		c.out[g] = have - int32(n)
	}
	c.inflight -= n
	s.outstanding[g] = max(0, s.outstanding[g]-int32(n))
}

// onBlock handles a coded block: innovation first, then verification,
// then decoding.
func (c *conn) onBlock(b wire.Block) error {
	s := c.s
	g := int(b.Gen)
	gen := s.gens[g]
	n := int64(len(b.Payload))
	c.recvBytes.Add(n)
	c.recvRate.add(n)
	s.stats.blocksIn.Add(1)
	s.stats.received[sourceOf(c.role)].Add(n)
	if err := waitN(s.ctx, s.node.down, int(n)); err != nil {
		return err
	}
	s.mu.Lock()
	c.credit(g, 1)
	c.lastBlock = time.Now()
	s.mu.Unlock()
	defer s.kick()

	if gen.complete.Load() || s.cfg.Out == nil {
		s.stats.wasted.Add(1)
		return nil
	}
	gen.mu.Lock()
	if gen.dec == nil {
		if gen.complete.Load() {
			gen.mu.Unlock()
			s.stats.wasted.Add(1)
			return nil
		}
		gen.dec = s.newDecoder(gen)
	}
	if !gen.dec.innovative(b.Coeffs) {
		gen.mu.Unlock()
		s.stats.nonInnovative.Add(1)
		s.mu.Lock()
		if c.useless != nil {
			c.useless[g] = true
		}
		s.mu.Unlock()
		c.enqueue(wire.Append(nil, wire.Useless{Gen: b.Gen}))
		return nil
	}
	sums := gen.sums
	gen.mu.Unlock()
	if sums == nil || !s.verify(g, b.Coeffs, b.Payload, sums) {
		s.stats.polluted.Add(1)
		if sums == nil {
			// We never ask for a generation before holding its checksums.
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
	innov := gen.dec.add(b.Coeffs, b.Payload)
	rank := gen.dec.rank()
	if !innov {
		gen.mu.Unlock()
		s.stats.nonInnovative.Add(1)
		return nil
	}
	gen.rank.Store(int32(rank))
	if rank < gen.blocks {
		gen.mu.Unlock()
		s.mu.Lock()
		for o := range s.conns {
			o.sendHave(g, rank)
		}
		s.mu.Unlock()
		return nil
	}
	// Full rank: check and store.
	err := s.finishGeneration(g, gen.dec.data())
	if errors.Is(err, ErrStorage) {
		gen.mu.Unlock()
		return err
	}
	if err != nil {
		s.log.Warn("generation failed its manifest hash; fetching it again", "gen", g, "err", err)
		gen.dec.reset()
		gen.rank.Store(0)
		gen.mu.Unlock()
		return nil
	}
	s.releaseDecoder(gen)
	gen.mu.Unlock()
	s.afterComplete(g)
	return nil
}

var errPolluted = errors.New("sent a block that failed verification")

// polluter disconnects and bans a neighbour that sent a bad block.
func (s *Swarm) polluter(c *conn, g int) {
	s.log.Warn("block failed verification: banning neighbour", "peer", c.peer.Short(), "addr", c.addr, "gen", g)
	s.mu.Lock()
	s.banned[c.peer] = true
	delete(s.candidates, c.addr.String())
	s.mu.Unlock()
	go c.close(wire.ByePollution, "block failed verification", nil)
	if s.cfg.OnPolluter != nil {
		go s.cfg.OnPolluter(c.peer, c.addr)
	}
}

// writeLoop sends control frames first, then blocks for granted credit.
func (c *conn) writeLoop() {
	s := c.s
	bw := bufio.NewWriterSize(c.nc, 64<<10)
	rng := newRand()
	bs := s.m.BlockSize
	coeffs := make([]byte, 255)
	payload := make([]byte, bs)
	var hdr []byte
	keepalive := time.NewTimer(30 * time.Second)
	defer keepalive.Stop()
	for {
		c.qmu.Lock()
		ctrl := c.ctrl
		c.ctrl = nil
		c.qmu.Unlock()
		for _, f := range ctrl {
			if _, err := bw.Write(f); err != nil {
				c.close(wire.ByeNormal, "", err)
				return
			}
		}
		g, ok := c.nextRequest()
		if !ok {
			if err := bw.Flush(); err != nil {
				c.close(wire.ByeNormal, "", err)
				return
			}
			select {
			case <-c.closed:
				return
			case <-c.signal:
			case <-keepalive.C:
				c.enqueue(wire.Append(nil, wire.Keepalive{}))
			}
			keepalive.Reset(30 * time.Second)
			continue
		}
		k := s.gens[g].blocks
		if !s.produce(g, rng, coeffs[:k], payload) {
			c.takeRequest(g, -1)
			c.enqueue(wire.Append(nil, wire.Reject{Gen: uint32(g), Count: uint16(min(wire.MaxRequest, 1))}))
			continue
		}
		// Flush what is buffered before waiting for upload tokens, so that
		// control frames are not held back by the rate limiter.
		if s.node.up != nil && bw.Buffered() > 0 {
			bw.Flush()
		}
		if err := waitN(s.ctx, s.node.up, bs); err != nil {
			return
		}
		hdr = wire.BlockHeader(hdr[:0], uint32(g), k, bs)
		bw.Write(hdr)
		bw.Write(coeffs[:k])
		if _, err := bw.Write(payload); err != nil {
			c.close(wire.ByeNormal, "", err)
			return
		}
		c.sentBytes.Add(int64(bs))
		c.sendRate.add(int64(bs))
		s.stats.sent.Add(int64(bs))
		c.qmu.Lock()
		pending := len(c.ctrl) > 0
		c.qmu.Unlock()
		if pending || c.queuedCount() == 0 {
			if err := bw.Flush(); err != nil {
				c.close(wire.ByeNormal, "", err)
				return
			}
		}
	}
}

// nextRequest picks the generation of the next block to send, round-robin
// over the neighbour's outstanding requests, and consumes one credit.
func (c *conn) nextRequest() (int, bool) {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if len(c.queue) == 0 {
		return 0, false
	}
	c.rr %= len(c.queue)
	r := &c.queue[c.rr]
	g := r.gen
	r.count--
	c.queued--
	if r.count == 0 {
		c.queue = append(c.queue[:c.rr], c.queue[c.rr+1:]...)
	} else {
		c.rr++
	}
	return g, true
}

// takeRequest drops the remaining credit for g (n < 0: all of it).
func (c *conn) takeRequest(g, n int) {
	c.dropRequests(g)
}

func (c *conn) queuedCount() int {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return c.queued
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
