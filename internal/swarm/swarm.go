package swarm

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"avalanche/internal/identity"
	"avalanche/internal/manifest"
	"avalanche/internal/rlnc"
	"avalanche/internal/wire"
)

// Errors.
var (
	ErrClosed       = errors.New("swarm: closed")
	ErrHashMismatch = errors.New("swarm: generation does not match the manifest")
	ErrNotSource    = errors.New("swarm: generation not held")
	ErrStorage      = errors.New("swarm: storage failure")
)

// Config describes this node's part in one swarm.
type Config struct {
	// Manifest describes the content. Required.
	Manifest *manifest.Manifest
	// Data reads generations this node holds. Required for sources and for
	// downloaders resuming or serving what they finished.
	Data io.ReaderAt
	// Out receives verified generations (downloaders). Nil for sources.
	Out io.WriterAt
	// Have marks generations already held and verified (resume). Nil means
	// none for downloaders; sources (Out == nil) hold everything.
	Have []bool
	// MasterKey, when set, makes this node an issuer of checksum keys and
	// checksums (the origin).
	MasterKey []byte
	// Checks is the number of linear checks per block (t); default 4.
	Checks int
	// Stream makes the downloader fetch generations in order (for --stream)
	// instead of rarest first.
	Stream bool
	// Slots bounds generations being decoded at once; default 8.
	Slots int
	// MaxPeers bounds the links to partial neighbours this node dials in
	// this swarm; it accepts half as many more (seeds always), and while an
	// eighth of the content or more is left, links to neighbours that hold
	// everything come on top, up to MaxPeers more. A downloader far behind
	// its neighbours dials half as many more, and is let in past a
	// neighbour's limit by as many (see behind). Default: 30 for sources
	// (Out == nil: origins and edges, whom every downloader dials), 8 for
	// downloaders. In the swarm lab (32 downloaders on two cores) 8 took 18%
	// less CPU per byte than 30 and finished sooner, and no scenario did
	// worse: each link carries more, so TCP sends larger bursts and
	// acknowledges more per segment, and announcements go to fewer
	// neighbours.
	MaxPeers int
	// Depth is the initial number of blocks asked of one link ahead of
	// delivery; default 8. It grows by one each time a link delivers with
	// its pipeline full, up to MaxDepth (default 64) and to what the link
	// delivers in 150 ms (never below Depth); it shrinks by one per block
	// while above that, and halves when wants time out.
	Depth, MaxDepth int
	// SeedCap, for sources: once a generation has been sent SeedCap times
	// its size, further wants for it are declined unless urgent (and
	// urgent ones only after every generation was sent in full); until
	// then only vectors outside the span already sent are served, so the
	// first copy always carries every generation. 0 means no cap (edges).
	SeedCap float64
	// OnGeneration is called (from an internal goroutine) after generation
	// g was verified and written to Out.
	OnGeneration func(g int)
	// OnPolluter is called when a neighbour sent a block that failed
	// verification; the neighbour has already been disconnected and banned.
	OnPolluter func(id identity.ID, addr netip.AddrPort)
	// Logger receives events; nil discards.
	Logger *slog.Logger
}

// Source says where a received byte came from.
type Source int

// Sources of received bytes.
const (
	FromPeer Source = iota
	FromOrigin
	FromEdge
	FromHTTP
	numSources
)

func sourceOf(r wire.Role) Source {
	switch r {
	case wire.RoleOrigin:
		return FromOrigin
	case wire.RoleEdge:
		return FromEdge
	}
	return FromPeer
}

// Stats is a snapshot of a swarm's counters.
type Stats struct {
	Generations   int
	Complete      int               // generations held
	Rank          int64             // innovative blocks held, including complete generations
	Blocks        int64             // blocks in the content
	Received      [numSources]int64 // payload bytes received by source
	Sent          int64             // payload bytes sent
	Delivered     int64             // of those, the ones neighbours have acknowledged (an estimate, never above)
	BlocksIn      int64             // blocks received
	UnitsIn       int64             // of those, source blocks as they are (unit vectors): no arithmetic to decode
	NonInnovative int64             // blocks dropped as not innovative
	Wasted        int64             // blocks for generations already complete
	Polluted      int64             // blocks that failed verification
	Resent        int64             // fresh blocks sent again because their receiver left (seeds)
	Peers         int               // live connections
	HashFailures  int64
}

