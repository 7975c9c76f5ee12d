package cachestore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
)

// DiskConfig configures a Disk store.
type DiskConfig struct {
	// Dir is the directory that holds the objects. Required.
	Dir string
	// Budget caps the bytes held: bodies, keys, metadata and a fixed
	// per-object overhead. Zero means 1 GiB.
	Budget int64
	// Sync makes Put fsync each file before renaming it into place, so an
	// object survives power loss once Put returns. Off by default: without
	// it a crash can lose recent objects but never presents a torn one,
	// because every body is checked against its CRC-32C before first use
	// after a restart.
	Sync bool
	// Logger receives load and I/O problems; nil discards.
	Logger *slog.Logger
}

// Disk is the disk tier. Each object is one file: the body first (so the
// file can be handed to sendfile), then a trailer with the key, group,
// tags, metadata, lengths and checksums. Files are written to a temporary
// name and renamed into place, so a reader never sees a partial object.
// An existing directory is indexed again on open.
type Disk struct {
	cfg    DiskConfig
	ix     *index
	log    *slog.Logger
	closed atomic.Bool
}

const (
	trailerMagic = "AVC1"
	maxTrailer   = 4<<20 + MaxKeyLen
	objExt       = ".obj"
	tmpPrefix    = ".tmp-"
)

// castagnoli is made when first used, not as every command starts.
var castagnoli = sync.OnceValue(func() *crc32.Table { return crc32.MakeTable(crc32.Castagnoli) })

// OpenDisk opens (creating if needed) a disk store and indexes the objects
// already in it. Files that fail their trailer checks are removed.
func OpenDisk(cfg DiskConfig) (*Disk, error) {
	if cfg.Dir == "" {
		return nil, errors.New("cachestore: disk store needs a directory")
	}
	if cfg.Budget <= 0 {
		cfg.Budget = 1 << 30
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Disk{cfg: cfg, ix: newIndex(cfg.Budget), log: log}
	for i := 0; i < 256; i++ {
		if err := os.MkdirAll(filepath.Join(cfg.Dir, "objects", fmt.Sprintf("%02x", i)), 0o755); err != nil {
			return nil, fmt.Errorf("cachestore: open disk: %w", err)
		}
	}
	if err := d.load(); err != nil {
		return nil, err
	}
	return d, nil
}

func (d *Disk) load() error {
	root := filepath.Join(d.cfg.Dir, "objects")
	return filepath.WalkDir(root, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() {
			return nil
		}
		if strings.HasPrefix(e.Name(), tmpPrefix) {
			removeQuiet(p) // leftover of an interrupted write
			return nil
		}
		if filepath.Ext(p) != objExt {
			return nil
		}
		obj, err := readTrailerFile(p)
		if err != nil {
			d.log.Warn("cachestore: dropping bad object", "path", p, "err", err)
			removeQuiet(p)
			return nil
		}
		obj.disk = d
		d.ix.mu.Lock()
		ev := d.ix.insert(obj)
		d.ix.mu.Unlock()
		d.release(obj, ev)
		return nil
	})
}

// readTrailerFile reads and checks the trailer of an object file.
func readTrailerFile(p string) (*Object, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() < 8 {
		return nil, ErrCorrupt
	}
	var tail [8]byte
	if _, err := f.ReadAt(tail[:], st.Size()-8); err != nil {
		return nil, err
	}
	if string(tail[4:]) != trailerMagic {
		return nil, ErrCorrupt
	}
	n := int64(binary.LittleEndian.Uint32(tail[:4]))
	if n > maxTrailer || n+8 > st.Size() {
		return nil, ErrCorrupt
	}
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, st.Size()-8-n); err != nil {
		return nil, err
	}
	t, err := decodeTrailer(buf)
	if err != nil {
		return nil, err
	}
	if t.bodyLen+n+8 != st.Size() {
		return nil, ErrCorrupt
	}
	// metadata stays on disk: the index keeps keys, sizes and checksums only
	return &Object{Key: t.key, Group: t.group, Tags: t.tags, Size: t.bodyLen, path: p, crc: t.bodyCRC, tlen: n}, nil
}

// trailer is the decoded description of an object file.
type trailer struct {
	key, group string
	tags       []string
	meta       []byte
	bodyLen    int64
	bodyCRC    uint32
}

