// Package tracker implements Avalanche's tracker: it knows which nodes are in
// which swarm and hands each announcing peer a random, locality-biased set of
// other peers, with the origin and nearby edges appended as seeds of last
// resort.
//
// The tracker speaks JSON over HTTP (docs/tracker.md): peers POST signed
// announces to /v1/announce and reports of misbehaving peers to /v1/report,
// operators GET /v1/stats. Announces and reports are signed by the sender's
// ed25519 node key and carry a timestamp, so they cannot be forged for
// another peer ID or replayed. Client is the peers' side of that API.
//
// Hand-out follows the lesson of Kraken and Dragonfly that locality must
// bias, never isolate: of N peers, by default 60 % come from the requester's
// ISP, 20 % from its region and at least 20 % from the whole swarm, each
// tier drawn at random, and whatever a tier cannot fill falls through to the
// next.
//
// State lives behind Store; Memory is the default and
// internal/tracker/redisstore shares state between control nodes.
package tracker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/netip"
	"sync/atomic"
	"time"

	"avalanche/internal/identity"
	"avalanche/internal/manifest"
	"avalanche/internal/netmap"
)

// Locator maps an address to where it is on the network. *netmap.Map
// implements it, and so does a holder that reloads the map.
type Locator interface {
	Lookup(netip.Addr) (netmap.Location, bool)
}

// Config configures a Tracker. The zero value works: an in-memory store,
// the built-in network map, 5 s announce interval, 30 peers per hand-out.
// A field's zero value means its documented default.
type Config struct {
	// Store holds the state. Default: NewMemory(MemoryConfig{}).
	Store Store
	// Map locates peers by address. Default: netmap.Default().
	Map Locator
	// Logger receives the tracker's logs. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time

	// Interval is how often peers are asked to announce. Default 5 s.
	Interval time.Duration
	// PeerTTL is how long a peer stays in its swarm without announcing.
	// Default 3 × Interval.
	PeerTTL time.Duration
	// Retain is how long a departed peer's last record is kept, to refuse
	// replays and to compute byte counts from its next announce. It is
	// raised to 2 × MaxClockSkew and to PeerTTL if lower. Default 10 min.
	Retain time.Duration
	// MaxClockSkew is how far a request's timestamp may be from the
	// tracker's clock. Default 60 s.
	MaxClockSkew time.Duration

	// DefaultWant is the number of peers handed out when an announce asks
	// for none. Default 30.
	DefaultWant int
	// MaxWant caps the number of peers handed out. Default 200.
	MaxWant int
	// ISPShare is the share of a hand-out drawn from the requester's ISP.
	// Default 0.6; negative means none.
	ISPShare float64
	// RegionShare is the share drawn from the requester's region (other
	// ISPs). Default 0.2; negative means none. The rest, which must be at
	// least MinRandomShare, is drawn from the whole swarm.
	RegionShare float64
	// MaxEdges is how many edges are appended to a hand-out, nearest
	// first, besides every origin. Default 4; negative means none.
	MaxEdges int

	// Infrastructure lists the node IDs that may announce as origin or
	// edge. Default (empty): nodes announcing from a loopback address,
	// which suits a single machine; set it on any real network.
	Infrastructure []identity.ID

	// BanReporters is how many distinct reporters (of any role) ban a peer
	// from a swarm. Default 2; negative means reports by peers never ban.
	BanReporters int
	// BanInfraReporters is how many distinct origin or edge reporters ban
	// a peer. Default 1; negative means never.
	BanInfraReporters int
	// BanDuration is how long bans and reports last. Default 24 h.
	BanDuration time.Duration

	// TrustedProxies lists the addresses of reverse proxies in front of
	// the tracker. Only for requests arriving from one of them is the
	// peer's address taken from X-Forwarded-For (the rightmost address
	// that is not itself a trusted proxy). Default: none; the address is
	// always the TCP source address.
	TrustedProxies []netip.Prefix

	// AddrRate and AddrBurst limit requests per source address (IPv6 per
	// /64), in requests per second. Defaults 100 and 200; negative rate
	// means unlimited.
	AddrRate  float64
	AddrBurst int
	// PeerRate and PeerBurst limit signed requests per peer ID. Defaults
	// 5 and 20; negative rate means unlimited.
	PeerRate  float64
	PeerBurst int

	// KnownContent, when set, is asked whether a content ID may have a
	// swarm; announces for others fail with ErrUnknownContent. Default:
	// every content ID is accepted.
	KnownContent func(ctx context.Context, id manifest.ID) (bool, error)
}

