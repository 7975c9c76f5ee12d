package traffic

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"avalanche/internal/netmap"
	"avalanche/internal/prefixlimit"
)

// Config configures a Manager. The zero value works: an in-memory store,
// the built-in network map, 10 s probes, admin and edge APIs open to
// loopback clients only.
type Config struct {
	// Store holds the shared state. Default: a new MemStore (this node
	// alone). Use a RedisStore to share state between control nodes.
	Store Store
	// Map places clients. Default: netmap.Default() (loopback and private
	// ranges only).
	Map Locator
	// NodeID names this control node in health votes. Default: random.
	NodeID string

	// ProbeInterval is how often each edge's health URL is probed. Default
	// 10s.
	ProbeInterval time.Duration
	// ProbeFastInterval is the probe interval while a failure is being
	// confirmed. Default ProbeInterval/4.
	ProbeFastInterval time.Duration
	// ProbeTimeout bounds one probe. Default the smaller of 2s and
	// ProbeInterval.
	ProbeTimeout time.Duration
	// FailThreshold is how many consecutive failed probes make this node
	// vote an edge down. Default 3.
	FailThreshold int
	// VoteTTL is how long a vote counts; votes of a control node that died
	// drop out after it. Default 3×ProbeInterval.
	VoteTTL time.Duration
	// HeartbeatTimeout: an edge that has not reported for this long is down
	// (passive health). Default 30s.
	HeartbeatTimeout time.Duration
	// ExpireAfter: an edge silent for this long is removed from the
	// registry. Default 10m.
	ExpireAfter time.Duration
	// SyncInterval is how often the shared state is re-read. Default 1s.
	// While the fresh votes on some edge disagree (other probers may be
	// about to tip it), it is re-read ten times as often, so that an edge
	// voted down by another node leaves this node's answers within a
	// tenth of the interval.
	SyncInterval time.Duration
	// DisableProbes turns active probing off (heartbeats still count).
	DisableProbes bool

	// AdminToken authorises the operator APIs (edge list, drain, every
	// property). Empty: only loopback clients may use them.
	AdminToken string
	// EdgeToken authorises edge heartbeats. Empty: only loopback clients
	// may send them.
	EdgeToken string
	// TrustedProxies may name the client with the "client" query
	// parameter and are exempt from rate limits (they speak for many
	// clients). Default: loopback.
	TrustedProxies []netip.Prefix
	// RateLimit is the steady request rate allowed per client prefix (/24,
	// /48) on the routing APIs, per second. Default 50; negative disables.
	RateLimit float64
	// RateBurst is the burst allowed above RateLimit. Default 4×RateLimit.
	RateBurst float64

	// Logger receives events. Default: discard.
	Logger *slog.Logger
	// Metrics, if set, receives the manager's Prometheus collectors.
	Metrics prometheus.Registerer
	// HTTPClient sends probes. Default: a client with ProbeTimeout that
	// does not follow redirects.
	HTTPClient *http.Client
	// Now returns the current time. Default time.Now.
	Now func() time.Time
}

// Manager is the traffic manager: it keeps the edge registry and health
// votes in a Store, probes edges, and answers routing queries from an
// immutable snapshot of that state rebuilt every SyncInterval. It is safe
// for concurrent use; Run must be called for probing and syncing.
type Manager struct {
	cfg     Config
	store   Store
	loc     Locator
	log     *slog.Logger
	now     func() time.Time
	snap    atomic.Pointer[snapshot]
	kick    chan struct{}
	limiter *prefixlimit.Limiter
	metrics *metrics
	prober  *prober

	mu       sync.Mutex // serialises refreshes; guards the fields below
	parsed   map[string]parsedPolicy
	docs     map[string][]byte // policy documents as last read
	pver     int64             // their version
	docsRead time.Time

	// stickyPause (unix nanoseconds) suspends sticky lookups after a store
	// error, so that an unreachable Redis slows no decision for long.
	stickyPause atomic.Int64
}

type parsedPolicy struct {
	raw string
	p   *Policy
}

