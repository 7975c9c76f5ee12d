package cachestore

import (
	"strings"
	"sync"
	"sync/atomic"
)

// node is one object in the index and in its group's SIEVE queue.
type node struct {
	obj        *Object
	visited    atomic.Bool
	prev, next *node // prev is older... see sieve
	group      *group
}

// group is one budget group: a SIEVE queue (head = newest) with a hand
// that walks from the tail (oldest) towards the head.
type group struct {
	name       string
	bytes      int64
	budget     int64
	head, tail *node
	hand       *node
}

func (g *group) pushHead(n *node) {
	n.prev, n.next = nil, g.head
	if g.head != nil {
		g.head.prev = n
	}
	g.head = n
	if g.tail == nil {
		g.tail = n
	}
}

func (g *group) unlink(n *node) {
	if g.hand == n {
		g.hand = n.prev
	}
	if n.prev != nil {
		n.prev.next = n.next
	} else {
		g.head = n.next
	}
	if n.next != nil {
		n.next.prev = n.prev
	} else {
		g.tail = n.prev
	}
	n.prev, n.next = nil, nil
}

// victim runs the SIEVE hand: objects seen since the hand last passed get
// a second chance; the first unvisited one is the victim.
func (g *group) victim() *node {
	n := g.hand
	if n == nil {
		n = g.tail
	}
	for n != nil && n.visited.Load() {
		n.visited.Store(false)
		n = n.prev
		if n == nil {
			n = g.tail
		}
	}
	if n != nil {
		g.hand = n.prev
	}
	return n
}

// index is the shared bookkeeping of a tier: keys, families, tags,
// groups, budgets and SIEVE queues. Callers hold mu.
type index struct {
	mu        sync.RWMutex
	keys      map[string]*node
	families  map[string]map[string]struct{}
	tags      map[string]map[string]struct{} // group+"\x00"+tag -> keys
	groups    map[string]*group
	budgets   map[string]int64
	budget    int64
	bytes     int64
	evictions atomic.Int64
}

func newIndex(budget int64) *index {
	return &index{keys: map[string]*node{}, families: map[string]map[string]struct{}{},
		tags: map[string]map[string]struct{}{}, groups: map[string]*group{}, budgets: map[string]int64{}, budget: budget}
}

func (ix *index) get(key string) (*Object, bool) {
	ix.mu.RLock()
	n := ix.keys[key]
	ix.mu.RUnlock()
	if n == nil {
		return nil, false
	}
	if !n.visited.Load() {
		n.visited.Store(true)
	}
	return n.obj, true
}

func (ix *index) groupOf(name string) *group {
	g := ix.groups[name]
	if g == nil {
		g = &group{name: name, budget: ix.budgets[name]}
		ix.groups[name] = g
	}
	return g
}

// insert adds obj (replacing the same key) and returns the objects evicted
// to make room, which the caller must release. Called with mu held.
func (ix *index) insert(obj *Object) (evicted []*Object) {
	if old := ix.keys[obj.Key]; old != nil {
		ix.remove(old)
		evicted = append(evicted, old.obj)
	}
	g := ix.groupOf(obj.Group)
	n := &node{obj: obj, group: g}
	ix.keys[obj.Key] = n
	fam := Family(obj.Key)
	fs := ix.families[fam]
	if fs == nil {
		fs = map[string]struct{}{}
		ix.families[fam] = fs
	}
	fs[obj.Key] = struct{}{}
	for _, t := range obj.Tags {
		tk := obj.Group + "\x00" + t
		s := ix.tags[tk]
		if s == nil {
			s = map[string]struct{}{}
			ix.tags[tk] = s
		}
		s[obj.Key] = struct{}{}
	}
	g.pushHead(n)
	c := obj.cost()
	g.bytes += c
	ix.bytes += c
	for g.budget > 0 && g.bytes > g.budget {
		v := g.victim()
		if v == nil || v == n && g.head == g.tail {
			break
		}
		if v == n {
			continue
		}
		ix.remove(v)
		ix.evictions.Add(1)
		evicted = append(evicted, v.obj)
	}
	for ix.budget > 0 && ix.bytes > ix.budget {
		var big, second *group
		for _, gg := range ix.groups {
			if gg.head == nil {
				continue
			}
			if big == nil || gg.bytes > big.bytes {
				big, second = gg, big
			} else if second == nil || gg.bytes > second.bytes {
				second = gg
			}
		}
		if big == nil {
			break
		}
		if big.head == n && big.tail == n {
			if second == nil {
				break
			}
			big = second
		}
		v := big.victim()
		if v == nil {
			break
		}
		if v == n {
			continue
		}
		ix.remove(v)
		ix.evictions.Add(1)
		evicted = append(evicted, v.obj)
	}
	return evicted
}

