package tracker

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"time"

	"avalanche/internal/identity"
	"avalanche/internal/manifest"
)

// Store holds the tracker's state: who is in which swarm, who reported and
// banned whom, and per-swarm byte counters. The in-memory store (NewMemory)
// is the default; internal/tracker/redisstore shares the state between
// several control nodes. Both pass the conformance suite in
// internal/tracker/storetest.
//
// Every method takes the current time from the caller, so that expiry is
// decided by the tracker's clock and not the store's; implementations may
// use their own clocks only to collect garbage long after it matters.
// Implementations must be safe for concurrent use.
type Store interface {
	PeerStore
	BanStore
	StatsStore
}

// PeerStore keeps the latest record of every peer in every swarm.
type PeerStore interface {
	// Announce stores p as the latest record of p.ID in swarm c, replacing
	// any earlier one, and returns the record it replaced (found is false
	// when there was none). A record with p.Stopped set is kept (so that
	// its timestamp still guards against replays) but is no longer live.
	//
	// It fails with ErrStale, storing nothing, when the stored record's
	// Stamp is at or after p.Stamp, and with ErrBanned when p.ID is banned
	// from c at now. Checking and replacing are atomic.
	Announce(ctx context.Context, c manifest.ID, p Peer, now time.Time) (prev Peer, found bool, err error)

	// Get returns the stored record of id in c, live or not.
	Get(ctx context.Context, c manifest.ID, id identity.ID) (p Peer, found bool, err error)

	// Sample answers each query with up to q.N distinct live peers of
	// the group q.Group, chosen at random; the i-th result answers qs[i].
	// The order within a result is unspecified. Results may include the
	// caller; it is the caller's job to filter.
	Sample(ctx context.Context, c manifest.ID, now time.Time, qs []Query) ([][]Peer, error)
}

// BanStore keeps reports and bans.
type BanStore interface {
	// Report records that reporter reported offender in c until until:
	// offender is excluded from what reporter is handed out, and counts
	// towards a ban. It returns how many distinct reporters (peers and
	// infrastructure nodes) have live reports against offender. Reporting
	// twice does not count twice.
	Report(ctx context.Context, c manifest.ID, offender, reporter identity.ID, infra bool, until, now time.Time) (Tally, error)

	// Excluded returns the peers reporter has reported in c that are
	// still excluded at now.
	Excluded(ctx context.Context, c manifest.ID, reporter identity.ID, now time.Time) ([]identity.ID, error)

	// Ban bans id from swarm c until until: its record stops being live
	// and Announce refuses it with ErrBanned.
	Ban(ctx context.Context, c manifest.ID, id identity.ID, until, now time.Time) error
}

// StatsStore keeps per-swarm counters.
type StatsStore interface {
	// Add adds d to swarm c's counters and marks c active at now.
	Add(ctx context.Context, c manifest.ID, d Delta, now time.Time) error

	// Swarm returns c's statistics at now. An unknown swarm has zero
	// statistics and no error.
	Swarm(ctx context.Context, c manifest.ID, now time.Time) (SwarmStats, error)

	// Swarms lists the swarms with live peers or counters still retained
	// at now, in no particular order.
	Swarms(ctx context.Context, now time.Time) ([]manifest.ID, error)
}

// Errors a Store returns. Others (a dead Redis, say) are reported by the
// tracker as ErrUnavailable.
var (
	// ErrStale is returned by Announce for a timestamp that is not after
	// the stored one: a replay, or announces arriving out of order.
	ErrStale = errors.New("tracker: timestamp not after the previous announce")
	// ErrBanned is returned by Announce for a peer banned from the swarm.
	ErrBanned = errors.New("tracker: peer banned from swarm")
)

// Role says what kind of node announced.
type Role string

// Roles. Origins and edges are infrastructure: they are handed out as seeds
// of last resort in addition to the requested number of peers, and their
// reports weigh more.
const (
	RolePeer   Role = "peer"
	RoleSeed   Role = "seed"
	RoleOrigin Role = "origin"
	RoleEdge   Role = "edge"
)

// Valid reports whether r is one of the defined roles.
func (r Role) Valid() bool {
	switch r {
	case RolePeer, RoleSeed, RoleOrigin, RoleEdge:
		return true
	}
	return false
}

// Infra reports whether r is an infrastructure role (origin or edge).
func (r Role) Infra() bool { return r == RoleOrigin || r == RoleEdge }

// Bytes are cumulative byte counters. In an announce they are the peer's
// totals since it started; in SwarmStats they are the swarm's sums.
type Bytes struct {
	Uploaded   uint64 `json:"uploaded"`
	Downloaded uint64 `json:"downloaded"`
	FromOrigin uint64 `json:"origin"`
	FromEdge   uint64 `json:"edge"`
	FromPeers  uint64 `json:"peers"`
}