// New returns a Manager with cfg's defaults filled in. It reads the store
// once, so that it can route before Run starts.
func New(ctx context.Context, cfg Config) (*Manager, error) {
	if cfg.Store == nil {
		cfg.Store = NewMemStore()
	}
	if cfg.Map == nil {
		cfg.Map = netmap.Default()
	}
	if cfg.NodeID == "" {
		var b [6]byte
		rand.Read(b[:])
		cfg.NodeID = "control-" + hex.EncodeToString(b[:])
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = 10 * time.Second
	}
	if cfg.ProbeFastInterval <= 0 {
		cfg.ProbeFastInterval = cfg.ProbeInterval / 4
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = min(2*time.Second, cfg.ProbeInterval)
	}
	if cfg.FailThreshold <= 0 {
		cfg.FailThreshold = 3
	}
	if cfg.VoteTTL <= 0 {
		cfg.VoteTTL = 3 * cfg.ProbeInterval
	}
	if cfg.HeartbeatTimeout <= 0 {
		cfg.HeartbeatTimeout = 30 * time.Second
	}
	if cfg.ExpireAfter <= 0 {
		cfg.ExpireAfter = 10 * time.Minute
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = time.Second
	}
	if cfg.TrustedProxies == nil {
		cfg.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = 50
	}
	if cfg.RateBurst <= 0 {
		cfg.RateBurst = 4 * cfg.RateLimit
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{
			Timeout:       cfg.ProbeTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport: &http.Transport{
				MaxIdleConnsPerHost: 2,
				IdleConnTimeout:     3 * cfg.ProbeInterval,
				DisableCompression:  true,
			},
		}
	}
	m := &Manager{
		cfg:    cfg,
		store:  cfg.Store,
		loc:    cfg.Map,
		log:    cfg.Logger,
		now:    cfg.Now,
		kick:   make(chan struct{}, 1),
		parsed: map[string]parsedPolicy{},
	}
	if m.log == nil {
		m.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.RateLimit > 0 {
		m.limiter = prefixlimit.New(cfg.RateLimit, cfg.RateBurst, 1<<16)
	}
	m.metrics = newMetrics(m, cfg.Metrics)
	m.prober = newProber(m)
	m.snap.Store(&snapshot{byID: map[string]int{}, policies: map[string]*boundPolicy{}})
	if err := m.Refresh(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// NodeID returns the name this node votes under.
func (m *Manager) NodeID() string { return m.cfg.NodeID }

// Run probes edges and re-reads the shared state until ctx is done, then
// returns nil.
func (m *Manager) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	if !m.cfg.DisableProbes {
		wg.Add(1)
		go func() { defer wg.Done(); m.prober.run(ctx) }()
	}
	t := time.NewTimer(m.syncDelay())
	defer func() { t.Stop(); wg.Wait() }()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-m.kick:
		}
		if err := m.Refresh(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("traffic: sync with the shared state failed; routing on the last snapshot", "err", err)
		}
		t.Reset(m.syncDelay())
	}
}

// syncDelay is how long Run waits before the next Refresh: SyncInterval,
// or a tenth of it while the votes on some edge disagree.
func (m *Manager) syncDelay() time.Duration {
	if m.snap.Load().contested {
		return max(m.cfg.SyncInterval/10, 10*time.Millisecond)
	}
	return m.cfg.SyncInterval
}