// Downloaded returns the payload bytes received from all sources.
func (s Stats) Downloaded() int64 {
	var n int64
	for _, v := range s.Received {
		n += v
	}
	return n
}

// generation is the state of one generation in this swarm.
type generation struct {
	index  int
	blocks int   // source blocks (k, fewer for a short last generation)
	off    int64 // byte offset in the file
	size   int   // real bytes

	complete atomic.Bool
	rank     atomic.Int32
	sent     atomic.Int64 // blocks sent (sources), for the seed cap
	nextSrc  atomic.Int64 // next source block a seed sends for "any" wants

	hasSums  atomic.Bool  // sums is set
	npending atomic.Int32 // len(pending), readable without mu
	progress atomic.Int64 // unix nanoseconds of the last rank increase

	// mu guards the fields below. Lock order: Swarm.mu before generation.mu;
	// never take Swarm.mu while holding generation.mu.
	mu      sync.Mutex
	dec     *decoder
	basis   *rlnc.Basis   // span of dec's rows plus every pending want
	pending []pendingWant // blocks asked for and not yet received
	sums    []byte        // checksums of the source blocks under our key (downloaders)
	checker *checker      // verifies blocks of this generation against sums

	seedBasis *rlnc.Basis // span of the vectors sent (sources with a seed cap)
	seedDone  bool        // a full generation's worth of independent vectors sent
	urgentTo  *conn       // the neighbour last served past the cap, and when
	urgentAt  time.Time
}

// pendingWant is a block asked for with a Want: from whom, with which
// coefficient vector.
type pendingWant struct {
	c     *conn
	v     []byte
	at    time.Time
	extra bool // an endgame want beyond what the generation lacks (see endgameWants); v is not in the basis
}

// Swarm is this node's part in the swarm of one piece of content. Its
// methods are safe for concurrent use.
type Swarm struct {
	node *Node
	cfg  Config
	m    *manifest.Manifest
	id   manifest.ID
	log  *slog.Logger
	gens []*generation

	bufs  *genSlab // whole-generation buffers: decoders' rows, the cache
	cache *genCache
	// Released decoders of K blocks, kept for the next generations: a
	// sync.Pool loses them at every GC, and fresh ones cost page faults
	// and zeroing of k·(B+k) bytes each.
	decMu    sync.Mutex
	decoders []*rlnc.Decoder
	store    *storage // where the content is read from and written to

	ctx      context.Context
	cancel   context.CancelFunc
	done     chan struct{} // closed when every generation is held
	doneOnce sync.Once
	wake     chan struct{}
	dialWake chan struct{} // new candidates to dial
	failed   chan struct{} // closed on a fatal error
	failOnce sync.Once
	err      error

	// checksum state (downloaders)
	checks int
	keyMu  sync.Mutex
	key    *checkKey // nil until an origin sent our key

	mu          sync.Mutex // guards the fields below
	conns       map[*conn]struct{}
	byID        map[identity.ID]*conn
	banned      map[identity.ID]bool
	avail       []int32                   // Σ neighbour ranks per generation
	active      []int                     // generations being decoded
	outstanding []int32                   // vectors requested in offers not yet received, per generation
	candidates  map[string]PeerAddr       // addresses to dial, by address
	trusted     map[identity.ID]wire.Role // keys introduced as origins or edges
	sumsAsked   []bool                    // checksums requested for the generation
	sumsNext    int                       // chunks of checksums before this one are asked for
	sumsFrom    *conn                     // the origin link that gave us our key
	dials       map[string]*backoff
	lastReplace time.Time   // when a link was last dropped to make room
	farBehind   atomic.Bool // behind(), as of the last maintain; read by hello
	rng         *rand.Rand  // for coefficient vectors drawn by the scheduler
	lastExpire  time.Time   // when the scheduler last gave up stale wants
	encRand     *rand.Rand  // unused by Combine; given to encoders so they do not seed their own

	stats struct {
		received      [numSources]atomic.Int64
		sent          atomic.Int64
		blocksIn      atomic.Int64
		unitsIn       atomic.Int64
		nonInnovative atomic.Int64
		wasted        atomic.Int64
		resent        atomic.Int64
		polluted      atomic.Int64
		hashFailures  atomic.Int64
	}
	haveMu    sync.Mutex
	haveDirty map[int]int // rank changes not yet announced

	resendMu     sync.Mutex
	resend       [][2]int // fresh blocks to send again, generation and block (seeds; see lostWith)
	resendQueued int      // blocks ever queued in resend

	completeCount atomic.Int32
	freshLow      atomic.Int32 // sources: generations below have every source block sent (see produceFresh)
	seeded        atomic.Int32 // generations this node has sent in full (sources)
	firstOut      atomic.Bool  // every generation sent in full and acknowledged (see firstCopyOut)
	originDone    bool         // an origin declined Wants of any generation: its first copy is out (s.mu)
}

