package swarm

import (
	"container/list"
	"sync"
)

// genCache keeps recently used whole generations in memory for serving,
// loading misses from storage. Buffers are reference counted so that an
// entry evicted while being encoded from is not reused under the reader.
type genCache struct {
	mu      sync.Mutex
	cap     int
	load    func(g int, buf []byte) ([]byte, error)
	entries map[int]*list.Element
	lru     list.List // of *cacheEntry, most recent at front
	bufs    *genSlab  // where buffers come from and go back to
	loading map[int]*sync.WaitGroup
}

type cacheEntry struct {
	gen  int
	data []byte
	refs int
	dead bool // evicted; its buffer goes back to the slab when refs reach 0
}

func newGenCache(capacity int, bufs *genSlab, load func(int, []byte) ([]byte, error)) *genCache {
	return &genCache{cap: capacity, bufs: bufs, load: load, entries: map[int]*list.Element{}, loading: map[int]*sync.WaitGroup{}}
}

// get returns generation g's data (padded to whole blocks) and a release
// function the caller must call when done reading it.
func (c *genCache) get(g int) ([]byte, func(), error) {
	c.mu.Lock()
	for {
		if el, ok := c.entries[g]; ok {
			e := el.Value.(*cacheEntry)
			c.lru.MoveToFront(el)
			e.refs++
			c.mu.Unlock()
			return e.data, func() { c.release(e) }, nil
		}
		wg := c.loading[g]
		if wg == nil {
			break
		}
		c.mu.Unlock()
		wg.Wait()
		c.mu.Lock()
	}
	wg := &sync.WaitGroup{}
	wg.Add(1)
	c.loading[g] = wg
	c.mu.Unlock()

	buf, err := c.load(g, c.bufs.get())

	c.mu.Lock()
	delete(c.loading, g)
	wg.Done()
	if err != nil {
		c.bufs.put(buf)
		c.mu.Unlock()
		return nil, nil, err
	}
	e := c.insert(g, buf)
	e.refs++
	c.mu.Unlock()
	return e.data, func() { c.release(e) }, nil
}

// peek returns generation g's data if it is cached, without loading it,
// and the release function to call when done; nil if it is not.
func (c *genCache) peek(g int) ([]byte, func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[g]
	if !ok {
		return nil, nil
	}
	e := el.Value.(*cacheEntry)
	c.lru.MoveToFront(el)
	e.refs++
	return e.data, func() { c.release(e) }
}

// put caches a copy of generation g's data (padded to whole blocks), as
// just decoded: the neighbours still missing it ask for it next, and
// serving them from memory spares re-reading what was just written. A
// generation cached already, or being loaded, is left alone.
func (c *genCache) put(g int, data []byte) {
	c.mu.Lock()
	if _, ok := c.entries[g]; ok || c.loading[g] != nil {
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	buf := c.bufs.get()
	if cap(buf) < len(data) {
		buf = make([]byte, len(data))
	}
	buf = buf[:len(data)]
	copy(buf, data)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.entries[g]; ok || c.loading[g] != nil {
		c.bufs.put(buf)
		return
	}
	c.insert(g, buf)
}

func (c *genCache) insert(g int, data []byte) *cacheEntry {
	e := &cacheEntry{gen: g, data: data}
	c.entries[g] = c.lru.PushFront(e)
	for c.lru.Len() > c.cap {
		el := c.lru.Back()
		old := el.Value.(*cacheEntry)
		c.lru.Remove(el)
		delete(c.entries, old.gen)
		old.dead = true
		if old.refs == 0 {
			c.bufs.put(old.data)
		}
	}
	return e
}

func (c *genCache) release(e *cacheEntry) {
	c.mu.Lock()
	e.refs--
	if e.dead && e.refs == 0 {
		c.bufs.put(e.data)
	}
	c.mu.Unlock()
}
