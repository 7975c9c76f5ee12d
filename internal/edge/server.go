// Package edge is the edge node: an HTTP caching reverse proxy for
// properties (tenants). It implements an RFC 9111 shared cache with
// stale-while-revalidate, stale-if-error, CDN-Cache-Control,
// Surrogate-Control and Cache-Status; request collapsing; sliced fills of
// large objects so a range fetches only the slices it needs; purges by URL,
// prefix and surrogate key through a per-property admin API; HLS/DASH
// defaults; per-client and per-prefix token buckets, connection caps and
// size/time limits; a JSON access log; Prometheus metrics; and W3C trace
// context propagation.
//
// A Server is safe for concurrent use. Several Servers may live in one
// process: nothing is global.
package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"avalanche/internal/cachestore"
	"avalanche/internal/httpcache"
)

// Server is an edge node.
type Server struct {
	node      string
	store     cachestore.Store
	ownStore  bool
	slice     int64
	log       *slog.Logger
	met       *metrics
	now       func() time.Time
	transport *http.Transport
	flights   flightGroup
	decodeFn  func(*cachestore.Object) any
	state     atomic.Pointer[state]
	hopts     httpcache.Options
	originTO  time.Duration

	bgCtx    context.Context
	bgCancel context.CancelFunc
	bg       sync.WaitGroup

	local       atomic.Pointer[http.ServeMux] // endpoints the edge answers itself
	localRoutes []localRoute                  // what local holds; guarded by mu

	mu      sync.Mutex
	servers []*http.Server
}

// HandleLocal mounts h on client traffic for pattern (http.ServeMux
// syntax): such requests are answered by h, not proxied to a property's
// origin. The swarm super-seed mounts GET /v1/swarm/{id} this way.
func (s *Server) HandleLocal(pattern string, h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := http.NewServeMux()
	if old := s.local.Load(); old != nil {
		for _, e := range s.localRoutes {
			m.Handle(e.pattern, e.h)
		}
	}
	m.Handle(pattern, h)
	s.localRoutes = append(s.localRoutes, localRoute{pattern, h})
	s.local.Store(m)
}

type localRoute struct {
	pattern string
	h       http.Handler
}

// state is everything a reload replaces, swapped atomically so in-flight
// requests keep the state they started with.
type state struct {
	props      []*property
	byName     map[string]*property
	limits     Limits
	clientLim  *keyedLimiter
	prefixLim  *keyedLimiter
	adminToken string
	accessLog  *AccessLog
}

type property struct {
	Property
	origin *url.URL
	lim    *keyedLimiter
	hosts  []string // lowercased; "*" matches any, "*.x" any subdomain
}

// New builds a Server from cfg.
func New(cfg Config) (*Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{node: cfg.NodeID, store: cfg.Store, slice: cfg.SliceSize, log: cfg.Logger, now: cfg.Now, originTO: cfg.OriginTimeout}
	if s.node == "" {
		s.node = "edge"
	}
	if s.store == nil {
		s.store = cachestore.NewMemory(cachestore.MemoryConfig{})
		s.ownStore = true
	}
	if s.slice == 0 {
		s.slice = 2 << 20
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.originTO == 0 {
		s.originTO = 30 * time.Second
	}
	s.hopts = httpcache.Options{SurrogateTarget: "avalanche"}
	s.decodeFn = s.decodeMeta
	s.met = newMetrics(s.store.Stats, s.node)
	s.transport = &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: s.originTO,
		DisableCompression:    true,
		ForceAttemptHTTP2:     true,
	}
	s.bgCtx, s.bgCancel = context.WithCancel(context.Background())
	s.flights.m = map[string]*flight{}
	if err := s.apply(cfg); err != nil {
		return nil, err
	}
	return s, nil
}