// PeerAddr is a node to connect to.
type PeerAddr struct {
	ID   identity.ID // expected key; zero accepts any
	Addr string      // host:port
	Role wire.Role
}

// DefaultMaxPeers is Config.MaxPeers when it is zero, for downloaders;
// sources take SourceMaxPeers.
const (
	DefaultMaxPeers = 8
	SourceMaxPeers  = 30
)

func (c *Config) setDefaults() {
	if c.Checks == 0 {
		c.Checks = 4
	}
	if c.Slots == 0 {
		c.Slots = 8
	}
	if c.MaxPeers == 0 {
		c.MaxPeers = DefaultMaxPeers
		if c.Out == nil {
			c.MaxPeers = SourceMaxPeers
		}
	}
	if c.Depth == 0 {
		c.Depth = 8
	}
	if c.MaxDepth == 0 {
		c.MaxDepth = 64
	}
}

func newSwarm(n *Node, cfg Config) (*Swarm, error) {
	if cfg.Manifest == nil {
		return nil, errors.New("swarm: no manifest")
	}
	cfg.setDefaults()
	m := cfg.Manifest
	s := &Swarm{
		node:       n,
		cfg:        cfg,
		m:          m,
		id:         m.ID(),
		log:        n.log.With("content", m.ID().Short()),
		done:       make(chan struct{}),
		wake:       make(chan struct{}, 1),
		dialWake:   make(chan struct{}, 1),
		failed:     make(chan struct{}),
		checks:     cfg.Checks,
		conns:      map[*conn]struct{}{},
		byID:       map[identity.ID]*conn{},
		banned:     map[identity.ID]bool{},
		candidates: map[string]PeerAddr{},
		trusted:    map[identity.ID]wire.Role{},
		rng:        newRand(),
		encRand:    newRand(),
	}
	if cfg.Logger != nil {
		s.log = cfg.Logger.With("content", m.ID().Short())
	}
	ng := m.Generations()
	s.gens = make([]*generation, ng)
	s.avail = make([]int32, ng)
	s.outstanding = make([]int32, ng)
	s.sumsAsked = make([]bool, ng)
	source := cfg.Out == nil
	if !source && cfg.Have != nil && len(cfg.Have) != ng {
		return nil, fmt.Errorf("swarm: Have has %d entries for %d generations", len(cfg.Have), ng)
	}
	if (source || cfg.Have != nil) && cfg.Data == nil {
		return nil, errors.New("swarm: held generations but no Data to read them from")
	}
	for g := range s.gens {
		off, n := m.GenerationSpan(g)
		gen := &generation{index: g, blocks: m.GenerationBlocks(g), off: off, size: int(n)}
		if source || (cfg.Have != nil && cfg.Have[g]) {
			gen.complete.Store(true)
			gen.rank.Store(int32(gen.blocks))
			s.completeCount.Add(1)
		}
		s.gens[g] = gen
	}
	// Sources serve every generation and keep more of them hot; a
	// downloader serves mostly what it just finished and re-reads the rest
	// from its file (the page cache) on a miss.
	cacheGens := 16
	if cfg.Out != nil {
		cacheGens = 4
	}
	s.store = newStorage(cfg.Data, cfg.Out, s.log.Info)
	s.bufs = newGenSlab(s.m.K * s.m.BlockSize)
	s.cache = newGenCache(cacheGens, s.bufs, s.loadGeneration)
	s.ctx, s.cancel = context.WithCancel(n.ctx)
	if s.isComplete() {
		s.doneOnce.Do(func() { close(s.done) })
	}
	return s, nil
}

