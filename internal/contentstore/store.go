// Package contentstore keeps published content on local disk: for each
// content ID the signed manifest and the file's bytes, indexed by property.
//
// Content becomes visible only once it is complete and verified. An upload
// streams into a temporary file while every generation's SHA-256 and the
// whole-file SHA-256 are checked against the manifest and the size is
// enforced; only then is the file fsynced and renamed to its final name. A
// crash at any moment therefore leaves either no data file or a complete,
// verified one. Open reloads what is on disk, removes leftover temporary
// files and moves anything inconsistent aside into quarantine/, so a
// corrupt or partial object is never presented.
//
// Layout under the store's directory:
//
//	avalanche-store              marker file: "avalanche content store v1"
//	objects/ab/<id>.manifest     signed manifest (ab = first two hex digits of id)
//	objects/ab/<id>.data         file bytes, present only once verified
//	tmp/                         uploads in progress (emptied by Open)
//	quarantine/                  inconsistent files found by Open or Verify
//
// A Store is safe for concurrent use. Two Stores must not share a directory.
package contentstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"avalanche/internal/atomicfile"
	"avalanche/internal/manifest"
)

// Errors returned (wrapped) by Store methods.
var (
	ErrNotFound     = errors.New("contentstore: no such content")
	ErrIncomplete   = errors.New("contentstore: content not uploaded yet")
	ErrBusy         = errors.New("contentstore: an upload of this content is already in progress")
	ErrQuota        = errors.New("contentstore: property quota exceeded")
	ErrTooLong      = errors.New("contentstore: upload longer than the manifest's size")
	ErrTooShort     = errors.New("contentstore: upload shorter than the manifest's size")
	ErrHashMismatch = errors.New("contentstore: upload does not match the manifest")
	ErrNotStore     = errors.New("contentstore: directory is not a content store")
	ErrClosed       = errors.New("contentstore: closed")
)

const (
	markerName    = "avalanche-store"
	markerContent = "avalanche content store v1\n"
	manifestExt   = ".manifest"
	dataExt       = ".data"
	copyBufSize   = 256 << 10
)

// Config configures a Store. The zero value is not usable: Dir is required.
type Config struct {
	// Dir is the store's directory; it is created if missing. Required.
	Dir string
	// Logger receives warnings about files moved to quarantine and removed
	// temporary files. Nil discards.
	Logger *slog.Logger
	// VerifyOnOpen re-hashes every stored file against its manifest when the
	// store opens, quarantining any that no longer match. Default false: a
	// data file is only ever renamed into place after verification, so this
	// guards against bit rot and tampering, not against crashes.
	VerifyOnOpen bool
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Entry describes one stored object.
type Entry struct {
	ID       manifest.ID
	Property string
	Name     string
	Size     int64
	// Created is the publication time signed into the manifest.
	Created time.Time
	// Complete reports whether the file bytes are stored and verified.
	Complete bool
	// Stored is when the bytes were committed (zero if not complete).
	Stored time.Time
}

// Usage is what a property occupies: objects (complete or not) and bytes
// (each object's file size plus its manifest length).
type Usage struct {
	Objects int
	Bytes   int64
}

// object is the in-memory index entry of one content ID.
type object struct {
	m         *manifest.Manifest
	complete  bool
	stored    time.Time
	uploading bool
}

func (o *object) cost() int64 { return o.m.Size + int64(len(o.m.Encoded())) }

// Store is a content store on local disk. See the package comment.
type Store struct {
	dir    string
	log    *slog.Logger
	now    func() time.Time
	mu     sync.Mutex
	objs   map[manifest.ID]*object
	usage  map[string]Usage
	closed bool
}

// Open opens (creating if needed) the store in cfg.Dir, removes leftover
// temporary files and loads the index from disk. Files that do not verify
// are moved to quarantine/ and logged.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("contentstore: no directory given")
	}
	s := &Store{
		dir:   cfg.Dir,
		log:   cfg.Logger,
		now:   cfg.Now,
		objs:  make(map[manifest.ID]*object),
		usage: make(map[string]Usage),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	if err := s.initDir(); err != nil {
		return nil, err
	}
	if err := s.cleanTmp(); err != nil {
		return nil, err
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	if cfg.VerifyOnOpen {
		for _, e := range s.List("") {
			if !e.Complete {
				continue
			}
			if err := s.Verify(ctx, e.ID); err != nil && !errors.Is(err, ErrHashMismatch) && !errors.Is(err, ErrTooShort) && !errors.Is(err, ErrTooLong) {
				return nil, err
			}
		}
	}
	return s, nil
}

// Dir returns the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) initDir() error {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return fmt.Errorf("contentstore: %w", err)
	}
	marker := filepath.Join(s.dir, markerName)
	b, err := os.ReadFile(marker)
	switch {
	case err == nil:
		if string(b) != markerContent {
			return fmt.Errorf("%w: %s has unexpected content %q", ErrNotStore, marker, b)
		}
	case errors.Is(err, fs.ErrNotExist):
		ents, err := os.ReadDir(s.dir)
		if err != nil {
			return fmt.Errorf("contentstore: %w", err)
		}
		if len(ents) > 0 {
			return fmt.Errorf("%w: %s is not empty and has no %s marker", ErrNotStore, s.dir, markerName)
		}
		if err := atomicfile.WriteFile(marker, []byte(markerContent), 0o644); err != nil {
			return fmt.Errorf("contentstore: %w", err)
		}
	default:
		return fmt.Errorf("contentstore: %w", err)
	}
	for _, d := range []string{"objects", "tmp", "quarantine"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o755); err != nil {
			return fmt.Errorf("contentstore: %w", err)
		}
	}
	return nil
}

