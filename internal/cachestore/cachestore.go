// Package cachestore keeps cached objects for the edge: a memory tier and a
// disk tier behind one small interface, byte budgets per tier and per group
// (a property), SIEVE eviction, and an index by key family and by tag
// (surrogate key) for purges.
//
// An object is an opaque metadata blob plus a body of at most a few
// megabytes; large content is stored as several objects (slices) whose keys
// share a family. The family of a key is its prefix up to the first NUL
// byte, so "k", "k\x00s\x001" and "k\x00v\x00gzip" are one family and
// DeleteFamily("k") removes them all. The store interprets nothing else.
//
// Every Store in this package is safe for concurrent use. Objects returned
// by Get are immutable; a Delete or eviction does not disturb a reader that
// already holds one.
package cachestore

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync/atomic"
)

// Errors returned by stores.
var (
	ErrTooLarge = errors.New("cachestore: object larger than the budget")
	ErrCorrupt  = errors.New("cachestore: stored object is corrupt")
	ErrClosed   = errors.New("cachestore: store closed")
	ErrBadKey   = errors.New("cachestore: invalid key")
)

// MaxKeyLen bounds keys so that a hostile URL cannot bloat the index.
const MaxKeyLen = 8 << 10

// Item describes an object to store.
type Item struct {
	// Key identifies the object; at most MaxKeyLen bytes.
	Key string
	// Group is the budget group (the property name); "" is a group too.
	Group string
	// Tags are surrogate keys for DeleteTag.
	Tags []string
	// Meta is opaque metadata, returned as is by Get.
	Meta []byte
	// Body is the content. The store takes ownership: the caller must not
	// modify it after Put.
	Body []byte
}

// Object is a stored object. It is immutable and safe to share.
type Object struct {
	Key   string
	Group string
	Tags  []string
	Meta  []byte
	// Size is the body length in bytes.
	Size int64

	body     []byte // memory tier
	path     string // disk tier
	disk     *Disk
	crc      uint32
	tlen     int64   // disk: trailer length (metadata is read from it on Get)
	base     *Object // disk: the index entry this copy was made from
	verified atomic.Bool
	memo     atomic.Pointer[any]
}

// Memo returns a value derived from the object (typically its decoded
// Meta), computing it with f on first use and caching it on the object.
// Concurrent first calls may each run f; one result wins.
func (o *Object) Memo(f func(*Object) any) any {
	if p := o.memo.Load(); p != nil {
		return *p
	}
	v := f(o)
	o.memo.Store(&v)
	return v
}

// Family returns the family of a key: its prefix before the first NUL byte.
func Family(key string) string {
	if i := strings.IndexByte(key, 0); i >= 0 {
		return key[:i]
	}
	return key
}

// Bytes returns the body when the object is held in memory, else nil. The
// caller must not modify it.
func (o *Object) Bytes() []byte { return o.body }

// Body is an open object body. *os.File implements it, so a disk body
// copied to a TCP connection can use sendfile.
type Body interface {
	io.Reader
	io.ReaderAt
	io.Seeker
	io.Closer
}

type memBody struct{ *bytes.Reader }

func (memBody) Close() error { return nil }

// Open opens the body for reading. The first Open of a disk object loaded
// after a restart verifies its checksum and returns ErrCorrupt (and removes
// the object) on a mismatch.
func (o *Object) Open() (Body, error) {
	if o.path == "" {
		return memBody{bytes.NewReader(o.body)}, nil
	}
	return o.disk.open(o)
}

// ReadAll returns the whole body.
func (o *Object) ReadAll() ([]byte, error) {
	if o.path == "" {
		return o.body, nil
	}
	b, err := o.Open()
	if err != nil {
		return nil, err
	}
	defer b.Close()
	buf := make([]byte, o.Size)
	if _, err := io.ReadFull(b, buf); err != nil {
		return nil, err
	}
	return buf, nil
}

// Stats are a store's counters. Bytes count what budgets count: bodies,
// keys, metadata and a fixed per-object overhead.
type Stats struct {
	Bytes     int64
	Objects   int64
	Evictions int64
	// Groups holds bytes per group.
	Groups map[string]int64
}

// Store is what the edge needs of a cache tier.
type Store interface {
	// Get returns the object stored under key.
	Get(key string) (*Object, bool)
	// Put stores it, replacing any object with the same key, evicting
	// others to stay within budgets.
	Put(ctx context.Context, it Item) error
	// Delete removes one key; it reports whether it was present.
	Delete(key string) bool
	// DeleteFamily removes every key of a family and returns how many.
	DeleteFamily(family string) int
	// DeletePrefix removes every family of group that starts with prefix.
	DeletePrefix(group, prefix string) int
	// DeleteTag removes every object of group tagged with tag.
	DeleteTag(group, tag string) int
	// Keys lists up to limit keys of group whose family starts with prefix.
	Keys(group, prefix string, limit int) []string
	// SetGroupBudget caps a group's bytes (0 = only the tier budget).
	SetGroupBudget(group string, bytes int64)
	// Stats returns counters.
	Stats() Stats
	// Close releases resources.
	Close() error
}

var (
	_ Store = (*Memory)(nil)
	_ Store = (*Disk)(nil)
	_ Store = (*Tiered)(nil)
)

func checkKey(k string) error {
	if k == "" || len(k) > MaxKeyLen {
		return ErrBadKey
	}
	return nil
}

func removeQuiet(p string) { _ = os.Remove(p) }
