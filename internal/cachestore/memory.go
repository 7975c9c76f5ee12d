package cachestore

import "context"

// MemoryConfig configures a Memory store.
type MemoryConfig struct {
	// Budget caps the bytes held: bodies, keys, metadata and a fixed
	// per-object overhead. Zero means 256 MiB.
	Budget int64
}

// Memory is the in-memory tier: objects live on the Go heap.
type Memory struct {
	ix *index
}

// NewMemory returns an empty memory store.
func NewMemory(cfg MemoryConfig) *Memory {
	if cfg.Budget <= 0 {
		cfg.Budget = 256 << 20
	}
	return &Memory{ix: newIndex(cfg.Budget)}
}

// Get implements Store.
func (m *Memory) Get(key string) (*Object, bool) { return m.ix.get(key) }

// Put implements Store.
func (m *Memory) Put(ctx context.Context, it Item) error {
	if err := checkKey(it.Key); err != nil {
		return err
	}
	obj := &Object{Key: it.Key, Group: it.Group, Tags: it.Tags, Meta: it.Meta, Size: int64(len(it.Body)), body: it.Body}
	m.ix.mu.Lock()
	if !m.ix.fits(it.Group, obj.cost()) {
		m.ix.mu.Unlock()
		return ErrTooLarge
	}
	m.ix.insert(obj)
	m.ix.mu.Unlock()
	return nil
}

// Delete implements Store.
func (m *Memory) Delete(key string) bool {
	m.ix.mu.Lock()
	defer m.ix.mu.Unlock()
	return m.ix.deleteKey(key) != nil
}

func (m *Memory) deleteKeys(keys []string) int {
	n := 0
	for _, k := range keys {
		if m.ix.deleteKey(k) != nil {
			n++
		}
	}
	return n
}

// DeleteFamily implements Store.
func (m *Memory) DeleteFamily(family string) int {
	m.ix.mu.Lock()
	defer m.ix.mu.Unlock()
	return m.deleteKeys(m.ix.familyKeys(family))
}

// DeletePrefix implements Store.
func (m *Memory) DeletePrefix(group, prefix string) int {
	m.ix.mu.Lock()
	defer m.ix.mu.Unlock()
	return m.deleteKeys(m.ix.prefixKeys(group, prefix, 0))
}

// DeleteTag implements Store.
func (m *Memory) DeleteTag(group, tag string) int {
	m.ix.mu.Lock()
	defer m.ix.mu.Unlock()
	return m.deleteKeys(m.ix.tagKeys(group, tag))
}

// Keys implements Store.
func (m *Memory) Keys(group, prefix string, limit int) []string {
	m.ix.mu.RLock()
	defer m.ix.mu.RUnlock()
	return m.ix.prefixKeys(group, prefix, limit)
}

// SetGroupBudget implements Store.
func (m *Memory) SetGroupBudget(group string, b int64) {
	m.ix.mu.Lock()
	m.ix.setBudget(group, b)
	m.ix.mu.Unlock()
}

// Stats implements Store.
func (m *Memory) Stats() Stats {
	m.ix.mu.RLock()
	defer m.ix.mu.RUnlock()
	return m.ix.stats()
}

// Close implements Store.
func (m *Memory) Close() error { return nil }