// cleanTmp removes every upload left in tmp/ by a previous process.
func (s *Store) cleanTmp() error {
	tmp := filepath.Join(s.dir, "tmp")
	ents, err := os.ReadDir(tmp)
	if err != nil {
		return fmt.Errorf("contentstore: %w", err)
	}
	for _, e := range ents {
		p := filepath.Join(tmp, e.Name())
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("contentstore: removing leftover upload: %w", err)
		}
		s.log.Info("removed leftover upload", "file", p)
	}
	return nil
}

func (s *Store) load() error {
	objects := filepath.Join(s.dir, "objects")
	shards, err := os.ReadDir(objects)
	if err != nil {
		return fmt.Errorf("contentstore: %w", err)
	}
	for _, sh := range shards {
		shardDir := filepath.Join(objects, sh.Name())
		if !sh.IsDir() || len(sh.Name()) != 2 {
			s.quarantine(shardDir, "unexpected entry in objects/")
			continue
		}
		files, err := os.ReadDir(shardDir)
		if err != nil {
			return fmt.Errorf("contentstore: %w", err)
		}
		// Manifests first, so that data files find their object.
		sort.Slice(files, func(i, j int) bool {
			return strings.HasSuffix(files[i].Name(), manifestExt) && !strings.HasSuffix(files[j].Name(), manifestExt)
		})
		for _, f := range files {
			s.loadFile(shardDir, f)
		}
	}
	return nil
}

