// Package client downloads published content: it fetches and checks the
// signed manifest, joins the content's swarm through the tracker, writes
// verified generations into NAME.partial (resuming from whatever a previous
// run left there), falls back to HTTP ranges from the origin or an edge when
// peers are too slow, and renames the file to its final name once every
// generation is verified (the signed manifest's generation hashes cover the
// whole file). It can also stream the content in order while it
// downloads, and keep seeding afterwards.
package client

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"avalanche/internal/atomicfile"
	"avalanche/internal/identity"
	"avalanche/internal/manifest"
	"avalanche/internal/swarm"
)

// Errors, for exit codes and messages.
var (
	ErrNotFound    = errors.New("content not found")
	ErrUnreachable = errors.New("no source reachable")
	ErrIntegrity   = errors.New("content failed verification")
	ErrDisk        = errors.New("cannot write output")
	// ErrNoTracker is what an Announcer returns when it found no tracker
	// after all: the download goes on with the sources' seeds alone.
	ErrNoTracker = errors.New("no tracker")
)

// Announcer introduces the client to its swarm (a tracker client).
type Announcer interface {
	Announce(ctx context.Context, a Announce) (peers []swarm.PeerAddr, interval time.Duration, err error)
}

// Announce is what the client tells the tracker about itself.
type Announce struct {
	Content  manifest.ID
	Port     uint16
	Event    string // "started", "progress", "completed", "stopped"
	Left     int64
	Uploaded int64
	// Downloaded bytes by source.
	FromPeers, FromOrigin, FromEdge, FromHTTP int64
	Complete                                  bool
}

// Config configures one download. Key, Content and at least one of
// Sources or Tracker are required.
type Config struct {
	Key     ed25519.PrivateKey
	Content manifest.ID
	// Sources are HTTP base URLs of the origin or edges: they serve the
	// manifest, plain byte ranges for the fallback, and the swarm's seeds.
	Sources []string
	// Tracker introduces peers; nil means only the sources' seeds.
	Tracker Announcer
	// Output is the final path; default: the manifest's file name in the
	// current directory. A directory means that directory + file name.
	Output string
	// Repair, when Output exists but does not hold the content, keeps
	// its generations that match the manifest and downloads the rest into
	// it (seed's FILE: an incomplete or damaged copy). A file that holds
	// none of the content is refused all the same. Without Repair any
	// other file under the output name is refused, never overwritten.
	Repair bool
	// Stream, when set, receives the content in order while it downloads.
	Stream io.Writer
	// Listen is the peer listener address; default ":0". "-" disables
	// listening (the client then only dials out).
	Listen string
	// Advertise overrides the port announced to the tracker.
	Advertise uint16
	// UploadLimit and DownloadLimit in bytes/s; 0 = unlimited.
	UploadLimit, DownloadLimit int64
	MaxPeers                   int
	// Allow, if non-empty, lists the only prefixes peers may connect from
	// or be dialed at; Deny lists prefixes they never may (Deny wins). The
	// seeds the Sources name (the origin's and edges' peer addresses) are
	// allowed too unless denied: an allow list such as LAN-only restricts
	// the peers, not the origin or edge the user chose.
	Allow, Deny []netip.Prefix
	// Slots and Depth tune the engine (see swarm.Config).
	Slots, Depth int
	// MinRate: below this download rate (bytes/s) for FallbackDelay, whole
	// generations are fetched over HTTP within FallbackBudget bytes.
	// Defaults: 0 (fallback off), 5 s, the file size.
	MinRate        int64
	FallbackDelay  time.Duration
	FallbackBudget int64
	// SeedTime and SeedRatio keep the client serving after it completes,
	// until both are met (zero values: leave at once).
	SeedTime  time.Duration
	SeedRatio float64
	// Progress is called about once a second and at the end.
	Progress func(Progress)
	// Completed, if set, is called as soon as the file is verified and has
	// its final name, before any seeding.
	Completed func(*Result)
	// Joined, if set, is called with the swarm once joined (diagnostics).
	Joined func(*swarm.Swarm)
	// Manifest, if set, is called with the verified manifest before the
	// download starts (e.g. to size memory limits).
	Manifest func(*manifest.Manifest)
	// HTTP is the client for sources; default http.DefaultClient with
	// timeouts.
	HTTP HTTPDoer
	// Logger receives events; nil discards.
	Logger *slog.Logger
}