// encodeTrailer lays out: u32 keyLen, u16 groupLen, u16 nTags, u32 metaLen,
// u64 bodyLen, u32 bodyCRC, key, group, tags (u16 len + bytes each), meta,
// u32 CRC-32C of everything before it.
func encodeTrailer(t trailer) []byte {
	size := 24 + len(t.key) + len(t.group) + len(t.meta) + 4
	for _, tg := range t.tags {
		size += 2 + len(tg)
	}
	b := make([]byte, 0, size)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(t.key)))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(t.group)))
	b = binary.LittleEndian.AppendUint16(b, uint16(len(t.tags)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(t.meta)))
	b = binary.LittleEndian.AppendUint64(b, uint64(t.bodyLen))
	b = binary.LittleEndian.AppendUint32(b, t.bodyCRC)
	b = append(b, t.key...)
	b = append(b, t.group...)
	for _, tg := range t.tags {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(tg)))
		b = append(b, tg...)
	}
	b = append(b, t.meta...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli()))
}

// decodeTrailer is the inverse of encodeTrailer. It rejects anything that
// does not check out: lengths past the end, a bad checksum, trailing bytes.
func decodeTrailer(b []byte) (trailer, error) {
	var t trailer
	if len(b) < 28 {
		return t, ErrCorrupt
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, castagnoli()) != sum {
		return t, ErrCorrupt
	}
	keyLen := int(binary.LittleEndian.Uint32(body[0:]))
	groupLen := int(binary.LittleEndian.Uint16(body[4:]))
	nTags := int(binary.LittleEndian.Uint16(body[6:]))
	metaLen := int(binary.LittleEndian.Uint32(body[8:]))
	bodyLen := binary.LittleEndian.Uint64(body[12:])
	t.bodyCRC = binary.LittleEndian.Uint32(body[20:])
	if bodyLen > 1<<40 || keyLen == 0 || keyLen > MaxKeyLen {
		return t, ErrCorrupt
	}
	t.bodyLen = int64(bodyLen)
	rest := body[24:]
	take := func(n int) ([]byte, bool) {
		if n < 0 || n > len(rest) {
			return nil, false
		}
		v := rest[:n]
		rest = rest[n:]
		return v, true
	}
	k, ok := take(keyLen)
	if !ok {
		return t, ErrCorrupt
	}
	g, ok := take(groupLen)
	if !ok {
		return t, ErrCorrupt
	}
	t.key, t.group = string(k), string(g)
	for i := 0; i < nTags; i++ {
		l, ok := take(2)
		if !ok {
			return t, ErrCorrupt
		}
		tg, ok := take(int(binary.LittleEndian.Uint16(l)))
		if !ok {
			return t, ErrCorrupt
		}
		t.tags = append(t.tags, string(tg))
	}
	m, ok := take(metaLen)
	if !ok || len(rest) != 0 {
		return t, ErrCorrupt
	}
	t.meta = append([]byte(nil), m...)
	return t, nil
}

func (d *Disk) pathFor(key string) string {
	h := sha256.Sum256([]byte(key))
	x := hex.EncodeToString(h[:])
	return filepath.Join(d.cfg.Dir, "objects", x[:2], x+objExt)
}

// Get implements Store. The index keeps no metadata in memory (so a
// large disk tier of small objects costs little RAM); Get reads it from
// the object's trailer and returns a copy of the index entry that carries
// it.
func (d *Disk) Get(key string) (*Object, bool) {
	o, ok := d.ix.get(key)
	if !ok {
		return nil, false
	}
	f, err := os.Open(o.path)
	if err != nil {
		d.drop(o)
		return nil, false
	}
	buf := make([]byte, o.tlen)
	_, err = f.ReadAt(buf, o.Size)
	f.Close()
	if err != nil {
		d.drop(o)
		return nil, false
	}
	t, err := decodeTrailer(buf)
	if err != nil || t.key != o.Key {
		d.drop(o)
		return nil, false
	}
	return &Object{Key: o.Key, Group: o.Group, Tags: o.Tags, Meta: t.meta, Size: o.Size, path: o.path, disk: d, crc: o.crc, base: o}, true
}

// drop removes an index entry whose file is gone or damaged.
func (d *Disk) drop(o *Object) {
	d.log.Warn("cachestore: object file missing or damaged, dropping", "key", o.Key)
	d.ix.mu.Lock()
	if n := d.ix.keys[o.Key]; n != nil && n.obj == o {
		d.ix.remove(n)
		removeQuiet(o.path)
	}
	d.ix.mu.Unlock()
}

