package netmap

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// WatcherConfig configures a Watcher. The zero value serves the built-in
// Default map and never reloads anything.
type WatcherConfig struct {
	// Files are the map files, consulted together: for each address the
	// most specific (longest-prefix) answer wins and fields it lacks are
	// filled from the other files, so that a GeoLite2 City database and an
	// ASN database (or a CSV of ISP overrides) combine. A file whose name
	// ends in ".mmdb" is a MaxMind DB, any other is CSV or JSON (see Parse).
	// The built-in Default map is always consulted last. Default: none.
	Files []string
	// Interval is how often the files' size and modification time are
	// checked; a change reloads them all. Default 5s; negative disables
	// polling (Reload still works, e.g. on SIGHUP).
	Interval time.Duration
	// Logger receives reload events. Default: discard.
	Logger *slog.Logger
}

// Watcher holds the current network map built from files and swaps in a new
// one, atomically, when the files change or Reload is called. Lookups never
// block and never see a half-loaded map; a reload that fails keeps the old
// map. A Watcher is safe for concurrent use; the traffic manager and the
// tracker can share one.
type Watcher struct {
	cfg WatcherConfig
	log *slog.Logger
	cur atomic.Pointer[stack]
	gen atomic.Uint64

	mu     sync.Mutex // serialises reloads
	stamps []fileStamp
}

// stack is one loaded generation of the files, most important first.
type stack struct {
	layers []entryLooker
}

type entryLooker interface {
	LookupEntry(netip.Addr) (Entry, bool)
}

type fileStamp struct {
	size int64
	mod  time.Time
}

// NewWatcher loads cfg.Files and returns a Watcher serving them. It fails
// when any file cannot be loaded.
func NewWatcher(cfg WatcherConfig) (*Watcher, error) {
	if cfg.Interval == 0 {
		cfg.Interval = 5 * time.Second
	}
	w := &Watcher{cfg: cfg, log: cfg.Logger}
	if w.log == nil {
		w.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := w.Reload(); err != nil {
		return nil, err
	}
	return w, nil
}

// Reload reads every file again and swaps the new map in. On error the
// current map stays in service and the error says which file failed.
func (w *Watcher) Reload() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	stamps := w.statAll()
	s := &stack{}
	for _, path := range w.cfg.Files {
		var l entryLooker
		var err error
		if strings.HasSuffix(strings.ToLower(path), ".mmdb") {
			l, err = OpenMMDB(path)
		} else {
			l, err = Load(path)
		}
		if err != nil {
			w.log.Warn("network map reload failed; keeping the previous map", "file", path, "err", err)
			return err
		}
		s.layers = append(s.layers, l)
	}
	s.layers = append(s.layers, Default())
	w.cur.Store(s)
	w.stamps = stamps
	n := w.gen.Add(1)
	w.log.Info("network map loaded", "files", len(w.cfg.Files), "generation", n)
	return nil
}

// Generation counts successful loads, starting at 1 for the one NewWatcher
// does.
func (w *Watcher) Generation() uint64 { return w.gen.Load() }

func (w *Watcher) statAll() []fileStamp {
	out := make([]fileStamp, len(w.cfg.Files))
	for i, p := range w.cfg.Files {
		if fi, err := os.Stat(p); err == nil {
			out[i] = fileStamp{fi.Size(), fi.ModTime()}
		}
	}
	return out
}

func (w *Watcher) changed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.statAll()
	for i := range now {
		if now[i] != w.stamps[i] {
			return true
		}
	}
	return false
}

// Run polls the files every Interval and reloads them when one changes,
// until ctx is done; it then returns nil. With polling disabled it just
// waits for ctx. Errors are logged, not returned: the old map stays.
func (w *Watcher) Run(ctx context.Context) error {
	if w.cfg.Interval < 0 || len(w.cfg.Files) == 0 {
		<-ctx.Done()
		return nil
	}
	t := time.NewTicker(w.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if w.changed() {
				_ = w.Reload()
			}
		}
	}
}

// Lookup returns what the current map knows about a.
func (w *Watcher) Lookup(a netip.Addr) (Location, bool) {
	e, ok := w.LookupEntry(a)
	return e.Location, ok
}

// LookupEntry returns what the current map knows about a, with the prefix of
// the most specific answer.
func (w *Watcher) LookupEntry(a netip.Addr) (Entry, bool) {
	return w.cur.Load().lookupEntry(a)
}

func (s *stack) lookupEntry(a netip.Addr) (Entry, bool) {
	var best Entry
	found := false
	var parts [8]Entry
	n := 0
	for _, l := range s.layers {
		e, ok := l.LookupEntry(a)
		if !ok {
			continue
		}
		if !found || e.Prefix.Bits() > best.Prefix.Bits() {
			best = e
		}
		found = true
		if n < len(parts) {
			parts[n] = e
			n++
		}
	}
	if !found {
		return Entry{}, false
	}
	// Fill what the most specific answer lacks from the others, in order.
	for _, e := range parts[:n] {
		fill(&best.Location, e.Location)
	}
	return best, true
}

func fill(dst *Location, src Location) {
	if dst.ISP == "" {
		dst.ISP = src.ISP
	}
	if dst.ASN == 0 {
		dst.ASN = src.ASN
	}
	if dst.Region == "" {
		dst.Region = src.Region
	}
	if dst.Country == "" {
		dst.Country = src.Country
	}
	if !dst.HasCoordinates() {
		dst.Lat, dst.Lon = src.Lat, src.Lon
	}
}
