package traffic

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisStore keeps the shared state in Redis so that several control nodes
// act as one. Keys, with Prefix (default "avalanche:") in front:
//
//	traffic:edges           hash  edge ID → EdgeRecord JSON
//	traffic:flags           hash  edge ID → Flag JSON
//	traffic:votes           hash  "<edge ID>|<prober ID>" → Vote JSON
//	traffic:policies        hash  property → policy JSON
//	traffic:policies:version string counter, bumped by every put and delete
//	traffic:sticky:<p>|<net> string edge ID, with a TTL (PX)
//
// The tracker keeps its peer sets beside them under "tracker:" (e.g.
// avalanche:tracker:swarm:<content ID> as a sorted set of peers by expiry),
// so one Redis serves the whole control plane. Sticky keys expire on their
// own; give Redis a maxmemory with maxmemory-policy volatile-ttl to bound
// them under a flood of new prefixes.
type RedisStore struct {
	rdb    redis.UniversalClient
	prefix string
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore returns a store on rdb under prefix ("" means
// "avalanche:"). The caller owns rdb.
func NewRedisStore(rdb redis.UniversalClient, prefix string) *RedisStore {
	if prefix == "" {
		prefix = "avalanche:"
	}
	return &RedisStore{rdb: rdb, prefix: prefix}
}

// OpenRedis connects to the Redis at url ("redis://host:port/db"), checks
// that it answers, and returns a store on it. Close releases the
// connection.
func OpenRedis(ctx context.Context, url, prefix string) (*RedisStore, error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, fmt.Errorf("%w: redis url: %v", ErrInvalid, err)
	}
	// Routing waits on Redis only for sticky bindings; fail fast so that an
	// unreachable Redis costs a decision little (the manager then routes
	// without stickiness for a second).
	if !strings.Contains(url, "dial_timeout") {
		opt.DialTimeout = time.Second
	}
	if !strings.Contains(url, "read_timeout") {
		opt.ReadTimeout = 500 * time.Millisecond
	}
	if !strings.Contains(url, "write_timeout") {
		opt.WriteTimeout = 500 * time.Millisecond
	}
	if !strings.Contains(url, "max_retries") {
		opt.MaxRetries = 1
	}
	opt.DialerRetries = 1
	rdb := redis.NewClient(opt)
	if err := rdb.Ping(ctx).Err(); err != nil {
		rdb.Close()
		return nil, fmt.Errorf("traffic: redis %s: %w", opt.Addr, err)
	}
	return NewRedisStore(rdb, prefix), nil
}

// Client returns the Redis client, so that other control-plane components
// (the tracker) can keep their keys in the same Redis.
func (s *RedisStore) Client() redis.UniversalClient { return s.rdb }

// Prefix returns the key prefix, e.g. "avalanche:".
func (s *RedisStore) Prefix() string { return s.prefix }

// Close closes the Redis client.
func (s *RedisStore) Close() error { return s.rdb.Close() }

func (s *RedisStore) key(k string) string { return s.prefix + "traffic:" + k }

// PutEdge implements Store.
func (s *RedisStore) PutEdge(ctx context.Context, r EdgeRecord) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return s.rdb.HSet(ctx, s.key("edges"), r.Edge.ID, b).Err()
}

// DeleteEdge implements Store.
func (s *RedisStore) DeleteEdge(ctx context.Context, id string) error {
	fields, err := s.rdb.HKeys(ctx, s.key("votes")).Result()
	if err != nil {
		return err
	}
	_, err = s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, s.key("edges"), id)
		p.HDel(ctx, s.key("flags"), id)
		for _, f := range fields {
			if strings.HasPrefix(f, id+"|") {
				p.HDel(ctx, s.key("votes"), f)
			}
		}
		return nil
	})
	return err
}