// ID returns the content ID.
func (s *Swarm) ID() manifest.ID { return s.id }

// Manifest returns the swarm's manifest.
func (s *Swarm) Manifest() *manifest.Manifest { return s.m }

// Done is closed once this node holds every generation.
func (s *Swarm) Done() <-chan struct{} { return s.done }

func (s *Swarm) isComplete() bool { return int(s.completeCount.Load()) == len(s.gens) }

// fail records a fatal error and stops the swarm.
func (s *Swarm) fail(err error) {
	s.failOnce.Do(func() {
		s.err = err
		close(s.failed)
		s.log.Error("swarm failed", "err", err)
		go s.Close()
	})
}

// Failed is closed when the swarm stopped on a fatal error (see Err).
func (s *Swarm) Failed() <-chan struct{} { return s.failed }

// Err returns the fatal error, if any.
func (s *Swarm) Err() error {
	select {
	case <-s.failed:
		return s.err
	default:
		return nil
	}
}

// Complete reports whether this node holds every generation.
func (s *Swarm) Complete() bool { return s.isComplete() }

// Held reports which generations this node holds.
func (s *Swarm) Held() []bool {
	out := make([]bool, len(s.gens))
	for i, g := range s.gens {
		out[i] = g.complete.Load()
	}
	return out
}

// Stats returns a snapshot of the counters.
func (s *Swarm) Stats() Stats {
	st := Stats{Generations: len(s.gens), Complete: int(s.completeCount.Load())}
	for _, g := range s.gens {
		st.Rank += int64(g.rank.Load())
		st.Blocks += int64(g.blocks)
	}
	for i := range st.Received {
		st.Received[i] = s.stats.received[i].Load()
	}
	st.Sent = s.stats.sent.Load()
	st.BlocksIn = s.stats.blocksIn.Load()
	st.UnitsIn = s.stats.unitsIn.Load()
	st.NonInnovative = s.stats.nonInnovative.Load()
	st.Wasted = s.stats.wasted.Load()
	st.Polluted = s.stats.polluted.Load()
	st.Resent = s.stats.resent.Load()
	st.HashFailures = s.stats.hashFailures.Load()
	s.mu.Lock()
	st.Peers = len(s.conns)
	var queued int64
	for c := range s.conns {
		// Counted as payload whatever they hold: the estimate errs low.
		n, _ := unacked(c.nc.NetConn())
		queued += c.buffered.Load() + n
	}
	s.mu.Unlock()
	st.Delivered = max(0, st.Sent-queued)
	return st
}

// PeerStat describes one live connection.
type PeerStat struct {
	ID       identity.ID
	Addr     string
	Role     wire.Role
	Outbound bool
	Complete bool    // it holds everything (as it last said)
	RecvRate float64 // payload bytes/s received, smoothed
	SendRate float64
	Received int64
	Sent     int64
}

// Peers lists live connections.
func (s *Swarm) Peers() []PeerStat {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]PeerStat, 0, len(s.conns))
	for c := range s.conns {
		out = append(out, c.stat())
	}
	return out
}

// Close leaves the swarm: every connection is closed with a goodbye.
func (s *Swarm) Close() error {
	s.node.leave(s)
	s.cancel()
	s.mu.Lock()
	cs := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		c.close(wire.ByeNormal, "leaving")
	}
	return nil
}