// apply builds a state from cfg and swaps it in.
func (s *Server) apply(cfg Config) error {
	lim := cfg.Limits.withDefaults()
	st := &state{byName: map[string]*property{}, limits: lim, adminToken: cfg.AdminToken, accessLog: cfg.AccessLog,
		clientLim: newKeyedLimiter(lim.ClientRate, lim.ClientBurst, lim.MaxTrackedClients),
		prefixLim: newKeyedLimiter(lim.PrefixRate, lim.PrefixBurst, lim.MaxTrackedClients)}
	if old := s.state.Load(); old != nil && old.limits == lim {
		st.clientLim, st.prefixLim = old.clientLim, old.prefixLim // keep buckets across reloads
	}
	for _, p := range cfg.Properties {
		u, err := url.Parse(p.Origin)
		if err != nil {
			return err
		}
		pp := &property{Property: p, origin: u}
		for _, h := range p.Hosts {
			pp.hosts = append(pp.hosts, strings.ToLower(h))
		}
		if len(pp.hosts) == 0 {
			pp.hosts = []string{"*"}
		}
		if p.ClientRate > 0 {
			b := p.ClientBurst
			if b <= 0 {
				b = int(2 * p.ClientRate)
			}
			pp.lim = newKeyedLimiter(p.ClientRate, b, lim.MaxTrackedClients)
		}
		if pp.PlaylistTTL == 0 {
			pp.PlaylistTTL = 2 * time.Second
		}
		if pp.SegmentTTL == 0 {
			pp.SegmentTTL = 24 * time.Hour
		}
		s.store.SetGroupBudget(p.Name, p.CacheBytes)
		st.props = append(st.props, pp)
		st.byName[p.Name] = pp
	}
	// most specific first: longer path prefix, then exact host before wildcard
	sort.SliceStable(st.props, func(i, j int) bool {
		return len(st.props[i].PathPrefix) > len(st.props[j].PathPrefix)
	})
	s.state.Store(st)
	return nil
}

// Reload replaces properties, tokens and limits. Listeners, connections,
// the cache and requests in flight are untouched.
func (s *Server) Reload(cfg Config) error {
	if err := cfg.validate(); err != nil {
		return err
	}
	return s.apply(cfg)
}

// match finds the property for a host (lowercase, no port) and path.
func (st *state) match(host, path string) *property {
	var wild *property
	for _, p := range st.props {
		if p.PathPrefix != "" && !strings.HasPrefix(path, p.PathPrefix) {
			continue
		}
		for _, h := range p.hosts {
			switch {
			case h == host:
				return p
			case h == "*" || strings.HasPrefix(h, "*.") && strings.HasSuffix(host, h[1:]):
				if wild == nil {
					wild = p
				}
			}
		}
	}
	return wild
}

// Handler returns the handler for client traffic.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

// HTTPServer returns an *http.Server for client traffic with the node's
// limits applied (header size, timeouts, HTTP/2 streams, h2c).
func (s *Server) HTTPServer() *http.Server {
	lim := s.state.Load().limits
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ConnContext:       withConnInfo,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		HTTP2:             &http.HTTP2Config{MaxConcurrentStreams: lim.MaxConcurrentStreams, MaxReadFrameSize: 1 << 20},
		Protocols:         new(http.Protocols),
	}
	hs.Protocols.SetHTTP1(true)
	hs.Protocols.SetHTTP2(true)
	hs.Protocols.SetUnencryptedHTTP2(true)
	return hs
}

// Serve serves client traffic on l until ctx ends, then shuts down
// gracefully. It applies the connection caps.
func (s *Server) Serve(ctx context.Context, l net.Listener) error {
	lim := s.state.Load().limits
	return s.serveOn(ctx, limitListener(l, lim.MaxConns, lim.MaxConnsPerIP, s.met.connReject.Inc), s.HTTPServer())
}

