package traffic

import (
	"context"
	"sync"
	"time"
)

// Store is the state control nodes share: the edge registry, operator
// flags, health votes, policies and sticky assignments. MemStore keeps it in
// one process (the default); RedisStore lets several control nodes behind
// one name act as one. Both pass the same conformance suite
// (store_test.go). Implementations must be safe for concurrent use.
type Store interface {
	// PutEdge stores an edge's latest report, replacing the previous one.
	PutEdge(ctx context.Context, r EdgeRecord) error
	// DeleteEdge forgets an edge, its flag and its votes. Deleting an
	// unknown edge is not an error.
	DeleteEdge(ctx context.Context, id string) error
	// Edges returns every stored edge, in no particular order.
	Edges(ctx context.Context) ([]EdgeRecord, error)

	// PutFlag sets an operator flag on an edge; the zero Flag clears it.
	PutFlag(ctx context.Context, id string, f Flag) error
	// Flags returns the set flags by edge ID.
	Flags(ctx context.Context) (map[string]Flag, error)

	// PutVote records one prober's latest verdict on one edge, replacing
	// that prober's previous vote on it.
	PutVote(ctx context.Context, v Vote) error
	// DeleteVote removes one prober's vote on one edge (used to sweep
	// votes of control nodes that are gone).
	DeleteVote(ctx context.Context, edge, prober string) error
	// Votes returns every stored vote.
	Votes(ctx context.Context) ([]Vote, error)

	// PutPolicy stores a property's policy document (validated JSON).
	PutPolicy(ctx context.Context, name string, doc []byte) error
	// DeletePolicy removes a property. Deleting an unknown one is not an
	// error.
	DeletePolicy(ctx context.Context, name string) error
	// Policies returns every policy document by property name.
	Policies(ctx context.Context) (map[string][]byte, error)
	// PolicyVersion returns a number that changes whenever a policy is put
	// or deleted, so that readers can skip re-reading unchanged policies.
	PolicyVersion(ctx context.Context) (int64, error)

	// Stick returns the edge the sticky key is bound to, refreshing its
	// lifetime to ttl; when the key is unbound it binds it to edge first.
	Stick(ctx context.Context, key, edge string, ttl time.Duration) (string, error)
	// Restick binds key to edge if it is bound to old or unbound, and
	// returns the binding in force afterwards (another control node may
	// have moved it first).
	Restick(ctx context.Context, key, old, edge string, ttl time.Duration) (string, error)
}

// EdgeRecord is an edge's last report as stored.
type EdgeRecord struct {
	Edge Edge `json:"edge"`
	// Seen is when the report arrived.
	Seen time.Time `json:"seen"`
}

// Flag is an operator's mark on an edge.
type Flag struct {
	// Drained edges get no new clients (e.g. under attack, maintenance).
	Drained bool      `json:"drained"`
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at,omitempty"`
}

// Vote is one prober's verdict on one edge.
type Vote struct {
	Edge    string        `json:"edge"`
	Prober  string        `json:"prober"`
	Healthy bool          `json:"healthy"`
	At      time.Time     `json:"at"`
	RTT     time.Duration `json:"rtt"`
	// Detail says why the prober thinks the edge is down.
	Detail string `json:"detail,omitempty"`
}

// MemStore is the in-process Store. Sticky bindings are bounded by
// MaxSticky; past it new keys are not bound (routing stays deterministic
// through hashing, only the memory of past choices is lost). The zero
// MemStore is not usable; call NewMemStore.
type MemStore struct {
	mu       sync.Mutex
	edges    map[string]EdgeRecord
	flags    map[string]Flag
	votes    map[[2]string]Vote
	policies map[string][]byte
	pversion int64
	sticky   map[string]stickyEntry
	// MaxSticky bounds the sticky table. Default 1<<20 entries.
	MaxSticky int
	// Now is the clock sticky lifetimes run on. Default time.Now.
	Now       func() time.Time
	lastSweep time.Time
}

type stickyEntry struct {
	edge    string
	expires time.Time
}

var _ Store = (*MemStore)(nil)