// Put implements Store. The object is visible to Get only once its file is
// complete and renamed into place.
func (d *Disk) Put(ctx context.Context, it Item) error {
	if d.closed.Load() {
		return ErrClosed
	}
	if err := checkKey(it.Key); err != nil {
		return err
	}
	if len(it.Group) > 1<<15 || len(it.Tags) > 1<<10 {
		return ErrBadKey
	}
	for _, t := range it.Tags {
		if len(t) > 1<<15 {
			return ErrBadKey
		}
	}
	d.ix.mu.RLock()
	fits := d.ix.fits(it.Group, int64(len(it.Body)+len(it.Key)+len(it.Meta)+len(it.Group))+objectOverhead)
	d.ix.mu.RUnlock()
	if !fits {
		return ErrTooLarge
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	crc := crc32.Checksum(it.Body, castagnoli())
	tr := encodeTrailer(trailer{key: it.Key, group: it.Group, tags: it.Tags, meta: it.Meta, bodyLen: int64(len(it.Body)), bodyCRC: crc})
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	p := d.pathFor(it.Key)
	// the temporary file lives beside its final name: one hot temp
	// directory makes file creation several times slower on ext4
	tmp := filepath.Join(filepath.Dir(p), tmpPrefix+hex.EncodeToString(rnd[:]))
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("cachestore: put %q: %w", it.Key, err)
	}
	var tail [8]byte
	binary.LittleEndian.PutUint32(tail[:4], uint32(len(tr)))
	copy(tail[4:], trailerMagic)
	_, err = f.Write(it.Body)
	if err == nil {
		_, err = f.Write(tr)
	}
	if err == nil {
		_, err = f.Write(tail[:])
	}
	if err == nil && d.cfg.Sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		removeQuiet(tmp)
		return fmt.Errorf("cachestore: put %q: %w", it.Key, err)
	}
	obj := &Object{Key: it.Key, Group: it.Group, Tags: it.Tags, Size: int64(len(it.Body)), path: p, disk: d, crc: crc, tlen: int64(len(tr))}
	obj.verified.Store(true)
	d.ix.mu.Lock()
	err = os.Rename(tmp, p)
	if err != nil {
		d.ix.mu.Unlock()
		removeQuiet(tmp)
		return fmt.Errorf("cachestore: put %q: %w", it.Key, err)
	}
	ev := d.ix.insert(obj)
	d.ix.mu.Unlock()
	d.release(obj, ev)
	return nil
}

// release removes the files of evicted or replaced objects, except the one
// that now holds cur.
func (d *Disk) release(cur *Object, ev []*Object) {
	for _, o := range ev {
		if cur != nil && o.path == cur.path {
			if o == cur {
				// cur itself was evicted to make room
				removeQuiet(o.path)
			}
			continue
		}
		removeQuiet(o.path)
	}
}

func (d *Disk) open(o *Object) (Body, error) {
	if o.base != nil {
		o = o.base
	}
	f, err := os.Open(o.path)
	if err != nil {
		return nil, fmt.Errorf("cachestore: open %q: %w", o.Key, err)
	}
	if !o.verified.Load() {
		h := crc32.New(castagnoli())
		if _, err := io.Copy(h, io.NewSectionReader(f, 0, o.Size)); err != nil || h.Sum32() != o.crc {
			f.Close()
			d.drop(o)
			return nil, ErrCorrupt
		}
		o.verified.Store(true)
	}
	return f, nil
}

func (d *Disk) deleteKeys(keys []string) int {
	var gone []*Object
	d.ix.mu.Lock()
	for _, k := range keys {
		if o := d.ix.deleteKey(k); o != nil {
			gone = append(gone, o)
			removeQuiet(o.path)
		}
	}
	d.ix.mu.Unlock()
	return len(gone)
}

// Delete implements Store.
func (d *Disk) Delete(key string) bool { return d.deleteKeys([]string{key}) == 1 }

// DeleteFamily implements Store.
func (d *Disk) DeleteFamily(family string) int {
	d.ix.mu.RLock()
	keys := d.ix.familyKeys(family)
	d.ix.mu.RUnlock()
	return d.deleteKeys(keys)
}

// DeletePrefix implements Store.
func (d *Disk) DeletePrefix(group, prefix string) int {
	d.ix.mu.RLock()
	keys := d.ix.prefixKeys(group, prefix, 0)
	d.ix.mu.RUnlock()
	return d.deleteKeys(keys)
}

// DeleteTag implements Store.
func (d *Disk) DeleteTag(group, tag string) int {
	d.ix.mu.RLock()
	keys := d.ix.tagKeys(group, tag)
	d.ix.mu.RUnlock()
	return d.deleteKeys(keys)
}

// Keys implements Store.
func (d *Disk) Keys(group, prefix string, limit int) []string {
	d.ix.mu.RLock()
	defer d.ix.mu.RUnlock()
	return d.ix.prefixKeys(group, prefix, limit)
}

// SetGroupBudget implements Store.
func (d *Disk) SetGroupBudget(group string, b int64) {
	d.ix.mu.Lock()
	d.ix.setBudget(group, b)
	d.ix.mu.Unlock()
}

// Stats implements Store.
func (d *Disk) Stats() Stats {
	d.ix.mu.RLock()
	defer d.ix.mu.RUnlock()
	return d.ix.stats()
}

// Close implements Store. Files stay on disk for the next OpenDisk.
func (d *Disk) Close() error {
	d.closed.Store(true)
	return nil
}
