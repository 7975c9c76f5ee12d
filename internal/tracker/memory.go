package tracker

import (
	"context"
	"math/rand/v2"
	"sync"
	"time"

	"avalanche/internal/identity"
	"avalanche/internal/manifest"
)

// MemoryConfig configures a Memory store. The zero value works.
type MemoryConfig struct {
	// Retention is how long a swarm's counters outlive its last announce.
	// Default 1 h.
	Retention time.Duration
}

// Memory is the in-memory Store, the tracker's default. It is safe for
// concurrent use. It runs no goroutines: expired entries are swept while
// the store is used, at most once a second per swarm.
type Memory struct {
	retention time.Duration

	mu        sync.RWMutex
	swarms    map[manifest.ID]*memSwarm
	nextSweep time.Time
}

var _ Store = (*Memory)(nil)

type memSwarm struct {
	mu        sync.Mutex
	recs      map[identity.ID]*Peer
	index     map[Group]*idSet
	bans      map[identity.ID]time.Time
	reports   map[identity.ID]map[identity.ID]memReport // offender → reporter →
	excluded  map[identity.ID]map[identity.ID]time.Time // reporter → offender → until
	ctr       Delta
	until     time.Time // retained until
	nextSweep time.Time
}

type memReport struct {
	infra bool
	until time.Time
}

// NewMemory returns an empty in-memory store.
func NewMemory(cfg MemoryConfig) *Memory {
	if cfg.Retention <= 0 {
		cfg.Retention = time.Hour
	}
	return &Memory{retention: cfg.Retention, swarms: make(map[manifest.ID]*memSwarm)}
}

// swarm returns c's state, creating it when create is set (else nil).
func (m *Memory) swarm(c manifest.ID, create bool, now time.Time) *memSwarm {
	m.mu.RLock()
	s := m.swarms[c]
	sweep := !now.Before(m.nextSweep)
	m.mu.RUnlock()
	if sweep {
		m.sweep(now)
	}
	if s != nil || !create {
		return s
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s = m.swarms[c]; s == nil {
		s = &memSwarm{
			recs:     make(map[identity.ID]*Peer),
			index:    make(map[Group]*idSet),
			bans:     make(map[identity.ID]time.Time),
			reports:  make(map[identity.ID]map[identity.ID]memReport),
			excluded: make(map[identity.ID]map[identity.ID]time.Time),
			until:    now.Add(m.retention),
		}
		m.swarms[c] = s
	}
	return s
}

// sweep forgets swarms that hold nothing worth keeping.
func (m *Memory) sweep(now time.Time) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Before(m.nextSweep) {
		return
	}
	m.nextSweep = now.Add(10 * time.Second)
	for c, s := range m.swarms {
		s.mu.Lock()
		s.sweep(now)
		dead := now.After(s.until) && len(s.recs) == 0 && len(s.bans) == 0 && len(s.reports) == 0
		s.mu.Unlock()
		if dead {
			delete(m.swarms, c)
		}
	}
}

// sweep drops expired entries. s.mu must be held.
func (s *memSwarm) sweep(now time.Time) {
	s.nextSweep = now.Add(time.Second)
	for id, p := range s.recs {
		if !p.Live(now) {
			s.unindex(p)
		}
		if !now.Before(p.Keep) {
			delete(s.recs, id)
		}
	}
	for id, until := range s.bans {
		if !now.Before(until) {
			delete(s.bans, id)
		}
	}
	for off, rs := range s.reports {
		for r, e := range rs {
			if !now.Before(e.until) {
				delete(rs, r)
			}
		}
		if len(rs) == 0 {
			delete(s.reports, off)
		}
	}
	for r, offs := range s.excluded {
		for o, until := range offs {
			if !now.Before(until) {
				delete(offs, o)
			}
		}
		if len(offs) == 0 {
			delete(s.excluded, r)
		}
	}
}

func (s *memSwarm) maybeSweep(now time.Time) {
	if !now.Before(s.nextSweep) {
		s.sweep(now)
	}
}

func (s *memSwarm) unindex(p *Peer) {
	for _, g := range p.Groups() {
		if set := s.index[g]; set != nil {
			set.remove(p.ID)
			if set.len() == 0 {
				delete(s.index, g)
			}
		}
	}
}

func (s *memSwarm) banned(id identity.ID, now time.Time) bool {
	until, ok := s.bans[id]
	return ok && now.Before(until)
}

// Announce implements PeerStore.
func (m *Memory) Announce(ctx context.Context, c manifest.ID, p Peer, now time.Time) (Peer, bool, error) {
	s := m.swarm(c, true, now)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maybeSweep(now)
	if s.banned(p.ID, now) {
		return Peer{}, false, ErrBanned
	}
	old, found := s.recs[p.ID]
	var prev Peer
	if found {
		if old.Stamp >= p.Stamp {
			return Peer{}, false, ErrStale
		}
		prev = *old
		s.unindex(old)
	}
	rec := p
	s.recs[p.ID] = &rec
	if rec.Live(now) {
		for _, g := range rec.Groups() {
			set := s.index[g]
			if set == nil {
				set = newIDSet()
				s.index[g] = set
			}
			set.add(rec.ID)
		}
	}
	if u := now.Add(m.retention); u.After(s.until) {
		s.until = u
	}
	return prev, found, nil
}

