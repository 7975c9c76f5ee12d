// Package redisstore is a tracker.Store kept in Redis, so that several
// control nodes behind one name share their swarms, reports and bans.
//
// Key layout (P is Config.Prefix, C a content ID in hex; every key of a
// swarm carries the hash tag {C}, so a swarm lives in one Redis Cluster
// slot and its Lua scripts touch one slot only):
//
//	P{C}:rec:<peer>      string  the peer's latest record (JSON), expires with Peer.Keep
//	P{C}:live            zset    peer → Expires (Unix µs): records not stopped or banned
//	P{C}:g:<group>       zset    peer → Expires (Unix µs): sampling index per tracker.Group
//	                             (g:pool, g:infra, g:isp:<key>, g:region:<name>)
//	P{C}:ban             zset    peer → ban end (Unix µs)
//	P{C}:rep:<offender>  zset    "p:<reporter>" or "i:<reporter>" → report end (Unix µs)
//	P{C}:excl:<reporter> zset    offender → exclusion end (Unix µs)
//	P{C}:ctr             hash    uploaded, downloaded, origin, edge, peers, completed, announces
//	Pswarms              zset    C → retained until (Unix µs)
//
// The record key is the truth; the sorted sets are indexes that may hold
// stale members (a peer that moved ISP, stopped or was banned), which are
// filtered out on reading and purged by score. Scores are compared with the
// caller's clock; Redis key TTLs only collect garbage and are set
// generously.
package redisstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"avalanche/internal/identity"
	"avalanche/internal/manifest"
	"avalanche/internal/tracker"
)

// Config configures a Store.
type Config struct {
	// Client is the Redis connection (a *redis.Client, *redis.ClusterClient
	// or failover client). Required. The Store does not close it.
	Client redis.UniversalClient
	// Prefix starts every key. Default "avalanche:tracker:".
	Prefix string
	// Retention is how long a swarm's counters outlive its last announce.
	// Default 1 h.
	Retention time.Duration
}

// Store is a tracker.Store in Redis. It is safe for concurrent use.
type Store struct {
	rdb       redis.UniversalClient
	prefix    string
	retention time.Duration
}

var _ tracker.Store = (*Store)(nil)

// New returns a Store for cfg. It does not contact Redis.
func New(cfg Config) (*Store, error) {
	if cfg.Client == nil {
		return nil, errors.New("redisstore: no Redis client")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "avalanche:tracker:"
	}
	if cfg.Retention <= 0 {
		cfg.Retention = time.Hour
	}
	return &Store{rdb: cfg.Client, prefix: cfg.Prefix, retention: cfg.Retention}, nil
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisstore: %w", err)
	}
	return nil
}

func (s *Store) key(c manifest.ID, parts ...string) string {
	return s.prefix + "{" + c.String() + "}:" + strings.Join(parts, ":")
}

func (s *Store) recKey(c manifest.ID, id identity.ID) string { return s.key(c, "rec", id.String()) }
func (s *Store) groupKey(c manifest.ID, g tracker.Group) string {
	return s.key(c, "g", string(g))
}
func (s *Store) swarmsKey() string { return s.prefix + "swarms" }