// loadFile indexes one file of a shard directory, or moves it aside.
func (s *Store) loadFile(shardDir string, f fs.DirEntry) {
	name := f.Name()
	p := filepath.Join(shardDir, name)
	if strings.HasPrefix(name, ".") {
		// An atomicfile temporary left by a crash during a manifest write.
		if err := os.Remove(p); err == nil {
			s.log.Info("removed leftover temporary file", "file", p)
		}
		return
	}
	idHex, ext, ok := strings.Cut(name, ".")
	id, err := manifest.ParseID(idHex)
	if !ok || err != nil || idHex[:2] != filepath.Base(shardDir) || !f.Type().IsRegular() {
		s.quarantine(p, "unexpected file name")
		return
	}
	switch "." + ext {
	case manifestExt:
		b, err := readLimited(p, manifest.MaxEncodedLen)
		if err != nil {
			s.quarantine(p, err.Error())
			return
		}
		m, err := manifest.Parse(b)
		if err != nil {
			s.quarantine(p, err.Error())
			return
		}
		if m.ID() != id {
			s.quarantine(p, "manifest's content ID does not match its file name")
			return
		}
		o := &object{m: m}
		s.objs[id] = o
		u := s.usage[m.Property]
		u.Objects++
		u.Bytes += o.cost()
		s.usage[m.Property] = u
	case dataExt:
		o := s.objs[id]
		if o == nil {
			s.quarantine(p, "data without a manifest")
			return
		}
		fi, err := f.Info()
		if err != nil {
			s.quarantine(p, err.Error())
			return
		}
		if fi.Size() != o.m.Size {
			s.quarantine(p, fmt.Sprintf("size %d, manifest says %d", fi.Size(), o.m.Size))
			return
		}
		o.complete = true
		o.stored = fi.ModTime()
	default:
		s.quarantine(p, "unexpected file name")
	}
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("longer than %d bytes", limit)
	}
	return b, nil
}

// quarantine moves p into quarantine/ under a unique name and logs why.
func (s *Store) quarantine(p, why string) {
	dst := filepath.Join(s.dir, "quarantine", fmt.Sprintf("%s.%d.%s", filepath.Base(p), s.now().UnixNano(), randHex(4)))
	if err := os.Rename(p, dst); err != nil {
		s.log.Error("cannot quarantine inconsistent file", "file", p, "reason", why, "err", err)
		return
	}
	atomicfile.SyncDir(filepath.Dir(p))
	s.log.Warn("moved inconsistent file to quarantine", "file", p, "to", dst, "reason", why)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Store) shardDir(id manifest.ID) string {
	h := id.String()
	return filepath.Join(s.dir, "objects", h[:2])
}

func (s *Store) manifestPath(id manifest.ID) string {
	return filepath.Join(s.shardDir(id), id.String()+manifestExt)
}

func (s *Store) dataPath(id manifest.ID) string {
	return filepath.Join(s.shardDir(id), id.String()+dataExt)
}

// PutManifest stores a parsed, verified manifest. Checking that its
// publisher may publish for its property is the caller's job. quota is the
// property's byte limit (0 means none); the manifest is refused with
// ErrQuota if the property's usage plus this object's file size and
// manifest length would exceed it. created is false if the manifest was
// already stored (re-publishing is idempotent).
func (s *Store) PutManifest(m *manifest.Manifest, quota int64) (created bool, err error) {
	id := m.ID()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, ErrClosed
	}
	if _, ok := s.objs[id]; ok {
		return false, nil
	}
	o := &object{m: m}
	u := s.usage[m.Property]
	if quota > 0 && u.Bytes+o.cost() > quota {
		return false, fmt.Errorf("%w: %q uses %d of %d bytes, this object needs %d", ErrQuota, m.Property, u.Bytes, quota, o.cost())
	}
	// Written under the lock so that a concurrent Delete cannot interleave;
	// manifests are small.
	if err := os.MkdirAll(s.shardDir(id), 0o755); err != nil {
		return false, fmt.Errorf("contentstore: %w", err)
	}
	if err := atomicfile.WriteFile(s.manifestPath(id), m.Encoded(), 0o644); err != nil {
		return false, fmt.Errorf("contentstore: writing manifest: %w", err)
	}
	s.objs[id] = o
	u.Objects++
	u.Bytes += o.cost()
	s.usage[m.Property] = u
	return true, nil
}