// NewMemStore returns an empty in-memory store.
func NewMemStore() *MemStore {
	return &MemStore{
		edges:     map[string]EdgeRecord{},
		flags:     map[string]Flag{},
		votes:     map[[2]string]Vote{},
		policies:  map[string][]byte{},
		sticky:    map[string]stickyEntry{},
		MaxSticky: 1 << 20,
		Now:       time.Now,
	}
}

// PutEdge implements Store.
func (m *MemStore) PutEdge(ctx context.Context, r EdgeRecord) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.edges[r.Edge.ID] = r
	return nil
}

// DeleteEdge implements Store.
func (m *MemStore) DeleteEdge(ctx context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.edges, id)
	delete(m.flags, id)
	for k := range m.votes {
		if k[0] == id {
			delete(m.votes, k)
		}
	}
	return nil
}

// Edges implements Store.
func (m *MemStore) Edges(ctx context.Context) ([]EdgeRecord, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]EdgeRecord, 0, len(m.edges))
	for _, r := range m.edges {
		out = append(out, r)
	}
	return out, nil
}

// PutFlag implements Store.
func (m *MemStore) PutFlag(ctx context.Context, id string, f Flag) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f == (Flag{}) {
		delete(m.flags, id)
	} else {
		m.flags[id] = f
	}
	return nil
}

// Flags implements Store.
func (m *MemStore) Flags(ctx context.Context) (map[string]Flag, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]Flag, len(m.flags))
	for k, v := range m.flags {
		out[k] = v
	}
	return out, nil
}

// PutVote implements Store.
func (m *MemStore) PutVote(ctx context.Context, v Vote) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.votes[[2]string{v.Edge, v.Prober}] = v
	return nil
}

// DeleteVote implements Store.
func (m *MemStore) DeleteVote(ctx context.Context, edge, prober string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.votes, [2]string{edge, prober})
	return nil
}

// Votes implements Store.
func (m *MemStore) Votes(ctx context.Context) ([]Vote, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Vote, 0, len(m.votes))
	for _, v := range m.votes {
		out = append(out, v)
	}
	return out, nil
}

// PutPolicy implements Store.
func (m *MemStore) PutPolicy(ctx context.Context, name string, doc []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.policies[name] = append([]byte(nil), doc...)
	m.pversion++
	return nil
}

// DeletePolicy implements Store.
func (m *MemStore) DeletePolicy(ctx context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.policies, name)
	m.pversion++
	return nil
}

// Policies implements Store.
func (m *MemStore) Policies(ctx context.Context) (map[string][]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string][]byte, len(m.policies))
	for k, v := range m.policies {
		out[k] = v
	}
	return out, nil
}

// PolicyVersion implements Store.
func (m *MemStore) PolicyVersion(ctx context.Context) (int64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pversion, nil
}

// Stick implements Store.
func (m *MemStore) Stick(ctx context.Context, key, edge string, ttl time.Duration) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.Now()
	if e, ok := m.sticky[key]; ok && now.Before(e.expires) {
		e.expires = now.Add(ttl)
		m.sticky[key] = e
		return e.edge, nil
	}
	m.bind(key, edge, now.Add(ttl), now)
	return edge, nil
}

// Restick implements Store.
func (m *MemStore) Restick(ctx context.Context, key, old, edge string, ttl time.Duration) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.Now()
	if e, ok := m.sticky[key]; ok && now.Before(e.expires) && e.edge != old {
		return e.edge, nil
	}
	m.bind(key, edge, now.Add(ttl), now)
	return edge, nil
}

// bind stores a binding if the table has room, sweeping expired entries at
// most once a second when it is full. Called with m.mu held.
func (m *MemStore) bind(key, edge string, expires, now time.Time) {
	if _, ok := m.sticky[key]; !ok && len(m.sticky) >= m.MaxSticky {
		if now.Sub(m.lastSweep) < time.Second {
			return
		}
		m.lastSweep = now
		for k, e := range m.sticky {
			if !now.Before(e.expires) {
				delete(m.sticky, k)
			}
		}
		if len(m.sticky) >= m.MaxSticky {
			return
		}
	}
	m.sticky[key] = stickyEntry{edge, expires}
}
