package cachestore

import (
	"context"
	"errors"
	"strings"
	"sync"
)

// TieredConfig configures a Tiered store.
type TieredConfig struct {
	// Memory is the hot tier. Required.
	Memory *Memory
	// Disk is the persistent tier; nil means memory only.
	Disk *Disk
	// MemoryMaxObject is the largest body kept in memory. Zero means
	// 2 MiB (one default slice).
	MemoryMaxObject int64
	// DiskWriters is how many goroutines write small objects to disk
	// behind the memory tier (write-behind: Put returns once the object is
	// in memory). Zero means 4; negative means every Put writes to disk
	// before returning. Large objects are always written synchronously.
	DiskWriters int
}

// Tiered puts a memory tier in front of a disk tier. Writes go to disk
// (when there is one) and, for small bodies, to memory; reads try memory
// first and promote small disk objects into it. Deletions hit both.
type Tiered struct {
	mem    *Memory
	disk   *Disk
	maxMem int64

	q        chan *pendingItem
	wg       sync.WaitGroup
	pmu      sync.Mutex
	pending  map[string]*pendingItem
	pendingN int64 // body bytes waiting for disk
	once     sync.Once
}

// maxPendingBytes bounds write-behind memory beyond the memory budget;
// past it Put writes to disk itself.
const maxPendingBytes = 64 << 20

// pendingItem is a small object in memory whose disk copy is not yet
// written.
type pendingItem struct {
	it        Item
	cancelled bool
}

// NewTiered combines tiers. Call Close to flush pending disk writes.
func NewTiered(cfg TieredConfig) *Tiered {
	if cfg.MemoryMaxObject <= 0 {
		cfg.MemoryMaxObject = 2 << 20
	}
	t := &Tiered{mem: cfg.Memory, disk: cfg.Disk, maxMem: cfg.MemoryMaxObject, pending: map[string]*pendingItem{}}
	if cfg.DiskWriters == 0 {
		cfg.DiskWriters = 4
	}
	if t.disk != nil && cfg.DiskWriters > 0 {
		t.q = make(chan *pendingItem, 1024)
		for i := 0; i < cfg.DiskWriters; i++ {
			t.wg.Add(1)
			go func() {
				defer t.wg.Done()
				for pi := range t.q {
					t.writeBehind(pi)
				}
			}()
		}
	}
	return t
}

// writeBehind writes a pending object to disk unless it was deleted or
// replaced meanwhile, and removes it again if it was deleted during the
// write.
func (t *Tiered) writeBehind(pi *pendingItem) {
	t.pmu.Lock()
	if t.pending[pi.it.Key] != pi {
		t.pendingN -= int64(len(pi.it.Body))
		t.pmu.Unlock()
		return
	}
	t.pmu.Unlock()
	err := t.disk.Put(context.Background(), pi.it)
	t.pmu.Lock()
	t.pendingN -= int64(len(pi.it.Body))
	if t.pending[pi.it.Key] == pi {
		delete(t.pending, pi.it.Key)
	}
	cancelled := pi.cancelled
	t.pmu.Unlock()
	if cancelled && err == nil {
		t.disk.Delete(pi.it.Key)
	}
}

// cancel drops pending writes whose items match.
func (t *Tiered) cancel(match func(Item) bool) {
	t.pmu.Lock()
	for k, pi := range t.pending {
		if match(pi.it) {
			pi.cancelled = true
			delete(t.pending, k)
		}
	}
	t.pmu.Unlock()
}

// Memory returns the memory tier.
func (t *Tiered) Memory() *Memory { return t.mem }

// Disk returns the disk tier, or nil.
func (t *Tiered) Disk() *Disk { return t.disk }

// Get implements Store.
func (t *Tiered) Get(key string) (*Object, bool) {
	if o, ok := t.mem.Get(key); ok {
		return o, true
	}
	if t.disk == nil {
		return nil, false
	}
	t.pmu.Lock()
	if pi := t.pending[key]; pi != nil {
		t.pmu.Unlock()
		it := pi.it
		return &Object{Key: it.Key, Group: it.Group, Tags: it.Tags, Meta: it.Meta, Size: int64(len(it.Body)), body: it.Body}, true
	}
	t.pmu.Unlock()
	o, ok := t.disk.Get(key)
	if !ok {
		return nil, false
	}
	if o.Size <= t.maxMem {
		if b, err := o.ReadAll(); err == nil {
			_ = t.mem.Put(context.Background(), Item{Key: o.Key, Group: o.Group, Tags: o.Tags, Meta: o.Meta, Body: b})
			if m, ok := t.mem.Get(key); ok {
				return m, true
			}
		} else if errors.Is(err, ErrCorrupt) {
			return nil, false
		}
	}
	return o, true
}