// Progress is a snapshot of a download.
type Progress struct {
	Name       string
	Size       int64
	Done       int64 // bytes verified and written
	Rank       int64 // blocks held, including partial generations
	Blocks     int64
	Rate       float64 // payload bytes/s received, last few seconds
	ETA        time.Duration
	Peers      int
	FromPeers  int64
	FromOrigin int64
	FromEdge   int64
	FromHTTP   int64
	Uploaded   int64
	Elapsed    time.Duration
	Complete   bool
	Seeding    bool
	// Engine is the swarm engine's own counters (blocks in, non-innovative,
	// wasted…), for those who measure it.
	Engine swarm.Stats
}

// Result describes a finished download.
type Result struct {
	Manifest *manifest.Manifest
	Path     string
	Resumed  int // generations found complete at start
	Progress Progress
}

// Get downloads the content and returns once it is complete, verified and
// renamed, and the seeding conditions are met (or ctx ends).
func Get(ctx context.Context, cfg Config) (*Result, error) {
	if len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("client: node key required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTP == nil {
		cfg.HTTP = defaultHTTP
	}
	// The sources' seeds are asked for beside the manifest, not after it:
	// the first link, to the origin, waits on them, and every round trip
	// before it is time the origin's uplink has nothing to send.
	sctx, cancelSeeds := context.WithCancel(ctx)
	defer cancelSeeds()
	fetched := make(chan []swarm.PeerAddr, 1)
	go func() { fetched <- fetchSeeds(sctx, cfg.HTTP, cfg.Sources, cfg.Content) }()
	seeds := sync.OnceValue(func() []swarm.PeerAddr { return <-fetched })
	m, err := fetchManifest(ctx, cfg.HTTP, cfg.Sources, cfg.Content)
	if err != nil {
		return nil, err
	}
	if cfg.Manifest != nil {
		cfg.Manifest(m)
	}
	out, err := outputPath(cfg.Output, m.Name)
	if err != nil {
		return nil, err
	}
	d := &download{cfg: cfg, m: m, log: log, path: out, partial: out + ".partial", state: out + ".partial.state", start: time.Now(), seeds: seeds}
	return d.run(ctx)
}

func outputPath(out, name string) (string, error) {
	if out == "" {
		return name, nil
	}
	if st, err := os.Stat(out); err == nil && st.IsDir() {
		return filepath.Join(out, name), nil
	}
	return out, nil
}

type download struct {
	cfg     Config
	m       *manifest.Manifest
	log     *slog.Logger
	path    string
	partial string
	state   string
	start   time.Time

	f     *os.File
	node  *swarm.Node
	sw    *swarm.Swarm
	mu    sync.Mutex
	have  []bool
	dirty bool
	genCh chan int

	httpBytes int64

	seeds func() []swarm.PeerAddr // the sources' seeds, waiting for them the first time
}

// seedPrefixes returns a single-address prefix for each seed's address.
func seedPrefixes(seeds []swarm.PeerAddr) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range seeds {
		ap, err := netip.ParseAddrPort(s.Addr)
		if err != nil {
			continue
		}
		a := ap.Addr().Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out
}