// AddPeers offers addresses to connect to (from a tracker, or from an
// origin's or edge's GET /v1/swarm/{id}). The swarm dials as many as it
// needs, skipping ones it is connected to or has banned. The roles given
// here are the only ones believed: a neighbour whose hello claims to be an
// origin or edge is treated as a plain peer unless its key was offered with
// that role (so nobody but the real origin can hand out checksum keys).
func (s *Swarm) AddPeers(peers []PeerAddr) {
	s.mu.Lock()
	for _, p := range peers {
		if p.ID == s.node.id || s.banned[p.ID] {
			continue
		}
		if p.Role != wire.RolePeer && !p.ID.IsZero() {
			s.trusted[p.ID] = p.Role
		}
		if _, ok := s.candidates[p.Addr]; !ok {
			s.candidates[p.Addr] = p
		}
	}
	s.mu.Unlock()
	// Dial at once rather than at the next maintenance tick: at the start
	// of a download every half second without links is half a second of
	// the origin's uplink unused.
	select {
	case s.dialWake <- struct{}{}:
	default:
	}
	s.kick()
}

// kick wakes the scheduler.
func (s *Swarm) kick() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// loadGeneration reads generation g's bytes, padded to whole blocks, from
// storage into buf (reallocated if too small).
func (s *Swarm) loadGeneration(g int, buf []byte) ([]byte, error) {
	gen := s.gens[g]
	if !gen.complete.Load() {
		return buf, ErrNotSource
	}
	buf, err := s.readGeneration(gen, buf)
	if err != nil {
		return buf, fmt.Errorf("swarm: reading generation %d: %w", g, err)
	}
	return buf, nil
}

// readGeneration reads gen from storage into buf (grown if need be),
// padded with zeros to whole blocks.
func (s *Swarm) readGeneration(gen *generation, buf []byte) ([]byte, error) {
	need := gen.blocks * s.m.BlockSize
	if cap(buf) < need {
		buf = make([]byte, need)
	}
	buf = buf[:need]
	if err := s.store.readAt(buf[:gen.size], gen.off); err != nil {
		return buf, err
	}
	clear(buf[gen.size:])
	return buf, nil
}

// finishGeneration checks a fully decoded generation against the manifest
// and stores it, unless stored says it is in storage already. data holds
// the generation padded to whole blocks. Caller holds gen.mu.
func (s *Swarm) finishGeneration(g int, data []byte, stored bool) error {
	gen := s.gens[g]
	if sha256.Sum256(data[:gen.size]) != s.m.GenHashes[g] {
		s.stats.hashFailures.Add(1)
		return fmt.Errorf("%w: generation %d", ErrHashMismatch, g)
	}
	if !stored {
		if err := s.store.writeAt(data[:gen.size], gen.off); err != nil {
			err = fmt.Errorf("%w: writing generation %d: %w", ErrStorage, g, err)
			s.fail(err)
			return err
		}
	}
	gen.complete.Store(true)
	gen.rank.Store(int32(gen.blocks))
	if !s.store.raw.ok() {
		// The hash covers the real bytes only; zero the padding so a
		// sender that chose every block cannot make us serve its junk as
		// source. Where storage is read block by block with raw calls,
		// serving reads it from there instead.
		clear(data[gen.size:])
		s.cache.put(g, data)
	}
	n := s.completeCount.Add(1)
	if s.cfg.OnGeneration != nil {
		s.cfg.OnGeneration(g)
	}
	if int(n) == len(s.gens) {
		s.doneOnce.Do(func() { close(s.done) })
		s.log.Info("download complete")
	}
	return nil
}

// InjectGeneration stores a generation obtained elsewhere (HTTP fallback)
// after checking it against the manifest. data holds the real bytes.
func (s *Swarm) InjectGeneration(g int, data []byte) error {
	if g < 0 || g >= len(s.gens) {
		return fmt.Errorf("swarm: generation %d out of range", g)
	}
	gen := s.gens[g]
	if gen.complete.Load() {
		return nil
	}
	if len(data) != gen.size {
		return fmt.Errorf("swarm: generation %d: %d bytes, want %d", g, len(data), gen.size)
	}
	buf := make([]byte, gen.blocks*s.m.BlockSize)
	copy(buf, data)
	gen.mu.Lock()
	if gen.complete.Load() {
		gen.mu.Unlock()
		return nil
	}
	if err := s.finishGeneration(g, buf, false); err != nil {
		gen.mu.Unlock()
		return err
	}
	s.stats.received[FromHTTP].Add(int64(len(data)))
	s.releaseDecoder(gen)
	gen.basis = nil
	moot := gen.pending
	gen.pending = nil
	gen.npending.Store(0)
	gen.mu.Unlock()
	s.afterComplete(g, moot)
	return nil
}