// micros returns t as a sorted-set score.
func micros(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

// px returns the milliseconds from now to t for a key TTL, at least 1 s.
func px(t, now time.Time) int64 { return max(t.Sub(now).Milliseconds(), 1000) }

// record is a Peer as stored in P{C}:rec:<peer>. "ts" must stay a plain
// integer field: the announce script reads it.
type record struct {
	ID         string `json:"id"`
	Addr       string `json:"addr"`
	Role       string `json:"role"`
	ISP        string `json:"isp,omitempty"`
	ASN        uint32 `json:"asn,omitempty"`
	Region     string `json:"region,omitempty"`
	Left       uint64 `json:"left"`
	Uploaded   uint64 `json:"up,omitempty"`
	Downloaded uint64 `json:"down,omitempty"`
	FromOrigin uint64 `json:"origin,omitempty"`
	FromEdge   uint64 `json:"edge,omitempty"`
	FromPeers  uint64 `json:"peers,omitempty"`
	TS         int64  `json:"ts"`
	Stopped    bool   `json:"stopped,omitempty"`
	Expires    int64  `json:"exp"`
	Keep       int64  `json:"keep"`
}

func encode(p tracker.Peer) ([]byte, error) {
	return json.Marshal(record{
		ID: p.ID.String(), Addr: p.Addr.String(), Role: string(p.Role),
		ISP: p.ISP, ASN: p.ASN, Region: p.Region, Left: p.Left,
		Uploaded: p.Bytes.Uploaded, Downloaded: p.Bytes.Downloaded,
		FromOrigin: p.Bytes.FromOrigin, FromEdge: p.Bytes.FromEdge, FromPeers: p.Bytes.FromPeers,
		TS: p.Stamp, Stopped: p.Stopped, Expires: p.Expires.UnixMicro(), Keep: p.Keep.UnixMicro(),
	})
}

func decode(b []byte) (tracker.Peer, error) {
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return tracker.Peer{}, fmt.Errorf("redisstore: bad record: %w", err)
	}
	id, err := identity.ParseID(r.ID)
	if err != nil {
		return tracker.Peer{}, fmt.Errorf("redisstore: bad record: %w", err)
	}
	addr, err := netip.ParseAddrPort(r.Addr)
	if err != nil {
		return tracker.Peer{}, fmt.Errorf("redisstore: bad record: %w", err)
	}
	return tracker.Peer{
		ID: id, Addr: addr, Role: tracker.Role(r.Role),
		ISP: r.ISP, ASN: r.ASN, Region: r.Region, Left: r.Left,
		Bytes: tracker.Bytes{Uploaded: r.Uploaded, Downloaded: r.Downloaded, FromOrigin: r.FromOrigin, FromEdge: r.FromEdge, FromPeers: r.FromPeers},
		Stamp: r.TS, Stopped: r.Stopped,
		Expires: time.UnixMicro(r.Expires).UTC(), Keep: time.UnixMicro(r.Keep).UTC(),
	}, nil
}

// announceScript checks the ban and the timestamp, then stores the record
// and indexes it.
//
// KEYS: rec, ban, live, group keys...
// ARGV: peer, stamp, now µs, record, record px, expires µs, live (1/0), index px
var announceScript = redis.NewScript(`
local b = redis.call('ZSCORE', KEYS[2], ARGV[1])
if b and tonumber(b) > tonumber(ARGV[3]) then return {'banned'} end
local old = redis.call('GET', KEYS[1])
if old then
  local o = cjson.decode(old)
  if tonumber(o.ts) >= tonumber(ARGV[2]) then return {'stale'} end
end
redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[5])
if ARGV[7] == '1' then
  for i = 3, #KEYS do
    redis.call('ZADD', KEYS[i], ARGV[6], ARGV[1])
    redis.call('PEXPIRE', KEYS[i], ARGV[8])
  end
else
  redis.call('ZREM', KEYS[3], ARGV[1])
end
return {'ok', old or ''}
`)

// Announce implements tracker.PeerStore.
func (s *Store) Announce(ctx context.Context, c manifest.ID, p tracker.Peer, now time.Time) (tracker.Peer, bool, error) {
	b, err := encode(p)
	if err != nil {
		return tracker.Peer{}, false, err
	}
	keys := []string{s.recKey(c, p.ID), s.key(c, "ban"), s.key(c, "live")}
	live := "0"
	if p.Live(now) {
		live = "1"
		for _, g := range p.Groups() {
			keys = append(keys, s.groupKey(c, g))
		}
	}
	res, err := announceScript.Run(ctx, s.rdb, keys,
		p.ID.String(), p.Stamp, now.UnixMicro(), b, px(p.Keep, now), p.Expires.UnixMicro(), live, px(p.Keep, now)).StringSlice()
	if err != nil {
		return tracker.Peer{}, false, fmt.Errorf("redisstore: announce: %w", err)
	}
	switch {
	case len(res) > 0 && res[0] == "banned":
		return tracker.Peer{}, false, tracker.ErrBanned
	case len(res) > 0 && res[0] == "stale":
		return tracker.Peer{}, false, tracker.ErrStale
	case len(res) != 2 || res[0] != "ok":
		return tracker.Peer{}, false, fmt.Errorf("redisstore: announce: unexpected reply %q", res)
	case res[1] == "":
		return tracker.Peer{}, false, nil
	}
	prev, err := decode([]byte(res[1]))
	if err != nil {
		return tracker.Peer{}, false, err
	}
	return prev, true, nil
}