func (d *download) run(ctx context.Context) (*Result, error) {
	res := &Result{Manifest: d.m, Path: d.path}
	if err := d.open(res); err != nil {
		return nil, err
	}
	defer d.f.Close()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	allow := d.cfg.Allow
	if len(allow) > 0 {
		// The node applies its lists to every link; the sources' seeds are
		// not peers, so they must be on the allow list or nothing arrives.
		allow = append(slices.Clone(allow), seedPrefixes(d.seeds())...)
	}
	node, err := swarm.NewNode(ctx, swarm.NodeConfig{
		Key: d.cfg.Key, UploadLimit: d.cfg.UploadLimit, DownloadLimit: d.cfg.DownloadLimit,
		Allow: allow, Deny: d.cfg.Deny, Logger: d.log, AdvertisePort: d.cfg.Advertise,
	})
	if err != nil {
		return nil, err
	}
	d.node = node
	defer node.Close()
	if d.cfg.Listen != "-" {
		addr := d.cfg.Listen
		if addr == "" {
			addr = ":0"
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("client: peer listener: %w", err)
		}
		go node.Serve(ln)
	}
	d.genCh = make(chan int, d.m.Generations()+1)
	sw, err := node.Join(swarm.Config{
		Manifest: d.m, Data: d.f, Out: d.f, Have: d.have,
		Stream: d.cfg.Stream != nil, Slots: d.cfg.Slots, Depth: d.cfg.Depth, MaxPeers: d.cfg.MaxPeers,
		OnGeneration: d.onGeneration, Logger: d.log,
		OnPolluter: func(id identity.ID, addr netip.AddrPort) {
			if r, ok := d.cfg.Tracker.(Reporter); ok {
				rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				if err := r.Report(rctx, d.m.ID(), id, "block failed verification"); err != nil {
					d.log.Warn("cannot report polluter to the tracker", "peer", id.Short(), "err", err)
				}
			}
		},
	})
	if err != nil {
		return nil, err
	}
	d.sw = sw
	if d.cfg.Joined != nil {
		d.cfg.Joined(sw)
	}

	// Every block is verified as it arrives and every generation against
	// the signed manifest once decoded (or, resumed, when the file is
	// opened); only --stream reads the file back, in order.
	streamed := make(chan error, 1)
	if d.cfg.Stream != nil {
		go func() { streamed <- d.stream(ctx) }()
	} else {
		streamed <- nil
	}
	streamDone := false
	go d.introduce(ctx)
	go d.persist(ctx)
	if d.cfg.MinRate > 0 {
		go d.fallback(ctx)
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	meter := newRateWindow(5)
loop:
	for {
		select {
		case <-ctx.Done():
			d.saveState()
			return nil, ctx.Err()
		case <-sw.Failed():
			d.saveState()
			return nil, classify(sw.Err())
		case err := <-streamed:
			if err != nil {
				d.saveState()
				return nil, err
			}
			streamDone = true
		case <-sw.Done():
			break loop
		case <-tick.C:
			d.report(meter, false)
		}
	}
	if !streamDone {
		if err := <-streamed; err != nil {
			return nil, err
		}
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	d.log.Info("download complete", "path", d.path, "elapsed", time.Since(d.start).Round(time.Millisecond))
	res.Progress = d.report(meter, false)
	if d.cfg.Completed != nil {
		d.cfg.Completed(res)
	}
	d.seed(ctx, meter)
	res.Progress = d.report(meter, false)
	return res, nil
}

// open prepares NAME.partial, resuming what an earlier run verified.
func (d *download) open(res *Result) error {
	n := d.m.Generations()
	if st, err := os.Stat(d.path); err == nil && !st.IsDir() {
		// Already downloaded? Verify and seed from it.
		if ok, _ := fileMatches(d.path, d.m); ok {
			f, err := os.OpenFile(d.path, os.O_RDWR, 0)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrDisk, err)
			}
			d.f = f
			d.partial = d.path
			d.have = make([]bool, n)
			for i := range d.have {
				d.have[i] = true
			}
			res.Resumed = n
			return nil
		}
		if !d.cfg.Repair {
			return fmt.Errorf("%w: %s exists and is not this content", ErrDisk, d.path)
		}
		good, err := matchingGenerations(d.path, d.m)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrDisk, err)
		}
		if !slices.Contains(good, true) && st.Size() > 0 {
			return fmt.Errorf("%w: %s exists and holds none of this content", ErrDisk, d.path)
		}
		// Finish it as NAME.partial, from the generations it holds.
		if err := os.Rename(d.path, d.partial); err != nil {
			return fmt.Errorf("%w: %v", ErrDisk, err)
		}
		if err := writeState(d.state, d.m.ID(), good); err != nil {
			return fmt.Errorf("%w: %v", ErrDisk, err)
		}
		d.log.Info("repairing", "path", d.path)
	}
	f, err := os.OpenFile(d.partial, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrDisk, err)
	}
	if err := f.Truncate(d.m.Size); err != nil {
		f.Close()
		return fmt.Errorf("%w: %v", ErrDisk, err)
	}
	d.f = f
	have, err := readState(d.state, d.m.ID(), n)
	if err != nil {
		have = make([]bool, n)
	}
	var buf []byte // only to check a resumed generation: 2 MiB, and at the start of a flash crowd a garbage collection
	for g := range have {
		if !have[g] {
			continue
		}
		if buf == nil {
			buf = make([]byte, d.m.GenerationSize())
		}
		off, size := d.m.GenerationSpan(g)
		if _, err := f.ReadAt(buf[:size], off); err != nil || sha256.Sum256(buf[:size]) != d.m.GenHashes[g] {
			have[g] = false
			continue
		}
		res.Resumed++
	}
	d.have = have
	if res.Resumed > 0 {
		d.log.Info("resuming", "generations", res.Resumed, "of", n)
	}
	return nil
}