// Add returns b + o.
func (b Bytes) Add(o Bytes) Bytes {
	return Bytes{b.Uploaded + o.Uploaded, b.Downloaded + o.Downloaded, b.FromOrigin + o.FromOrigin, b.FromEdge + o.FromEdge, b.FromPeers + o.FromPeers}
}

// Since returns the growth of the cumulative counters b over prev, field by
// field. A field that went down is taken as a restart and counts whole.
func (b Bytes) Since(prev Bytes) Bytes {
	d := func(n, p uint64) uint64 {
		if n >= p {
			return n - p
		}
		return n
	}
	return Bytes{d(b.Uploaded, prev.Uploaded), d(b.Downloaded, prev.Downloaded), d(b.FromOrigin, prev.FromOrigin), d(b.FromEdge, prev.FromEdge), d(b.FromPeers, prev.FromPeers)}
}

// Peer is the record of one node in one swarm: what it last announced and
// where the tracker saw it.
type Peer struct {
	ID identity.ID
	// Addr is where other peers reach it. Port 0 means the node takes no
	// incoming connections: it counts in statistics but is never handed out.
	Addr   netip.AddrPort
	Role   Role
	ISP    string // ISP name from the network map, "" when unknown
	ASN    uint32 // autonomous system number, 0 when unknown
	Region string // region from the network map, "" when unknown
	Left   uint64 // bytes still missing; 0 means complete
	Bytes  Bytes  // the node's cumulative counters
	// Stamp is the announce's timestamp in Unix microseconds. A store
	// accepts only increasing stamps per peer and swarm.
	Stamp int64
	// Stopped marks a node that said goodbye.
	Stopped bool
	// Expires is when the record stops being live unless refreshed.
	Expires time.Time
	// Keep is when the record may be forgotten (at or after Expires); until
	// then it guards against replays and carries the counters byte deltas
	// are computed from.
	Keep time.Time
}

// Live reports whether p counts as present at now.
func (p Peer) Live(now time.Time) bool { return !p.Stopped && now.Before(p.Expires) }

// Complete reports whether p has the whole content.
func (p Peer) Complete() bool { return p.Left == 0 }

// ISPKey returns the key peers on the same network share: "AS<n>" when the
// ASN is known, else the ISP name, else "".
func (p Peer) ISPKey() string { return ispKey(p.ISP, p.ASN) }

func ispKey(isp string, asn uint32) string {
	if asn != 0 {
		return "AS" + strconv.FormatUint(uint64(asn), 10)
	}
	return isp
}

// Groups returns the sampling groups p belongs to while live: infrastructure
// nodes belong to GroupInfra only; other nodes that accept connections
// belong to GroupPool and to their ISP and region groups; nodes with port 0
// belong to none.
func (p Peer) Groups() []Group {
	if p.Role.Infra() {
		return []Group{GroupInfra}
	}
	if p.Addr.Port() == 0 {
		return nil
	}
	g := []Group{GroupPool}
	if k := p.ISPKey(); k != "" {
		g = append(g, ISPGroup(k))
	}
	if p.Region != "" {
		g = append(g, RegionGroup(p.Region))
	}
	return g
}

// Group names a set of peers in a swarm that a Store can sample from.
type Group string

// Groups every swarm has.
const (
	// GroupPool holds every live non-infrastructure peer that accepts
	// connections.
	GroupPool Group = "pool"
	// GroupInfra holds the live origins and edges.
	GroupInfra Group = "infra"
)

// ISPGroup returns the group of pool peers whose ISPKey is key.
func ISPGroup(key string) Group { return Group("isp:" + key) }

// RegionGroup returns the group of pool peers in region.
func RegionGroup(region string) Group { return Group("region:" + region) }

// Query asks a Store for up to N random members of Group.
type Query struct {
	Group Group
	N     int
}

// Tally counts the distinct reporters with live reports against a peer.
type Tally struct {
	Peers int // reporters that are ordinary peers
	Infra int // reporters that are origins or edges
}

// Delta is what one announce adds to its swarm's counters.
type Delta struct {
	Bytes     Bytes
	Completed int64 // downloads finished
	Announces int64
}

// SwarmStats describes one swarm.
type SwarmStats struct {
	Content manifest.ID
	// Size is the number of live peers and seeds (not origins or edges).
	Size int
	// Seeds is how many of those have the whole content.
	Seeds int
	// Origins and Edges count live infrastructure nodes.
	Origins, Edges int
	// Completed counts downloads finished in this swarm.
	Completed int64
	// Announces counts accepted announces.
	Announces int64
	// Banned counts peers currently banned from the swarm.
	Banned int
	// Bytes sums what the swarm's nodes reported, by source.
	Bytes Bytes
}