// MinRandomShare is the least share of every hand-out drawn from the whole
// swarm regardless of locality.
const MinRandomShare = 0.2

// Limits on requests.
const (
	// MaxBodySize bounds announce and report bodies.
	MaxBodySize = 4 << 10
	// MaxReasonLen bounds a report's reason.
	MaxReasonLen = 256
	// maxInfraSample bounds how many infrastructure nodes are considered
	// per hand-out.
	maxInfraSample = 256
)

// ErrConfig is returned (wrapped) by New for an invalid Config.
var ErrConfig = errors.New("tracker: invalid config")

// Tracker is the tracker service. It is safe for concurrent use; its
// Handler serves the HTTP API.
type Tracker struct {
	cfg         Config
	store       Store
	loc         Locator
	log         *slog.Logger
	now         func() time.Time
	ispShare    float64
	regionShare float64
	infra       map[identity.ID]bool
	addrLimit   *limiter[netip.Prefix]
	peerLimit   *limiter[identity.ID]
	ctr         counters
}

// New returns a Tracker for cfg.
func New(cfg Config) (*Tracker, error) {
	if cfg.Store == nil {
		cfg.Store = NewMemory(MemoryConfig{})
	}
	if cfg.Map == nil {
		cfg.Map = netmap.Default()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.PeerTTL <= 0 {
		cfg.PeerTTL = 3 * cfg.Interval
	}
	if cfg.MaxClockSkew <= 0 {
		cfg.MaxClockSkew = time.Minute
	}
	if cfg.Retain <= 0 {
		cfg.Retain = 10 * time.Minute
	}
	cfg.Retain = max(cfg.Retain, 2*cfg.MaxClockSkew, cfg.PeerTTL)
	if cfg.DefaultWant <= 0 {
		cfg.DefaultWant = 30
	}
	if cfg.MaxWant <= 0 {
		cfg.MaxWant = 200
	}
	cfg.DefaultWant = min(cfg.DefaultWant, cfg.MaxWant)
	if cfg.MaxEdges == 0 {
		cfg.MaxEdges = 4
	}
	if cfg.BanReporters == 0 {
		cfg.BanReporters = 2
	}
	if cfg.BanInfraReporters == 0 {
		cfg.BanInfraReporters = 1
	}
	if cfg.BanDuration <= 0 {
		cfg.BanDuration = 24 * time.Hour
	}
	if cfg.AddrRate == 0 {
		cfg.AddrRate = 100
	}
	if cfg.AddrBurst <= 0 {
		cfg.AddrBurst = 200
	}
	if cfg.PeerRate == 0 {
		cfg.PeerRate = 5
	}
	if cfg.PeerBurst <= 0 {
		cfg.PeerBurst = 20
	}
	share := func(v, def float64) float64 {
		switch {
		case v == 0:
			return def
		case v < 0:
			return 0
		}
		return v
	}
	isp, region := share(cfg.ISPShare, 0.6), share(cfg.RegionShare, 0.2)
	if math.IsNaN(isp) || math.IsNaN(region) || 1-isp-region < MinRandomShare-1e-9 {
		return nil, fmt.Errorf("%w: ISPShare %.2f + RegionShare %.2f leave less than %.0f%% to random peers", ErrConfig, isp, region, 100*MinRandomShare)
	}
	t := &Tracker{
		cfg:         cfg,
		store:       cfg.Store,
		loc:         cfg.Map,
		log:         cfg.Logger,
		now:         cfg.Now,
		ispShare:    isp,
		regionShare: region,
		infra:       make(map[identity.ID]bool, len(cfg.Infrastructure)),
		addrLimit:   newLimiter[netip.Prefix](cfg.AddrRate, cfg.AddrBurst),
		peerLimit:   newLimiter[identity.ID](cfg.PeerRate, cfg.PeerBurst),
	}
	for _, id := range cfg.Infrastructure {
		t.infra[id] = true
	}
	return t, nil
}

// Interval returns the announce interval handed to peers.
func (t *Tracker) Interval() time.Duration { return t.cfg.Interval }

// mayBeInfra reports whether the node id announcing from src may claim an
// origin or edge role.
func (t *Tracker) mayBeInfra(id identity.ID, src netip.Addr) bool {
	if len(t.infra) == 0 {
		return src.IsLoopback()
	}
	return t.infra[id]
}

// Counters are the tracker's own event counts since it started. They are
// per process, not shared through the Store.
type Counters struct {
	Announces     int64 `json:"announces"`      // accepted announces
	Reports       int64 `json:"reports"`        // accepted reports
	Bans          int64 `json:"bans"`           // bans imposed
	PeersHanded   int64 `json:"peers_handed"`   // peer entries handed out
	BadRequests   int64 `json:"bad_requests"`   // malformed requests
	Unauthorized  int64 `json:"unauthorized"`   // bad signatures or timestamps
	Forbidden     int64 `json:"forbidden"`      // banned peers, disallowed roles
	RateLimited   int64 `json:"rate_limited"`   // requests refused by rate limits
	StoreFailures int64 `json:"store_failures"` // errors from the Store
}

type counters struct {
	announces, reports, bans, handed                          atomic.Int64
	badRequests, unauthorized, forbidden, limited, storeFails atomic.Int64
}

// Counters returns a snapshot of the tracker's counters.
func (t *Tracker) Counters() Counters {
	c := &t.ctr
	return Counters{
		Announces: c.announces.Load(), Reports: c.reports.Load(), Bans: c.bans.Load(),
		PeersHanded: c.handed.Load(), BadRequests: c.badRequests.Load(),
		Unauthorized: c.unauthorized.Load(), Forbidden: c.forbidden.Load(),
		RateLimited: c.limited.Load(), StoreFailures: c.storeFails.Load(),
	}
}

// Stats is the tracker's view of all swarms.
type Stats struct {
	Swarms   []SwarmStats
	Totals   SwarmStats // sums over Swarms; Content is zero
	Counters Counters
}

// Stats returns the statistics of every swarm the store still knows.
func (t *Tracker) Stats(ctx context.Context) (Stats, error) {
	now := t.now()
	ids, err := t.store.Swarms(ctx, now)
	if err != nil {
		return Stats{}, t.storeErr("swarms", err)
	}
	st := Stats{Counters: t.Counters()}
	for _, c := range ids {
		s, err := t.store.Swarm(ctx, c, now)
		if err != nil {
			return Stats{}, t.storeErr("swarm stats", err)
		}
		st.Swarms = append(st.Swarms, s)
		st.Totals = addStats(st.Totals, s)
	}
	sortSwarms(st.Swarms)
	return st, nil
}

// SwarmStats returns the statistics of one swarm; an unknown swarm has
// zero statistics.
func (t *Tracker) SwarmStats(ctx context.Context, c manifest.ID) (SwarmStats, error) {
	s, err := t.store.Swarm(ctx, c, t.now())
	if err != nil {
		return SwarmStats{}, t.storeErr("swarm stats", err)
	}
	return s, nil
}

func addStats(a, b SwarmStats) SwarmStats {
	a.Size += b.Size
	a.Seeds += b.Seeds
	a.Origins += b.Origins
	a.Edges += b.Edges
	a.Completed += b.Completed
	a.Announces += b.Announces
	a.Banned += b.Banned
	a.Bytes = a.Bytes.Add(b.Bytes)
	return a
}

// storeErr wraps a Store failure as ErrUnavailable and counts it.
func (t *Tracker) storeErr(op string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	t.ctr.storeFails.Add(1)
	t.log.Warn("tracker store failed", "op", op, "err", err)
	return fmt.Errorf("%w: %s: %v", ErrUnavailable, op, err)
}