func (d *download) onGeneration(g int) {
	d.mu.Lock()
	d.have[g] = true
	d.dirty = true
	d.mu.Unlock()
	d.genCh <- g
}

// persist syncs the partial file and records finished generations about
// once a second, so that a crash loses little and never lies.
func (d *download) persist(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.sw.Done():
			return
		case <-t.C:
			d.saveState()
		}
	}
}

func (d *download) saveState() {
	d.mu.Lock()
	if !d.dirty {
		d.mu.Unlock()
		return
	}
	have := append([]bool(nil), d.have...)
	d.dirty = false
	d.mu.Unlock()
	if d.partial == d.path {
		return
	}
	// Data first, then the record that points at it.
	if err := d.f.Sync(); err != nil {
		d.log.Warn("sync failed", "err", err)
		return
	}
	if err := writeState(d.state, d.m.ID(), have); err != nil {
		d.log.Warn("cannot save resume state", "err", err)
	}
}

// finish gives the partial file its final name. Every generation in it was
// checked against its SHA-256 in the signed manifest (when decoded, or when
// the file was opened for resuming), and the manifest's signature covers
// those hashes, so the file as a whole is what the publisher signed:
// hashing it all again, as the whole-file SHA-256, cost a second pass of
// SHA-256 over every byte (4% of all CPU time in the swarm lab at N=32)
// and proved nothing more.
func (d *download) finish() error {
	if d.partial == d.path {
		return nil
	}
	if err := d.f.Sync(); err != nil {
		return fmt.Errorf("%w: %v", ErrDisk, err)
	}
	if err := os.Rename(d.partial, d.path); err != nil {
		return fmt.Errorf("%w: %v", ErrDisk, err)
	}
	atomicfile.SyncDir(filepath.Dir(d.path))
	os.Remove(d.state)
	d.partial = d.path
	return nil
}

// matchingGenerations reports which of the manifest's generations the file
// at path holds, read in place.
func matchingGenerations(path string, m *manifest.Manifest) ([]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	good := make([]bool, m.Generations())
	buf := make([]byte, m.GenerationSize())
	for g := range good {
		off, size := m.GenerationSpan(g)
		n, err := f.ReadAt(buf[:size], off)
		if int64(n) < size {
			if err == io.EOF {
				break // the rest is beyond the end of the file
			}
			return nil, err
		}
		good[g] = sha256.Sum256(buf[:size]) == m.GenHashes[g]
	}
	return good, nil
}