// Get implements PeerStore.
func (m *Memory) Get(ctx context.Context, c manifest.ID, id identity.ID) (Peer, bool, error) {
	m.mu.RLock()
	s := m.swarms[c]
	m.mu.RUnlock()
	if s == nil {
		return Peer{}, false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.recs[id]
	if !ok {
		return Peer{}, false, nil
	}
	return *p, true, nil
}

// Sample implements PeerStore.
func (m *Memory) Sample(ctx context.Context, c manifest.ID, now time.Time, qs []Query) ([][]Peer, error) {
	out := make([][]Peer, len(qs))
	s := m.swarm(c, false, now)
	if s == nil {
		return out, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maybeSweep(now)
	for i, q := range qs {
		set := s.index[q.Group]
		if set == nil || q.N <= 0 {
			continue
		}
		ids := set.sample(q.N)
		res := make([]Peer, 0, len(ids))
		for _, id := range ids {
			if p := s.recs[id]; p != nil && p.Live(now) {
				res = append(res, *p)
			}
		}
		out[i] = res
	}
	return out, nil
}

// Report implements BanStore.
func (m *Memory) Report(ctx context.Context, c manifest.ID, offender, reporter identity.ID, infra bool, until, now time.Time) (Tally, error) {
	s := m.swarm(c, true, now)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maybeSweep(now)
	rs := s.reports[offender]
	if rs == nil {
		rs = make(map[identity.ID]memReport)
		s.reports[offender] = rs
	}
	if e, ok := rs[reporter]; !ok || until.After(e.until) || infra != e.infra {
		rs[reporter] = memReport{infra: infra, until: until}
	}
	ex := s.excluded[reporter]
	if ex == nil {
		ex = make(map[identity.ID]time.Time)
		s.excluded[reporter] = ex
	}
	if until.After(ex[offender]) {
		ex[offender] = until
	}
	var t Tally
	for _, e := range rs {
		if !now.Before(e.until) {
			continue
		}
		if e.infra {
			t.Infra++
		} else {
			t.Peers++
		}
	}
	return t, nil
}

// Excluded implements BanStore.
func (m *Memory) Excluded(ctx context.Context, c manifest.ID, reporter identity.ID, now time.Time) ([]identity.ID, error) {
	m.mu.RLock()
	s := m.swarms[c]
	m.mu.RUnlock()
	if s == nil {
		return nil, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []identity.ID
	for id, until := range s.excluded[reporter] {
		if now.Before(until) {
			out = append(out, id)
		}
	}
	return out, nil
}

// Ban implements BanStore.
func (m *Memory) Ban(ctx context.Context, c manifest.ID, id identity.ID, until, now time.Time) error {
	s := m.swarm(c, true, now)
	s.mu.Lock()
	defer s.mu.Unlock()
	if until.After(s.bans[id]) {
		s.bans[id] = until
	}
	if p := s.recs[id]; p != nil {
		s.unindex(p)
		p.Stopped = true
	}
	return nil
}

// Add implements StatsStore.
func (m *Memory) Add(ctx context.Context, c manifest.ID, d Delta, now time.Time) error {
	s := m.swarm(c, true, now)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ctr.Bytes = s.ctr.Bytes.Add(d.Bytes)
	s.ctr.Completed += d.Completed
	s.ctr.Announces += d.Announces
	if u := now.Add(m.retention); u.After(s.until) {
		s.until = u
	}
	return nil
}

// Swarm implements StatsStore.
func (m *Memory) Swarm(ctx context.Context, c manifest.ID, now time.Time) (SwarmStats, error) {
	st := SwarmStats{Content: c}
	s := m.swarm(c, false, now)
	if s == nil {
		return st, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range s.recs {
		if p.Live(now) {
			countPeer(&st, p)
		}
	}
	for _, until := range s.bans {
		if now.Before(until) {
			st.Banned++
		}
	}
	st.Bytes = s.ctr.Bytes
	st.Completed = s.ctr.Completed
	st.Announces = s.ctr.Announces
	return st, nil
}

// countPeer adds the live record p to st's head counts.
func countPeer(st *SwarmStats, p *Peer) {
	switch p.Role {
	case RoleOrigin:
		st.Origins++
	case RoleEdge:
		st.Edges++
	default:
		st.Size++
		if p.Complete() {
			st.Seeds++
		}
	}
}

// Swarms implements StatsStore.
func (m *Memory) Swarms(ctx context.Context, now time.Time) ([]manifest.ID, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []manifest.ID
	for c, s := range m.swarms {
		s.mu.Lock()
		keep := now.Before(s.until)
		if !keep {
			for _, p := range s.recs {
				if p.Live(now) {
					keep = true
					break
				}
			}
		}
		s.mu.Unlock()
		if keep {
			out = append(out, c)
		}
	}
	return out, nil
}

// idSet is a set of IDs with O(1) add, remove and random pick.
type idSet struct {
	ids []identity.ID
	pos map[identity.ID]int
}

func newIDSet() *idSet { return &idSet{pos: make(map[identity.ID]int)} }

func (s *idSet) len() int { return len(s.ids) }

func (s *idSet) add(id identity.ID) {
	if _, ok := s.pos[id]; ok {
		return
	}
	s.pos[id] = len(s.ids)
	s.ids = append(s.ids, id)
}

func (s *idSet) remove(id identity.ID) {
	i, ok := s.pos[id]
	if !ok {
		return
	}
	last := len(s.ids) - 1
	s.ids[i] = s.ids[last]
	s.pos[s.ids[i]] = i
	s.ids = s.ids[:last]
	delete(s.pos, id)
}

// sample returns up to n distinct members in random order.
func (s *idSet) sample(n int) []identity.ID {
	if n >= len(s.ids) {
		out := append([]identity.ID(nil), s.ids...)
		rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
		return out
	}
	// Floyd's algorithm: n distinct indices in O(n).
	chosen := make(map[int]struct{}, n)
	out := make([]identity.ID, 0, n)
	for j := len(s.ids) - n; j < len(s.ids); j++ {
		t := rand.IntN(j + 1)
		if _, dup := chosen[t]; dup {
			t = j
		}
		chosen[t] = struct{}{}
		out = append(out, s.ids[t])
	}
	rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