// Upload streams the file bytes of content id from r into a temporary file,
// verifying each generation and the whole file against the manifest, and
// commits them only if everything matches. It reads at most the manifest's
// size plus one buffer from r. created is false if the content was already
// complete, in which case r is not read. On any error nothing is committed
// and the temporary file is removed.
func (s *Store) Upload(ctx context.Context, id manifest.ID, r io.Reader) (created bool, err error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false, ErrClosed
	}
	o := s.objs[id]
	switch {
	case o == nil:
		s.mu.Unlock()
		return false, fmt.Errorf("%w: %s (publish its manifest first)", ErrNotFound, id.Short())
	case o.complete:
		s.mu.Unlock()
		return false, nil
	case o.uploading:
		s.mu.Unlock()
		return false, fmt.Errorf("%w: %s", ErrBusy, id.Short())
	}
	o.uploading = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		o.uploading = false
		s.mu.Unlock()
	}()

	f, err := os.CreateTemp(filepath.Join(s.dir, "tmp"), id.String()+".*.part")
	if err != nil {
		return false, fmt.Errorf("contentstore: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := copyVerified(ctx, f, r, newVerifier(o.m)); err != nil {
		return false, err
	}
	if err := f.Sync(); err != nil {
		return false, fmt.Errorf("contentstore: sync upload: %w", err)
	}
	if err := f.Close(); err != nil {
		return false, fmt.Errorf("contentstore: %w", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false, ErrClosed
	}
	if s.objs[id] != o {
		return false, fmt.Errorf("%w: %s was deleted during the upload", ErrNotFound, id.Short())
	}
	if err := os.Rename(f.Name(), s.dataPath(id)); err != nil {
		return false, fmt.Errorf("contentstore: commit: %w", err)
	}
	committed = true
	if err := atomicfile.SyncDir(s.shardDir(id)); err != nil {
		// The rename happened; the data is verified. Report but keep it.
		s.log.Error("fsync after commit failed", "id", id.String(), "err", err)
	}
	o.complete = true
	o.stored = s.now()
	return true, nil
}

// copyVerified copies r to w through v, checking every chunk before it is
// written, until r ends; then it checks the totals.
func copyVerified(ctx context.Context, w io.Writer, r io.Reader, v *verifier) error {
	buf := make([]byte, copyBufSize)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, rerr := r.Read(buf)
		if n > 0 {
			if _, err := v.Write(buf[:n]); err != nil {
				return err
			}
			if _, err := w.Write(buf[:n]); err != nil {
				return fmt.Errorf("contentstore: writing upload: %w", err)
			}
		}
		if rerr == io.EOF {
			return v.finish()
		}
		if rerr != nil {
			return fmt.Errorf("contentstore: reading upload: %w", rerr)
		}
	}
}

// Content is an open, committed object: its manifest and its verified
// bytes. ReadAt may be called concurrently. The caller must Close it; the
// bytes stay readable until then even if the content is deleted.
type Content struct {
	m *manifest.Manifest
	f *os.File
}

var _ io.ReaderAt = (*Content)(nil)

// Manifest returns the content's signed manifest.
func (c *Content) Manifest() *manifest.Manifest { return c.m }

// Size returns the file size in bytes.
func (c *Content) Size() int64 { return c.m.Size }

// ReadAt implements io.ReaderAt over the file bytes.
func (c *Content) ReadAt(p []byte, off int64) (int, error) { return c.f.ReadAt(p, off) }

// NewReader returns an io.ReadSeeker over the whole file, independent of
// other readers of c (for http.ServeContent).
func (c *Content) NewReader() io.ReadSeeker { return io.NewSectionReader(c.f, 0, c.m.Size) }

// File returns the underlying open file. The caller must not close it or
// change its offset while others use c; it is exposed so that servers can
// use sendfile.
func (c *Content) File() *os.File { return c.f }

// Close releases the file.
func (c *Content) Close() error { return c.f.Close() }

