package cachestore

import (
	"context"
	"errors"
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
}

// Tiered puts a memory tier in front of a disk tier. Writes go to disk
// (when there is one) and, for small bodies, to memory; reads try memory
// first and promote small disk objects into it. Deletions hit both.
type Tiered struct {
	mem    *Memory
	disk   *Disk
	maxMem int64
}

// NewTiered combines tiers.
func NewTiered(cfg TieredConfig) *Tiered {
	if cfg.MemoryMaxObject <= 0 {
		cfg.MemoryMaxObject = 2 << 20
	}
	return &Tiered{mem: cfg.Memory, disk: cfg.Disk, maxMem: cfg.MemoryMaxObject}
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
	return t.both(func(s Store) int { return s.DeleteFamily(family) })
}

// DeletePrefix implements Store.
func (t *Tiered) DeletePrefix(group, prefix string) int {
	return t.both(func(s Store) int { return s.DeletePrefix(group, prefix) })
}

// DeleteTag implements Store.
func (t *Tiered) DeleteTag(group, tag string) int {
	return t.both(func(s Store) int { return s.DeleteTag(group, tag) })
}

// Keys implements Store: the keys of the persistent tier when there is one.
func (t *Tiered) Keys(group, prefix string, limit int) []string {
	if t.disk != nil {
		return t.disk.Keys(group, prefix, limit)
	}
	return t.mem.Keys(group, prefix, limit)
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

// Close implements Store.
func (t *Tiered) Close() error {
	if t.disk != nil {
		return t.disk.Close()
	}
	return nil
}