// poke asks Run to refresh soon.
func (m *Manager) poke() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Refresh re-reads the shared state and swaps in a new routing snapshot.
func (m *Manager) Refresh(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	recs, err := m.store.Edges(ctx)
	if err != nil {
		return fmt.Errorf("traffic: reading edges: %w", err)
	}
	flags, err := m.store.Flags(ctx)
	if err != nil {
		return fmt.Errorf("traffic: reading flags: %w", err)
	}
	votes, err := m.store.Votes(ctx)
	if err != nil {
		return fmt.Errorf("traffic: reading votes: %w", err)
	}
	pver, err := m.store.PolicyVersion(ctx)
	if err != nil {
		return fmt.Errorf("traffic: reading the policy version: %w", err)
	}
	// Policies change rarely: re-read them only when the version moved (and
	// at least once a minute, in case a writer bypassed the counter).
	docs := m.docs
	if docs == nil || pver != m.pver || time.Since(m.docsRead) > time.Minute {
		if docs, err = m.store.Policies(ctx); err != nil {
			return fmt.Errorf("traffic: reading policies: %w", err)
		}
		m.docs, m.pver, m.docsRead = docs, pver, time.Now()
	}
	now := m.now()
	prev := m.snap.Load()
	s := &snapshot{built: now, byID: make(map[string]int, len(recs)), policies: make(map[string]*boundPolicy, len(docs))}

	type tally struct{ up, down int }
	tallies := map[string]*tally{}
	for _, v := range votes {
		if age := now.Sub(v.At); age > m.cfg.VoteTTL {
			// Sweep votes of probers long gone (restarted control nodes
			// come back under new IDs).
			if age > max(10*m.cfg.VoteTTL, time.Hour) {
				_ = m.store.DeleteVote(ctx, v.Edge, v.Prober)
			}
			continue
		}
		t := tallies[v.Edge]
		if t == nil {
			t = &tally{}
			tallies[v.Edge] = t
		}
		if v.Healthy {
			t.up++
		} else {
			t.down++
		}
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].Edge.ID < recs[j].Edge.ID })
	var layout strings.Builder
	for _, r := range recs {
		age := now.Sub(r.Seen)
		if age > m.cfg.ExpireAfter {
			if err := m.store.DeleteEdge(ctx, r.Edge.ID); err == nil {
				m.log.Info("traffic: edge expired", "edge", r.Edge.ID, "silent", age.Round(time.Second))
			}
			continue
		}
		e := &edgeState{Edge: r.Edge, seen: r.Seen, flag: flags[r.Edge.ID]}
		e.util = e.Utilization()
		e.cost = e.CostAt(now)
		e.hash = stableHash(e.ID)
		e.addrs = e.Edge.addrs()
		for _, p := range e.Peers {
			if asn, ok := parseASN(p); ok {
				e.asns = append(e.asns, asn)
			} else {
				e.isps = append(e.isps, p)
			}
		}
		if t := tallies[e.ID]; t != nil {
			e.votesUp, e.votesDown = t.up, t.down
			if t.up > 0 && t.down > 0 {
				s.contested = true
			}
		}
		stale := age > m.cfg.HeartbeatTimeout
		// Down only when most fresh voters say so: one partitioned prober
		// cannot fail an edge.
		votedDown := 2*e.votesDown > e.votesUp+e.votesDown
		e.healthy = !stale && !votedDown
		switch {
		case stale:
			e.status = "stale"
		case votedDown:
			e.status = "down"
		case e.flag.Drained:
			e.status = "drained"
		case e.Load.Overloaded:
			e.status = "overloaded"
		default:
			e.status = "healthy"
		}
		s.byID[e.ID] = len(s.edges)
		s.edges = append(s.edges, e)
		layout.WriteString(e.ID)
		layout.WriteByte('\x00')
		layout.WriteString(e.Region)
		layout.WriteByte('\x00')
	}
	s.layout = layout.String()

	for name, doc := range docs {
		raw := string(doc)
		pp, ok := m.parsed[name]
		if !ok || pp.raw != raw {
			p, err := ParsePolicy(doc)
			if err != nil || p.Name != name {
				m.log.Warn("traffic: ignoring a bad stored policy", "property", name, "err", err)
				continue
			}
			pp = parsedPolicy{raw, p}
			m.parsed[name] = pp
		}
		if old := prev.policies[name]; old != nil && old.raw == raw && prev.layout == s.layout {
			s.policies[name] = old
			continue
		}
		s.policies[name] = bindPolicy(pp.p, raw, s)
	}
	for name := range m.parsed {
		if _, ok := docs[name]; !ok {
			delete(m.parsed, name)
		}
	}
	m.snap.Store(s)
	m.metrics.observeSnapshot(s)
	return nil
}

func parseASN(s string) (uint32, bool) {
	if len(s) < 3 || !strings.EqualFold(s[:2], "AS") {
		return 0, false
	}
	var n uint64
	for _, c := range s[2:] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
		if n > 1<<32-1 {
			return 0, false
		}
	}
	return uint32(n), true
}