// remove drops a node from every structure. Called with mu held.
func (ix *index) remove(n *node) {
	obj := n.obj
	if ix.keys[obj.Key] != n {
		return
	}
	delete(ix.keys, obj.Key)
	fam := Family(obj.Key)
	if fs := ix.families[fam]; fs != nil {
		delete(fs, obj.Key)
		if len(fs) == 0 {
			delete(ix.families, fam)
		}
	}
	for _, t := range obj.Tags {
		tk := obj.Group + "\x00" + t
		if s := ix.tags[tk]; s != nil {
			delete(s, obj.Key)
			if len(s) == 0 {
				delete(ix.tags, tk)
			}
		}
	}
	n.group.unlink(n)
	c := obj.cost()
	n.group.bytes -= c
	ix.bytes -= c
}

func (ix *index) deleteKey(key string) *Object {
	n := ix.keys[key]
	if n == nil {
		return nil
	}
	ix.remove(n)
	return n.obj
}

func (ix *index) familyKeys(fam string) []string {
	var out []string
	for k := range ix.families[fam] {
		out = append(out, k)
	}
	return out
}

func (ix *index) prefixKeys(group, prefix string, limit int) []string {
	var out []string
	for fam, ks := range ix.families {
		if !strings.HasPrefix(fam, prefix) {
			continue
		}
		for k := range ks {
			if n := ix.keys[k]; n != nil && n.obj.Group == group {
				out = append(out, k)
				if limit > 0 && len(out) >= limit {
					return out
				}
			}
		}
	}
	return out
}

func (ix *index) tagKeys(group, tag string) []string {
	var out []string
	for k := range ix.tags[group+"\x00"+tag] {
		out = append(out, k)
	}
	return out
}

// objectOverhead approximates what an object costs beyond its body, key
// and metadata: index node, map entries, list links (memory), or trailer
// and inode share (disk).
const objectOverhead = 256

// cost is what an object counts against budgets: body, key, metadata and
// a fixed overhead, so many small objects cannot exceed a budget in real
// memory or disk use.
func (o *Object) cost() int64 {
	if o.tlen > 0 { // disk: the trailer holds key, group, tags and metadata
		return o.Size + o.tlen + objectOverhead
	}
	n := o.Size + int64(len(o.Key)+len(o.Meta)+len(o.Group)) + objectOverhead
	for _, t := range o.Tags {
		n += int64(len(t))
	}
	return n
}

// fits reports whether an object of size bytes can ever fit group.
func (ix *index) fits(group string, size int64) bool {
	if ix.budget > 0 && size > ix.budget {
		return false
	}
	b := ix.budgets[group]
	return b <= 0 || size <= b
}

func (ix *index) setBudget(group string, b int64) {
	ix.budgets[group] = b
	if g := ix.groups[group]; g != nil {
		g.budget = b
	}
}

func (ix *index) stats() Stats {
	s := Stats{Bytes: ix.bytes, Objects: int64(len(ix.keys)), Evictions: ix.evictions.Load(), Groups: map[string]int64{}}
	for name, g := range ix.groups {
		s.Groups[name] = g.bytes
	}
	return s
}