// fileMatches reports whether path holds exactly the manifest's content.
func fileMatches(path string, m *manifest.Manifest) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, f, make([]byte, 1<<20))
	if err != nil {
		return false, err
	}
	return n == m.Size && [32]byte(h.Sum(nil)) == m.FileHash, nil
}

// stream writes the generations to the Stream writer in order, as they
// land, read back from the partial file.
func (d *download) stream(ctx context.Context) error {
	done := make([]bool, d.m.Generations())
	next := 0
	buf := make([]byte, d.m.GenerationSize())
	d.mu.Lock()
	copy(done, d.have)
	d.mu.Unlock()
	for {
		for next < len(done) && done[next] {
			off, n := d.m.GenerationSpan(next)
			if _, err := d.f.ReadAt(buf[:n], off); err != nil {
				return fmt.Errorf("%w: reading back generation %d: %v", ErrDisk, next, err)
			}
			if _, err := d.cfg.Stream.Write(buf[:n]); err != nil {
				return fmt.Errorf("client: stream: %w", err)
			}
			next++
		}
		if next == len(done) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case g := <-d.genCh:
			done[g] = true
		}
	}
}

// seed keeps serving until the seeding conditions are met.
func (d *download) seed(ctx context.Context, meter *rateWindow) {
	if d.cfg.SeedTime <= 0 && d.cfg.SeedRatio <= 0 {
		return
	}
	deadline := time.Now().Add(d.cfg.SeedTime)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		st := d.sw.Stats()
		ratioMet := d.cfg.SeedRatio <= 0 || float64(st.Sent) >= d.cfg.SeedRatio*float64(d.m.Size)
		if time.Now().After(deadline) && ratioMet {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.report(meter, true)
		}
	}
}

func (d *download) report(meter *rateWindow, seeding bool) Progress {
	st := d.sw.Stats()
	var done int64
	d.mu.Lock()
	for g, h := range d.have {
		if h {
			_, n := d.m.GenerationSpan(g)
			done += n
		}
	}
	d.mu.Unlock()
	rate := meter.add(time.Now(), st.Downloaded())
	p := Progress{
		Name: d.m.Name, Size: d.m.Size, Done: done, Rank: st.Rank, Blocks: st.Blocks, Rate: rate,
		Peers: st.Peers, FromPeers: st.Received[swarm.FromPeer], FromOrigin: st.Received[swarm.FromOrigin],
		FromEdge: st.Received[swarm.FromEdge], FromHTTP: st.Received[swarm.FromHTTP], Uploaded: st.Sent,
		Elapsed: time.Since(d.start), Complete: st.Complete == st.Generations, Seeding: seeding,
		Engine: st,
	}
	if rate > 0 && !p.Complete {
		left := float64(p.Blocks-p.Rank) * float64(d.m.BlockSize)
		p.ETA = time.Duration(left / rate * float64(time.Second))
	}
	if d.cfg.Progress != nil {
		d.cfg.Progress(p)
	}
	return p
}

// classify maps engine failures to the client's error kinds.
func classify(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, fs.ErrPermission), errors.Is(err, swarm.ErrStorage):
		return fmt.Errorf("%w: %v", ErrDisk, err)
	case errors.Is(err, swarm.ErrHashMismatch):
		return fmt.Errorf("%w: %v", ErrIntegrity, err)
	}
	return err
}

// rateWindow turns a cumulative byte counter into a rate over the last n
// samples.
type rateWindow struct {
	n     int
	times []time.Time
	vals  []int64
}

func newRateWindow(n int) *rateWindow { return &rateWindow{n: n} }

func (w *rateWindow) add(t time.Time, v int64) float64 {
	w.times = append(w.times, t)
	w.vals = append(w.vals, v)
	if len(w.times) > w.n+1 {
		w.times = w.times[1:]
		w.vals = w.vals[1:]
	}
	if len(w.times) < 2 {
		return 0
	}
	dt := w.times[len(w.times)-1].Sub(w.times[0]).Seconds()
	if dt <= 0 {
		return 0
	}
	return float64(w.vals[len(w.vals)-1]-w.vals[0]) / dt
}