// Open returns committed content. It returns ErrNotFound for unknown IDs and
// ErrIncomplete for content whose manifest is published but whose bytes
// are not.
func (s *Store) Open(id manifest.ID) (*Content, error) {
	s.mu.Lock()
	o := s.objs[id]
	closed := s.closed
	s.mu.Unlock()
	switch {
	case closed:
		return nil, ErrClosed
	case o == nil:
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id.Short())
	case !o.complete:
		return nil, fmt.Errorf("%w: %s", ErrIncomplete, id.Short())
	}
	f, err := os.Open(s.dataPath(id))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id.Short()) // deleted meanwhile
	}
	if err != nil {
		return nil, fmt.Errorf("contentstore: %w", err)
	}
	return &Content{m: o.m, f: f}, nil
}

// Stat returns the entry of any stored object, complete or not.
func (s *Store) Stat(id manifest.ID) (Entry, *manifest.Manifest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.objs[id]
	if o == nil {
		return Entry{}, nil, fmt.Errorf("%w: %s", ErrNotFound, id.Short())
	}
	return entryOf(id, o), o.m, nil
}

func entryOf(id manifest.ID, o *object) Entry {
	return Entry{
		ID:       id,
		Property: o.m.Property,
		Name:     o.m.Name,
		Size:     o.m.Size,
		Created:  o.m.Created,
		Complete: o.complete,
		Stored:   o.stored,
	}
}

// List returns the objects of property, or of all properties if property
// is "", complete or not, sorted by creation time then ID.
func (s *Store) List(property string) []Entry {
	s.mu.Lock()
	out := make([]Entry, 0, len(s.objs))
	for id, o := range s.objs {
		if property == "" || o.m.Property == property {
			out = append(out, entryOf(id, o))
		}
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID.String() < out[j].ID.String()
	})
	return out
}

// Usage returns what property occupies.
func (s *Store) Usage(property string) Usage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.usage[property]
}

// Delete removes an object: the data first, then the manifest, so that a
// crash in between leaves an incomplete object (manifest only), never data
// without its manifest. Readers that have it open keep reading until they
// close it.
func (s *Store) Delete(id manifest.ID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	o := s.objs[id]
	if o == nil {
		return fmt.Errorf("%w: %s", ErrNotFound, id.Short())
	}
	if err := removeIfExists(s.dataPath(id)); err != nil {
		return fmt.Errorf("contentstore: delete: %w", err)
	}
	o.complete = false
	if err := atomicfile.SyncDir(s.shardDir(id)); err != nil {
		return fmt.Errorf("contentstore: delete: %w", err)
	}
	if err := removeIfExists(s.manifestPath(id)); err != nil {
		return fmt.Errorf("contentstore: delete: %w", err)
	}
	atomicfile.SyncDir(s.shardDir(id))
	delete(s.objs, id)
	u := s.usage[o.m.Property]
	u.Objects--
	u.Bytes -= o.cost()
	if u.Objects == 0 {
		delete(s.usage, o.m.Property)
	} else {
		s.usage[o.m.Property] = u
	}
	return nil
}

func removeIfExists(p string) error {
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Verify re-reads the stored bytes of id and checks them against the
// manifest. On a mismatch the data file is moved to quarantine, the object
// becomes incomplete (it can be uploaded again) and the mismatch error is
// returned.
func (s *Store) Verify(ctx context.Context, id manifest.ID) error {
	c, err := s.Open(id)
	if err != nil {
		return err
	}
	verr := copyVerified(ctx, io.Discard, c.NewReader(), newVerifier(c.m))
	c.Close()
	if verr == nil || !(errors.Is(verr, ErrHashMismatch) || errors.Is(verr, ErrTooLong) || errors.Is(verr, ErrTooShort)) {
		return verr
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if o := s.objs[id]; o != nil && o.complete {
		o.complete = false
		o.stored = time.Time{}
		s.quarantine(s.dataPath(id), verr.Error())
	}
	return verr
}

// Close marks the store closed; later calls fail with ErrClosed. Open
// Contents stay readable until closed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