// Get implements tracker.PeerStore.
func (s *Store) Get(ctx context.Context, c manifest.ID, id identity.ID) (tracker.Peer, bool, error) {
	b, err := s.rdb.Get(ctx, s.recKey(c, id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return tracker.Peer{}, false, nil
	}
	if err != nil {
		return tracker.Peer{}, false, fmt.Errorf("redisstore: get: %w", err)
	}
	p, err := decode(b)
	if err != nil {
		return tracker.Peer{}, false, err
	}
	return p, true, nil
}

// Sample implements tracker.PeerStore. For each query it purges expired
// index members, draws with ZRANDMEMBER, then reads the records and keeps
// those that are live and still belong to the group.
func (s *Store) Sample(ctx context.Context, c manifest.ID, now time.Time, qs []tracker.Query) ([][]tracker.Peer, error) {
	out := make([][]tracker.Peer, len(qs))
	pipe := s.rdb.Pipeline()
	draws := make([]*redis.StringSliceCmd, len(qs))
	nowScore := micros(now)
	for i, q := range qs {
		if q.N <= 0 {
			continue
		}
		k := s.groupKey(c, q.Group)
		pipe.ZRemRangeByScore(ctx, k, "-inf", nowScore)
		draws[i] = pipe.ZRandMember(ctx, k, q.N)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redisstore: sample: %w", err)
	}
	var want []string
	seen := map[string]bool{}
	for _, d := range draws {
		if d == nil {
			continue
		}
		for _, id := range d.Val() {
			if !seen[id] {
				seen[id] = true
				want = append(want, id)
			}
		}
	}
	recs, err := s.records(ctx, c, want)
	if err != nil {
		return nil, err
	}
	for i, d := range draws {
		if d == nil {
			continue
		}
		for _, id := range d.Val() {
			p, ok := recs[id]
			if ok && p.Live(now) && slices.Contains(p.Groups(), qs[i].Group) {
				out[i] = append(out[i], p)
			}
		}
	}
	return out, nil
}

// records reads the records of the hex peer IDs ids; missing ones are
// absent from the result.
func (s *Store) records(ctx context.Context, c manifest.ID, ids []string) (map[string]tracker.Peer, error) {
	out := make(map[string]tracker.Peer, len(ids))
	const chunk = 500
	for len(ids) > 0 {
		n := min(len(ids), chunk)
		keys := make([]string, n)
		for i, id := range ids[:n] {
			keys[i] = s.key(c, "rec", id)
		}
		vals, err := s.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, fmt.Errorf("redisstore: read records: %w", err)
		}
		for i, v := range vals {
			str, ok := v.(string)
			if !ok {
				continue
			}
			p, err := decode([]byte(str))
			if err != nil {
				return nil, err
			}
			out[ids[i]] = p
		}
		ids = ids[n:]
	}
	return out, nil
}

// reportScript records a report and returns the tally.
//
// KEYS: rep:<offender>, excl:<reporter>
// ARGV: tagged reporter, until µs, now µs, offender, px, the reporter's other tag
var reportScript = redis.NewScript(`
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
redis.call('ZREM', KEYS[1], ARGV[6])
redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
redis.call('ZADD', KEYS[2], 'GT', ARGV[2], ARGV[4])
redis.call('PEXPIRE', KEYS[2], ARGV[5])
local peers, infra = 0, 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if string.sub(m, 1, 2) == 'i:' then infra = infra + 1 else peers = peers + 1 end
end
return {peers, infra}
`)

// Report implements tracker.BanStore.
func (s *Store) Report(ctx context.Context, c manifest.ID, offender, reporter identity.ID, infra bool, until, now time.Time) (tracker.Tally, error) {
	tag, other := "p:"+reporter.String(), "i:"+reporter.String()
	if infra {
		tag, other = other, tag
	}
	keys := []string{s.key(c, "rep", offender.String()), s.key(c, "excl", reporter.String())}
	res, err := reportScript.Run(ctx, s.rdb, keys, tag, until.UnixMicro(), now.UnixMicro(), offender.String(), px(until, now), other).Int64Slice()
	if err != nil {
		return tracker.Tally{}, fmt.Errorf("redisstore: report: %w", err)
	}
	if len(res) != 2 {
		return tracker.Tally{}, fmt.Errorf("redisstore: report: unexpected reply %v", res)
	}
	return tracker.Tally{Peers: int(res[0]), Infra: int(res[1])}, nil
}

// Excluded implements tracker.BanStore.
func (s *Store) Excluded(ctx context.Context, c manifest.ID, reporter identity.ID, now time.Time) ([]identity.ID, error) {
	ms, err := s.rdb.ZRangeByScore(ctx, s.key(c, "excl", reporter.String()), &redis.ZRangeBy{Min: "(" + micros(now), Max: "+inf"}).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: excluded: %w", err)
	}
	out := make([]identity.ID, 0, len(ms))
	for _, m := range ms {
		id, err := identity.ParseID(m)
		if err != nil {
			return nil, fmt.Errorf("redisstore: excluded: %w", err)
		}
		out = append(out, id)
	}
	return out, nil
}