// ServeTLS serves client traffic over TLS on l (HTTP/2 negotiated by ALPN,
// with the same stream bound) until ctx ends. tc must carry certificates
// or a GetCertificate callback (which lets a reload swap certificates).
func (s *Server) ServeTLS(ctx context.Context, l net.Listener, tc *tls.Config) error {
	lim := s.state.Load().limits
	tc = tc.Clone()
	if tc.MinVersion == 0 {
		tc.MinVersion = tls.VersionTLS12
	}
	tc.NextProtos = []string{"h2", "http/1.1"}
	hs := s.HTTPServer()
	hs.TLSConfig = tc
	return s.serveOn(ctx, tls.NewListener(limitListener(l, lim.MaxConns, lim.MaxConnsPerIP, s.met.connReject.Inc), tc), hs)
}

// ServeAdmin serves the admin API, /healthz and /metrics on l until ctx
// ends.
func (s *Server) ServeAdmin(ctx context.Context, l net.Listener) error {
	hs := &http.Server{Handler: s.AdminHandler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 60 * time.Second, IdleTimeout: 60 * time.Second, MaxHeaderBytes: 16 << 10}
	return s.serveOn(ctx, limitListener(l, 256, 64, nil), hs)
}

func (s *Server) serveOn(ctx context.Context, l net.Listener, hs *http.Server) error {
	s.mu.Lock()
	s.servers = append(s.servers, hs)
	s.mu.Unlock()
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := hs.Shutdown(sctx)
	<-errc
	return err
}

// Close stops background work and releases the store if the Server made
// it. It does not close listeners given to Serve (cancel their context).
func (s *Server) Close() error {
	s.bgCancel()
	s.bg.Wait()
	s.transport.CloseIdleConnections()
	if s.ownStore {
		return s.store.Close()
	}
	return nil
}

// Store returns the cache the Server uses (for a later component that
// stores and serves published content through the same cache).
func (s *Server) Store() cachestore.Store { return s.store }

// flightGroup collapses concurrent work on one key: the first caller leads,
// the others wait for it to finish.
type flightGroup struct {
	mu sync.Mutex
	m  map[string]*flight
}

type flight struct {
	done chan struct{}
	err  error
}

func (g *flightGroup) begin(key string) (*flight, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if f := g.m[key]; f != nil {
		return f, false
	}
	f := &flight{done: make(chan struct{})}
	g.m[key] = f
	return f, true
}

func (g *flightGroup) end(key string, f *flight, err error) {
	g.mu.Lock()
	if g.m[key] == f {
		delete(g.m, key)
	}
	g.mu.Unlock()
	f.err = err
	close(f.done)
}

func (f *flight) wait(ctx context.Context) error {
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// connInfo is per-connection state for HTTP/1 handlers (which run one at
// a time on a connection).
type connInfo struct {
	writeDeadline time.Time // the write deadline last set on the connection
}

type connInfoKey struct{}

func withConnInfo(ctx context.Context, _ net.Conn) context.Context {
	return context.WithValue(ctx, connInfoKey{}, &connInfo{})
}

// armWrite makes sure a write deadline at most SlowClientTimeout away and
// at least half of it away is in force before the handler writes, so a
// client that stops reading is dropped. Re-arming a deadline costs runtime
// timer work on every request, so on HTTP/1 connections it is re-armed only
// when the previous one is more than half used; each HTTP/2 stream gets its
// own.
func (s *Server) armWrite(w http.ResponseWriter, r *http.Request, lim Limits, force bool) {
	now := time.Now()
	var ci *connInfo
	if r.ProtoMajor == 1 {
		ci, _ = r.Context().Value(connInfoKey{}).(*connInfo)
	}
	if ci != nil && !force && ci.writeDeadline.Sub(now) > lim.SlowClientTimeout/2 {
		return
	}
	d := now.Add(lim.SlowClientTimeout)
	if http.NewResponseController(w).SetWriteDeadline(d) == nil && ci != nil {
		ci.writeDeadline = d
	}
}

var (
	errUncacheable = errors.New("edge: response not stored")
	// errNotStored says a fill gave up before reading any of the body.
	errNotStored = errors.New("edge: response could not be stored")
)