// Put implements Store.
func (t *Tiered) Put(ctx context.Context, it Item) error {
	small := int64(len(it.Body)) <= t.maxMem
	t.pmu.Lock()
	roomBehind := t.pendingN+int64(len(it.Body)) <= maxPendingBytes
	t.pmu.Unlock()
	if small && t.q != nil && roomBehind {
		if err := checkKey(it.Key); err != nil {
			return err
		}
		if err := t.mem.Put(ctx, it); err != nil {
			return err
		}
		pi := &pendingItem{it: it}
		t.pmu.Lock()
		if old := t.pending[it.Key]; old != nil {
			old.cancelled = false // superseded, not deleted: the newer write wins
		}
		t.pending[it.Key] = pi
		t.pendingN += int64(len(it.Body))
		t.pmu.Unlock()
		select {
		case t.q <- pi:
		default:
			t.writeBehind(pi) // queue full: write now (backpressure)
		}
		return nil
	}
	if t.disk != nil {
		if err := t.disk.Put(ctx, it); err != nil {
			return err
		}
	}
	if small {
		err := t.mem.Put(ctx, it)
		if t.disk == nil {
			return err
		}
	} else {
		t.mem.Delete(it.Key)
		if t.disk == nil {
			return ErrTooLarge
		}
	}
	return nil
}

// Delete implements Store.
func (t *Tiered) Delete(key string) bool {
	t.cancel(func(it Item) bool { return it.Key == key })
	a := t.mem.Delete(key)
	if t.disk != nil {
		a = t.disk.Delete(key) || a
	}
	return a
}

func (t *Tiered) both(f func(Store) int) int {
	n := f(t.mem)
	if t.disk != nil {
		n = max(n, f(t.disk))
	}
	return n
}

// DeleteFamily implements Store.
func (t *Tiered) DeleteFamily(family string) int {
	t.cancel(func(it Item) bool { return Family(it.Key) == family })
	return t.both(func(s Store) int { return s.DeleteFamily(family) })
}

// DeletePrefix implements Store.
func (t *Tiered) DeletePrefix(group, prefix string) int {
	t.cancel(func(it Item) bool { return it.Group == group && strings.HasPrefix(Family(it.Key), prefix) })
	return t.both(func(s Store) int { return s.DeletePrefix(group, prefix) })
}

// DeleteTag implements Store.
func (t *Tiered) DeleteTag(group, tag string) int {
	t.cancel(func(it Item) bool {
		if it.Group != group {
			return false
		}
		for _, x := range it.Tags {
			if x == tag {
				return true
			}
		}
		return false
	})
	return t.both(func(s Store) int { return s.DeleteTag(group, tag) })
}

// Keys implements Store: the keys of both tiers.
func (t *Tiered) Keys(group, prefix string, limit int) []string {
	keys := t.mem.Keys(group, prefix, limit)
	if t.disk == nil {
		return keys
	}
	seen := make(map[string]bool, len(keys))
	for _, k := range keys {
		seen[k] = true
	}
	for _, k := range t.disk.Keys(group, prefix, limit) {
		if limit > 0 && len(keys) >= limit {
			break
		}
		if !seen[k] {
			keys = append(keys, k)
		}
	}
	return keys
}

// SetGroupBudget implements Store: the budget applies in each tier.
func (t *Tiered) SetGroupBudget(group string, b int64) {
	t.mem.SetGroupBudget(group, b)
	if t.disk != nil {
		t.disk.SetGroupBudget(group, b)
	}
}

// Stats implements Store: the persistent tier's counters when there is
// one (the memory tier holds copies), else the memory tier's.
func (t *Tiered) Stats() Stats {
	if t.disk != nil {
		return t.disk.Stats()
	}
	return t.mem.Stats()
}

// Close implements Store: it waits for pending disk writes.
func (t *Tiered) Close() error {
	t.once.Do(func() {
		if t.q != nil {
			close(t.q)
			t.wg.Wait()
		}
	})
	if t.disk != nil {
		return t.disk.Close()
	}
	return nil
}