// Ban implements tracker.BanStore. It deletes the peer's record; the ban
// itself refuses the peer's announces for longer than the record would
// have guarded against replays.
func (s *Store) Ban(ctx context.Context, c manifest.ID, id identity.ID, until, now time.Time) error {
	pipe := s.rdb.TxPipeline()
	banKey := s.key(c, "ban")
	pipe.ZAddGT(ctx, banKey, redis.Z{Score: float64(until.UnixMicro()), Member: id.String()})
	pipe.PExpire(ctx, banKey, time.Duration(px(until, now))*time.Millisecond)
	pipe.Del(ctx, s.recKey(c, id))
	pipe.ZRem(ctx, s.key(c, "live"), id.String())
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redisstore: ban: %w", err)
	}
	return nil
}

// Counter fields of P{C}:ctr.
var counterFields = []string{"uploaded", "downloaded", "origin", "edge", "peers", "completed", "announces"}

func clamp(v uint64) int64 { return int64(min(v, math.MaxInt64)) }

// Add implements tracker.StatsStore.
func (s *Store) Add(ctx context.Context, c manifest.ID, d tracker.Delta, now time.Time) error {
	vals := []int64{clamp(d.Bytes.Uploaded), clamp(d.Bytes.Downloaded), clamp(d.Bytes.FromOrigin), clamp(d.Bytes.FromEdge), clamp(d.Bytes.FromPeers), d.Completed, d.Announces}
	k := s.key(c, "ctr")
	pipe := s.rdb.Pipeline()
	for i, v := range vals {
		if v != 0 {
			pipe.HIncrBy(ctx, k, counterFields[i], v)
		}
	}
	until := now.Add(s.retention)
	pipe.PExpire(ctx, k, time.Duration(px(until, now))*time.Millisecond)
	pipe.ZAddGT(ctx, s.swarmsKey(), redis.Z{Score: float64(until.UnixMicro()), Member: c.String()})
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("redisstore: add counters: %w", err)
	}
	return nil
}

// Swarm implements tracker.StatsStore. It reads every live record, so it
// costs O(swarm size).
func (s *Store) Swarm(ctx context.Context, c manifest.ID, now time.Time) (tracker.SwarmStats, error) {
	st := tracker.SwarmStats{Content: c}
	pipe := s.rdb.Pipeline()
	liveCmd := pipe.ZRangeByScore(ctx, s.key(c, "live"), &redis.ZRangeBy{Min: "(" + micros(now), Max: "+inf"})
	ctrCmd := pipe.HMGet(ctx, s.key(c, "ctr"), counterFields...)
	banCmd := pipe.ZCount(ctx, s.key(c, "ban"), "("+micros(now), "+inf")
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return st, fmt.Errorf("redisstore: swarm stats: %w", err)
	}
	recs, err := s.records(ctx, c, liveCmd.Val())
	if err != nil {
		return st, err
	}
	for _, p := range recs {
		if !p.Live(now) {
			continue
		}
		switch p.Role {
		case tracker.RoleOrigin:
			st.Origins++
		case tracker.RoleEdge:
			st.Edges++
		default:
			st.Size++
			if p.Complete() {
				st.Seeds++
			}
		}
	}
	st.Banned = int(banCmd.Val())
	var v [7]uint64
	for i, x := range ctrCmd.Val() {
		if str, ok := x.(string); ok {
			n, err := strconv.ParseInt(str, 10, 64)
			if err != nil || n < 0 {
				return st, fmt.Errorf("redisstore: swarm stats: bad counter %s=%q", counterFields[i], str)
			}
			v[i] = uint64(n)
		}
	}
	st.Bytes = tracker.Bytes{Uploaded: v[0], Downloaded: v[1], FromOrigin: v[2], FromEdge: v[3], FromPeers: v[4]}
	st.Completed, st.Announces = int64(v[5]), int64(v[6])
	return st, nil
}

// Swarms implements tracker.StatsStore.
func (s *Store) Swarms(ctx context.Context, now time.Time) ([]manifest.ID, error) {
	k := s.swarmsKey()
	pipe := s.rdb.Pipeline()
	pipe.ZRemRangeByScore(ctx, k, "-inf", micros(now))
	list := pipe.ZRange(ctx, k, 0, -1)
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("redisstore: swarms: %w", err)
	}
	out := make([]manifest.ID, 0, len(list.Val()))
	for _, m := range list.Val() {
		id, err := manifest.ParseID(m)
		if err != nil {
			return nil, fmt.Errorf("redisstore: swarms: %w", err)
		}
		out = append(out, id)
	}
	return out, nil
}