// Route decides where to send one client. It fails with ErrUnknownProperty,
// ErrInvalid (no client address) or ErrNoEdge (nothing eligible and no
// origin).
func (m *Manager) Route(ctx context.Context, q Query) (Decision, error) {
	s := m.snap.Load()
	bp := s.policies[q.Property]
	if bp == nil {
		return Decision{}, fmt.Errorf("%w: %q", ErrUnknownProperty, q.Property)
	}
	if !q.Client.IsValid() {
		return Decision{}, fmt.Errorf("%w: no client address", ErrInvalid)
	}
	client := q.Client.Unmap().WithZone("")
	c := evalPool.Get().(*evalCtx)
	defer func() {
		c.s, c.bp, c.cands = nil, nil, c.cands[:0]
		evalPool.Put(c)
	}()
	c.s, c.bp, c.addr, c.answer, c.scope = s, bp, client, 0, 0
	if nw := (len(s.edges) + 63) / 64; cap(c.seen) < nw {
		c.seen = make([]uint64, nw)
	} else {
		c.seen = c.seen[:nw]
		clear(c.seen)
	}
	entry, _ := m.loc.LookupEntry(client)
	c.loc = entry.Location
	prefixBits := bp.p.Rules.prefixBits(client)
	prefix, _ := client.Prefix(prefixBits)
	c.key = prefixHash(q.Property, prefix)

	c.node(bp.root, 0)
	c.rank()

	d := Decision{
		Property:   q.Property,
		Client:     client.String(),
		TTLSeconds: int(bp.ttl / time.Second),
		ScopeBits:  max(prefixBits, entry.Prefix.Bits(), c.scope),
	}
	if len(c.cands) == 0 {
		m.metrics.decision("origin")
		if bp.p.Origin == "" {
			return d, ErrNoEdge
		}
		d.Origin = joinURL(bp.p.Origin, "", q.Path)
		return d, nil
	}
	if bp.sticky > 0 {
		m.stick(ctx, c, q.Property, prefix)
	}
	d.Want = max(bp.answers, c.answer)
	n := q.Max
	if n <= 0 {
		n = d.Want
	}
	n = min(n, maxAnswers, len(c.cands))
	d.Edges = make([]Answer, n)
	for i := range n {
		e := s.edges[c.cands[i].idx]
		d.Edges[i] = Answer{ID: e.ID, URL: joinURL(e.URL, q.Property, q.Path), Region: e.Region, Addrs: e.addrs}
	}
	m.metrics.decision("edge")
	return d, nil
}

// stick moves the client prefix's sticky edge to the front when it is still
// eligible, and rebinds the prefix to the current best edge when it is not.
func (m *Manager) stick(ctx context.Context, c *evalCtx, property string, prefix netip.Prefix) {
	if time.Now().UnixNano() < m.stickyPause.Load() {
		return
	}
	var buf [96]byte
	key := string(prefix.AppendTo(append(append(buf[:0], property...), '|')))
	best := c.s.edges[c.cands[0].idx].ID
	cur, err := m.store.Stick(ctx, key, best, c.bp.sticky)
	if err != nil {
		if ctx.Err() == nil {
			m.stickyPause.Store(time.Now().Add(time.Second).UnixNano())
			m.log.Warn("traffic: sticky lookup failed; routing without stickiness for 1s", "err", err)
		}
		return
	}
	if cur == best {
		return
	}
	for i := 1; i < len(c.cands); i++ {
		if c.s.edges[c.cands[i].idx].ID == cur {
			ch := c.cands[i]
			copy(c.cands[1:i+1], c.cands[:i])
			c.cands[0] = ch
			return
		}
	}
	// The sticky edge is no longer eligible: move the prefix on.
	if _, err := m.store.Restick(ctx, key, cur, best, c.bp.sticky); err != nil {
		m.log.Debug("traffic: sticky rebind failed", "err", err)
	}
}

func prefixHash(property string, p netip.Prefix) uint64 {
	h := stableHash(property)
	a := p.Addr().As16()
	for i := 0; i < 16; i += 8 {
		var w uint64
		for _, b := range a[i : i+8] {
			w = w<<8 | uint64(b)
		}
		h = mix(h ^ w)
	}
	return mix(h ^ uint64(p.Bits()))
}

// escapePath percent-encodes what may not stand in a URL path, keeping
// slashes; it allocates only when something needs escaping.
func escapePath(p string) string {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("/-._~!$&'()*+,;=:@", c) >= 0) {
			return (&url.URL{Path: p}).EscapedPath()
		}
	}
	return p
}

// joinURL builds base/property/path with exactly one slash between parts;
// path is unescaped and gets escaped.
func joinURL(base, property, path string) string {
	var b strings.Builder
	b.Grow(len(base) + len(property) + len(path) + 2)
	b.WriteString(strings.TrimRight(base, "/"))
	if property != "" {
		b.WriteByte('/')
		b.WriteString(property)
	}
	path = strings.TrimLeft(path, "/")
	if path != "" || property != "" {
		b.WriteByte('/')
		b.WriteString(escapePath(path))
	}
	return b.String()
}