// Edges implements Store.
func (s *RedisStore) Edges(ctx context.Context) ([]EdgeRecord, error) {
	m, err := s.rdb.HGetAll(ctx, s.key("edges")).Result()
	if err != nil {
		return nil, err
	}
	out := make([]EdgeRecord, 0, len(m))
	for id, v := range m {
		var r EdgeRecord
		if err := json.Unmarshal([]byte(v), &r); err != nil || r.Edge.ID != id {
			continue // written by something else; ignore rather than fail routing
		}
		out = append(out, r)
	}
	return out, nil
}

// PutFlag implements Store.
func (s *RedisStore) PutFlag(ctx context.Context, id string, f Flag) error {
	if f == (Flag{}) {
		return s.rdb.HDel(ctx, s.key("flags"), id).Err()
	}
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return s.rdb.HSet(ctx, s.key("flags"), id, b).Err()
}

// Flags implements Store.
func (s *RedisStore) Flags(ctx context.Context) (map[string]Flag, error) {
	m, err := s.rdb.HGetAll(ctx, s.key("flags")).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string]Flag, len(m))
	for id, v := range m {
		var f Flag
		if json.Unmarshal([]byte(v), &f) == nil {
			out[id] = f
		}
	}
	return out, nil
}

// PutVote implements Store.
func (s *RedisStore) PutVote(ctx context.Context, v Vote) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.rdb.HSet(ctx, s.key("votes"), v.Edge+"|"+v.Prober, b).Err()
}

// DeleteVote implements Store.
func (s *RedisStore) DeleteVote(ctx context.Context, edge, prober string) error {
	return s.rdb.HDel(ctx, s.key("votes"), edge+"|"+prober).Err()
}

// Votes implements Store.
func (s *RedisStore) Votes(ctx context.Context) ([]Vote, error) {
	m, err := s.rdb.HGetAll(ctx, s.key("votes")).Result()
	if err != nil {
		return nil, err
	}
	out := make([]Vote, 0, len(m))
	for _, v := range m {
		var vt Vote
		if json.Unmarshal([]byte(v), &vt) == nil {
			out = append(out, vt)
		}
	}
	return out, nil
}

// PutPolicy implements Store.
func (s *RedisStore) PutPolicy(ctx context.Context, name string, doc []byte) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HSet(ctx, s.key("policies"), name, doc)
		p.Incr(ctx, s.key("policies:version"))
		return nil
	})
	return err
}

// DeletePolicy implements Store.
func (s *RedisStore) DeletePolicy(ctx context.Context, name string) error {
	_, err := s.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HDel(ctx, s.key("policies"), name)
		p.Incr(ctx, s.key("policies:version"))
		return nil
	})
	return err
}

// PolicyVersion implements Store.
func (s *RedisStore) PolicyVersion(ctx context.Context) (int64, error) {
	v, err := s.rdb.Get(ctx, s.key("policies:version")).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return v, err
}

// Policies implements Store.
func (s *RedisStore) Policies(ctx context.Context) (map[string][]byte, error) {
	m, err := s.rdb.HGetAll(ctx, s.key("policies")).Result()
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = []byte(v)
	}
	return out, nil
}

var stickScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return v
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return ARGV[1]`)

var restickScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and v ~= ARGV[1] then
  return v
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return ARGV[2]`)

func ttlMillis(ttl time.Duration) int64 { return max(ttl.Milliseconds(), 1) }

// Stick implements Store.
func (s *RedisStore) Stick(ctx context.Context, key, edge string, ttl time.Duration) (string, error) {
	v, err := stickScript.Run(ctx, s.rdb, []string{s.key("sticky:" + key)}, edge, ttlMillis(ttl)).Text()
	if errors.Is(err, redis.Nil) {
		return edge, nil
	}
	return v, err
}

// Restick implements Store.
func (s *RedisStore) Restick(ctx context.Context, key, old, edge string, ttl time.Duration) (string, error) {
	v, err := restickScript.Run(ctx, s.rdb, []string{s.key("sticky:" + key)}, old, edge, ttlMillis(ttl)).Text()
	if errors.Is(err, redis.Nil) {
		return edge, nil
	}
	return v, err
}