// afterComplete tells neighbours and the scheduler that g is held; moot
// are the wants for g still outstanding.
func (s *Swarm) afterComplete(g int, moot []pendingWant) {
	s.mu.Lock()
	s.removeActive(g)
	s.mootWants(g, moot)
	done := s.isComplete()
	for c := range s.conns {
		if !c.holds(g) && c.noteHave(g, s.gens[g].blocks) {
			c.wakeWriter()
		}
		if done && !c.remoteDone {
			// Ranks of generations a neighbour holds are never announced
			// to it, so without these it would never learn that we hold
			// everything: two finished downloaders would each count the
			// other as partial (against MaxPeers) and keep a link that
			// serves neither.
			for g2, gen := range s.gens {
				if c.holds(g2) && c.noteHave(g2, gen.blocks) {
					c.wakeWriter()
				}
			}
		}
	}
	s.mu.Unlock()
	s.kick()
}

// Incomplete returns every generation not yet held, with its current rank.
func (s *Swarm) Incomplete() (gens []int, ranks []int) {
	for g, gen := range s.gens {
		if !gen.complete.Load() {
			gens = append(gens, g)
			ranks = append(ranks, int(gen.rank.Load()))
		}
	}
	return
}

func (s *Swarm) isActive(g int) bool {
	for _, a := range s.active {
		if a == g {
			return true
		}
	}
	return false
}

func (s *Swarm) removeActive(g int) {
	for i, a := range s.active {
		if a == g {
			s.active = append(s.active[:i], s.active[i+1:]...)
			return
		}
	}
}

// rng returns a fresh seeded generator (per goroutine; not shared).
func newRand() *rand.Rand {
	return rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
}

// run is the swarm's maintenance loop: scheduling, announcements,
// dialing, timeouts.
//
// It keeps no timer of its own running at a high rate: every timer that
// fires wakes the process (and the Go runtime's monitor thread, which
// sleeps until the next timer), and with 32 downloaders on two cores a
// scheduling timer armed after every block, plus a 25 ms announcement
// ticker, made most of the system's context switches. Scheduling follows
// the kicks that come with every block, offer and announcement instead:
// the loop first lets every goroutine that is runnable already (readers
// with input waiting) go on, so that one pass answers them all;
// announcements go out from the same passes, at most every haveEvery; a
// slow tick covers timeouts and quiet links, and stops once the content is
// complete.
func (s *Swarm) run() {
	tick := time.NewTicker(tickEvery)
	defer tick.Stop()
	dialTick := time.NewTicker(500 * time.Millisecond)
	defer dialTick.Stop()
	var lastHaves time.Time
	ticking := true
	pass := func() {
		s.schedule()
		if now := time.Now(); now.Sub(lastHaves) >= haveEvery {
			s.flushHaves()
			lastHaves = now
		}
	}
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.wake:
			runtime.Gosched()
			select {
			case <-s.wake: // kicks from those that just ran: this pass answers them
			default:
			}
			pass()
		case <-tick.C:
			pass()
			if ticking && s.isComplete() {
				// Seeding: neighbours' wants wake the writers directly;
				// only a last announcement may still be due.
				s.flushHaves()
				tick.Reset(time.Hour)
				ticking = false
			}
		case <-dialTick.C:
			s.maintain()
		case <-s.dialWake:
			s.maintain()
		}
	}
}

// tickEvery is how often the loop runs without being kicked: for want
// timeouts, links whose pause ended, and announcements of a quiet swarm.
const tickEvery = 50 * time.Millisecond