// Heartbeat records an edge's report. New edges become routable at the next
// sync (Run refreshes at once).
func (m *Manager) Heartbeat(ctx context.Context, e Edge) error {
	if err := e.Validate(); err != nil {
		return err
	}
	s := m.snap.Load()
	if _, known := s.byID[e.ID]; !known && len(s.edges) >= MaxEdges {
		return fmt.Errorf("%w: %d edges registered", ErrFull, MaxEdges)
	}
	if err := m.store.PutEdge(ctx, EdgeRecord{Edge: e, Seen: m.now()}); err != nil {
		return fmt.Errorf("traffic: storing heartbeat: %w", err)
	}
	// New edges and overload changes take effect at once on this node
	// rather than at the next sync.
	if i, known := s.byID[e.ID]; !known || s.edges[i].Load.Overloaded != e.Load.Overloaded {
		m.poke()
	}
	return nil
}

// DeleteEdge removes an edge from the registry.
func (m *Manager) DeleteEdge(ctx context.Context, id string) error {
	if _, ok := m.snap.Load().byID[id]; !ok {
		return fmt.Errorf("%w: %q", ErrUnknownEdge, id)
	}
	if err := m.store.DeleteEdge(ctx, id); err != nil {
		return err
	}
	return m.Refresh(ctx)
}

// Drain sets or clears the operator's drain flag on an edge: a drained edge
// gets no new clients. It takes effect on this node at once and on the
// others at their next sync.
func (m *Manager) Drain(ctx context.Context, id string, drained bool, reason string) error {
	if _, ok := m.snap.Load().byID[id]; !ok {
		return fmt.Errorf("%w: %q", ErrUnknownEdge, id)
	}
	if len(reason) > maxStringField {
		return fmt.Errorf("%w: reason longer than %d bytes", ErrInvalid, maxStringField)
	}
	f := Flag{}
	if drained {
		f = Flag{Drained: true, Reason: reason, At: m.now().UTC()}
	}
	if err := m.store.PutFlag(ctx, id, f); err != nil {
		return err
	}
	return m.Refresh(ctx)
}

// PutPolicy validates and stores a property's policy.
func (m *Manager) PutPolicy(ctx context.Context, p *Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	s := m.snap.Load()
	if _, known := s.policies[p.Name]; !known && len(s.policies) >= MaxPolicies {
		return fmt.Errorf("%w: %d properties", ErrFull, MaxPolicies)
	}
	doc, err := json.Marshal(p)
	if err != nil {
		return err
	}
	if err := m.store.PutPolicy(ctx, p.Name, doc); err != nil {
		return err
	}
	return m.Refresh(ctx)
}

// DeletePolicy removes a property.
func (m *Manager) DeletePolicy(ctx context.Context, name string) error {
	if _, ok := m.snap.Load().policies[name]; !ok {
		return fmt.Errorf("%w: %q", ErrUnknownProperty, name)
	}
	if err := m.store.DeletePolicy(ctx, name); err != nil {
		return err
	}
	return m.Refresh(ctx)
}

// Policy returns a property's policy.
func (m *Manager) Policy(name string) (*Policy, error) {
	bp := m.snap.Load().policies[name]
	if bp == nil {
		return nil, fmt.Errorf("%w: %q", ErrUnknownProperty, name)
	}
	return bp.p, nil
}

// Properties returns the names of every property, sorted.
func (m *Manager) Properties() []string {
	s := m.snap.Load()
	out := make([]string, 0, len(s.policies))
	for k := range s.policies {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// EdgeStatus is an edge as the operator API lists it.
type EdgeStatus struct {
	Edge
	// Status is healthy, down (voted), stale (no heartbeat), drained or
	// overloaded.
	Status      string    `json:"status"`
	Healthy     bool      `json:"healthy"`
	Seen        time.Time `json:"seen"`
	Utilization float64   `json:"utilization"`
	CostNow     float64   `json:"cost_now"`
	VotesUp     int       `json:"votes_up"`
	VotesDown   int       `json:"votes_down"`
	Flag        Flag      `json:"flag"`
}

// Edges returns the status of every registered edge, sorted by ID.
func (m *Manager) Edges() []EdgeStatus {
	s := m.snap.Load()
	out := make([]EdgeStatus, len(s.edges))
	for i, e := range s.edges {
		out[i] = EdgeStatus{Edge: e.Edge, Status: e.status, Healthy: e.healthy, Seen: e.seen,
			Utilization: e.util, CostNow: e.cost, VotesUp: e.votesUp, VotesDown: e.votesDown, Flag: e.flag}
	}
	return out
}
