package cli

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"time"

	"avalanche/internal/client"
	"avalanche/internal/identity"
	"avalanche/internal/manifest"
	"avalanche/internal/swarm"
	"avalanche/internal/tracker"
	"avalanche/internal/traffic"
)

// getFlags are the flags shared by get and seed.
type getFlags struct {
	sources        listFlag
	tracker        string
	control        string
	property       string
	out            string
	stream         bool
	listen         string
	upload, down   string
	maxPeers       int
	allow, deny    string
	lanOnly        bool
	minRate        string
	fallbackBudget string
	seedTime       time.Duration
	seedRatio      float64
	jsonOut        bool
	quiet          bool
	keyPath        string
	slots          int
	cpus           int
	verbose        bool
	cpuProfile     string
	memProfile     string
}

func (g *getFlags) register(env *Env, fs *flag.FlagSet) {
	fs.Var(&g.sources, "origin", "origin or edge base URL serving the manifest and ranges (repeatable; default http://127.0.0.1:7070)")
	fs.StringVar(&g.tracker, "tracker", "", "tracker URL (default: --control, else the origin's host on port 7071 if it answers)")
	fs.StringVar(&g.control, "control", "", "control node URL: its traffic manager picks the best edges for --property, its tracker introduces peers")
	fs.StringVar(&g.property, "property", "", "property (tenant) whose edges to use with --control")
	fs.StringVar(&g.out, "o", "", "output file or directory (default: the published file name)")
	fs.StringVar(&g.listen, "listen", ":0", `peer listener address ("-" to only dial out)`)
	fs.StringVar(&g.upload, "upload-limit", "0", "upload cap, e.g. 2M (bytes/s) or 20mbit; 0 = none")
	fs.StringVar(&g.down, "download-limit", "0", "download cap, same units; 0 = none")
	fs.IntVar(&g.maxPeers, "max-peers", swarm.DefaultMaxPeers, "links to partial peers to dial (half as many more are accepted; links to finished peers come on top)")
	fs.StringVar(&g.allow, "allow", "", "comma-separated CIDRs peers must be in")
	fs.StringVar(&g.deny, "deny", "", "comma-separated CIDRs peers must not be in")
	fs.BoolVar(&g.lanOnly, "lan-only", false, "only exchange with peers on loopback and private networks")
	fs.StringVar(&g.minRate, "min-rate", "0", "fetch over HTTP when peers deliver less than this (bytes/s); 0 = never")
	fs.StringVar(&g.fallbackBudget, "fallback-budget", "0", "most bytes to fetch over HTTP (default: the file size)")
	fs.DurationVar(&g.seedTime, "seed-time", 0, "keep seeding this long after completing")
	fs.Float64Var(&g.seedRatio, "seed-ratio", 0, "keep seeding until uploaded/size reaches this")
	fs.BoolVar(&g.jsonOut, "json", false, "print progress and the result as JSON lines")
	fs.BoolVar(&g.quiet, "q", false, "no progress output")
	fs.StringVar(&g.keyPath, "key", env.defaultNodeKey(), "node key (created if missing)")
	fs.IntVar(&g.slots, "slots", 0, "generations decoded at once (default 8)")
	fs.IntVar(&g.cpus, "cpus", 1, "cores the engine may keep busy (GOMAXPROCS, when that is not set); one moves over 2 Gbit/s of coded blocks")
	fs.BoolVar(&g.verbose, "v", false, "log engine events to stderr")
	fs.StringVar(&g.cpuProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	fs.StringVar(&g.memProfile, "memprofile", "", "write an allocation profile to this file at exit")
}

// config builds a client.Config from the flags.
func (g *getFlags) config(env *Env) (client.Config, error) {
	var cfg client.Config
	key, err := identity.LoadOrCreate(g.keyPath)
	if err != nil {
		return cfg, fmt.Errorf("node key: %w", err)
	}
	cfg.Key = key
	cfg.Sources = g.sources
	cfg.Output = g.out
	cfg.Listen = g.listen
	cfg.MaxPeers = g.maxPeers
	cfg.Slots = g.slots
	cfg.SeedTime, cfg.SeedRatio = g.seedTime, g.seedRatio
	if cfg.UploadLimit, err = parseRate(g.upload); err != nil {
		return cfg, fmt.Errorf("--upload-limit: %v: %w", err, errUsage)
	}
	if cfg.DownloadLimit, err = parseRate(g.down); err != nil {
		return cfg, fmt.Errorf("--download-limit: %v: %w", err, errUsage)
	}
	if cfg.MinRate, err = parseRate(g.minRate); err != nil {
		return cfg, fmt.Errorf("--min-rate: %v: %w", err, errUsage)
	}
	if cfg.FallbackBudget, err = parseSize(g.fallbackBudget); err != nil {
		return cfg, fmt.Errorf("--fallback-budget: %v: %w", err, errUsage)
	}
	if cfg.Allow, err = parsePrefixes(g.allow); err != nil {
		return cfg, fmt.Errorf("--allow: %v: %w", err, errUsage)
	}
	if g.lanOnly {
		lan, _ := parsePrefixes(strings.Join(lanPrefixes, ","))
		cfg.Allow = append(cfg.Allow, lan...)
	}
	if cfg.Deny, err = parsePrefixes(g.deny); err != nil {
		return cfg, fmt.Errorf("--deny: %v: %w", err, errUsage)
	}
	if g.verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return cfg, nil
}

// parseTarget accepts a content ID or a URL of the origin or an edge that
// ends in a content ID (e.g. http://host:7070/d/ID/name or /v1/content/ID),
// returning the ID and the source the URL names, if any.
func parseTarget(arg string) (manifest.ID, string, error) {
	if id, err := manifest.ParseID(arg); err == nil {
		return id, "", nil
	}
	u, err := url.Parse(arg)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return manifest.ID{}, "", fmt.Errorf("%q is neither a content ID nor an http(s) URL: %w", arg, errUsage)
	}
	for _, part := range strings.Split(u.Path, "/") {
		if id, err := manifest.ParseID(part); err == nil {
			return id, u.Scheme + "://" + u.Host, nil
		}
	}
	return manifest.ID{}, "", fmt.Errorf("no content ID in %q: %w", arg, errUsage)
}

func runGet(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "get", "[flags] CONTENT-ID | URL", `
Download published content from its swarm. Every block is verified before use
and every generation against the signed manifest; the file is written as
NAME.partial and renamed to NAME once every generation has matched.
Interrupt it at any time (even kill -9) and run the same command again: what
was verified is kept. With --stream the content goes to standard output in
order while it downloads (pipe it into a player or tar).

Exit status: 0 done, 1 other error, 2 usage, 3 unknown content, 4 no origin,
edge or tracker reachable, 5 verification failed (bad signature or hash),
6 cannot write the output.`)
	var g getFlags
	g.register(env, fs)
	fs.BoolVar(&g.stream, "stream", false, "write the content to standard output in order as it downloads")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("get needs one CONTENT-ID or URL: %w", errUsage)
	}
	id, src, err := parseTarget(fs.Arg(0))
	if err != nil {
		return err
	}
	if src != "" {
		g.sources = append([]string{src}, g.sources...)
	}
	return download(ctx, env, &g, id, "get")
}

// download runs get or seed.
func download(ctx context.Context, env *Env, g *getFlags, id manifest.ID, verb string) error {
	if g.control != "" {
		if g.property == "" {
			return fmt.Errorf("--control needs --property: %w", errUsage)
		}
		edges, err := routeSources(ctx, g.control, g.property, id)
		if err != nil {
			return withCode(exitUnreachable, fmt.Errorf("%s: traffic manager %s: %w", verb, g.control, err))
		}
		g.sources = append(edges, g.sources...)
		if g.tracker == "" {
			g.tracker = g.control
		}
	}
	if len(g.sources) == 0 {
		g.sources = listFlag{"http://127.0.0.1:7070"}
	}
	cfg, err := g.config(env)
	if err != nil {
		return err
	}
	cfg.Content = id
	cfg.Repair = verb == "seed" // FILE is the user's copy: finish it
	stopProfiles, err := startProfiles(g.cpuProfile, g.memProfile)
	if err != nil {
		return err
	}
	defer stopProfiles()
	// An explicit tracker that does not answer ends the download with
	// its own error (as the cause of ctx), found while the download starts.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	tr, err := newTrackerClient(ctx, cfg.Key, g.tracker, g.sources, cancel)
	if err != nil {
		return err
	}
	if tr != nil {
		cfg.Tracker = tr
	}
	progressOut := env.Stderr
	if g.stream {
		cfg.Stream = env.Stdout
	}
	var pr *progressPrinter
	if !g.quiet {
		pr = newProgressPrinter(progressOut, g.jsonOut && !g.stream)
		if g.jsonOut && !g.stream {
			pr.w = env.Stdout
		}
		cfg.Progress = pr.print
	}
	if g.cpus > 0 && env.getenv("GOMAXPROCS") == "" {
		// A download is I/O-bound: one core decodes, verifies and
		// encrypts faster than most links deliver, and a background
		// downloader should leave the others to the user. More threads
		// only add handoffs between them, which on a busy machine cost
		// more than they bring.
		defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(g.cpus))
	}
	if env.getenv("GOMEMLIMIT") == "" {
		// Keep the heap near what the engine needs: 64 MiB plus two
		// generations per decoding slot (twice the slots when a seed can
		// serve); without a limit the GC lets the heap grow to twice that.
		slots := g.slots
		if slots == 0 {
			slots = 8
		}
		cfg.Manifest = func(m *manifest.Manifest) {
			debug.SetMemoryLimit(64<<20 + 2*int64(2*slots)*m.GenerationSize())
		}
	}
	if g.jsonOut {
		// Announce completion at once: the "done" line waits for seeding.
		w := env.Stdout
		if g.stream {
			w = env.Stderr
		}
		cfg.Completed = func(res *client.Result) {
			p := res.Progress
			line := map[string]any{
				"event": "complete", "content": id.String(), "path": res.Path, "size": res.Manifest.Size,
				"seconds": p.Elapsed.Seconds(), "from_peers": p.FromPeers, "from_origin": p.FromOrigin,
				"from_edge": p.FromEdge, "from_http": p.FromHTTP, "uploaded": p.Uploaded,
				"blocks_in": p.Engine.BlocksIn, "units_in": p.Engine.UnitsIn,
				"non_innovative": p.Engine.NonInnovative, "wasted": p.Engine.Wasted,
			}
			// What the download cost this process so far: the swarm lab
			// sums it over leechers.
			maps.Copy(line, processUsage())
			json.NewEncoder(w).Encode(line)
		}
	}
	res, err := client.Get(ctx, cfg)
	if pr != nil {
		pr.finish()
	}
	if err != nil {
		var tracked *exitError
		if cause := context.Cause(ctx); errors.As(cause, &tracked) {
			return cause // the explicit tracker did not answer
		}
		return withCode(exitCode(err), fmt.Errorf("%s: %w", verb, err))
	}
	p := res.Progress
	if g.jsonOut {
		w := env.Stdout
		if g.stream {
			w = env.Stderr
		}
		json.NewEncoder(w).Encode(map[string]any{
			"event": "done", "content": id.String(), "path": res.Path, "size": res.Manifest.Size,
			"seconds": p.Elapsed.Seconds(), "from_peers": p.FromPeers, "from_origin": p.FromOrigin,
			"from_edge": p.FromEdge, "from_http": p.FromHTTP, "uploaded": p.Uploaded, "resumed_generations": res.Resumed,
		})
	} else if !g.quiet {
		fmt.Fprintf(env.Stderr, "%s: %s verified (%s) in %s; from peers %s, origin %s, edge %s, http %s; uploaded %s\n",
			verb, res.Path, humanBytes(float64(res.Manifest.Size)), p.Elapsed.Round(time.Millisecond),
			humanBytes(float64(p.FromPeers)), humanBytes(float64(p.FromOrigin)), humanBytes(float64(p.FromEdge)),
			humanBytes(float64(p.FromHTTP)), humanBytes(float64(p.Uploaded)))
	}
	return nil
}

func exitCode(err error) int {
	switch {
	case errors.Is(err, client.ErrNotFound):
		return exitNotFound
	case errors.Is(err, client.ErrUnreachable):
		return exitUnreachable
	case errors.Is(err, client.ErrIntegrity), errors.Is(err, manifest.ErrSignature):
		return exitIntegrity
	case errors.Is(err, client.ErrDisk):
		return exitDisk
	}
	return 1
}

// progressPrinter renders client progress: a bar on a terminal, a line
// every few seconds otherwise, or JSON lines.
type progressPrinter struct {
	w       io.Writer
	tty     bool
	json    bool
	last    time.Time
	printed bool
	sawDone bool
}

func newProgressPrinter(w io.Writer, jsonOut bool) *progressPrinter {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progressPrinter{w: w, tty: tty && !jsonOut, json: jsonOut}
}

func (p *progressPrinter) print(pr client.Progress) {
	pct := 0.0
	if pr.Blocks > 0 {
		pct = 100 * float64(pr.Rank) / float64(pr.Blocks)
	}
	if pr.Size == 0 {
		pct = 100
	}
	switch {
	case p.json:
		json.NewEncoder(p.w).Encode(map[string]any{
			"event": "progress", "percent": round1(pct), "done_bytes": pr.Done, "size": pr.Size,
			"rate_bytes_per_s": int64(pr.Rate), "eta_seconds": round1(pr.ETA.Seconds()), "peers": pr.Peers,
			"from_peers": pr.FromPeers, "from_origin": pr.FromOrigin, "from_edge": pr.FromEdge,
			"from_http": pr.FromHTTP, "uploaded": pr.Uploaded, "seeding": pr.Seeding,
		})
	case p.tty:
		const width = 30
		fill := int(pct / 100 * width)
		bar := strings.Repeat("█", fill) + strings.Repeat("░", width-fill)
		state := fmt.Sprintf("ETA %s", pr.ETA.Round(time.Second))
		if pr.Seeding {
			state = "seeding"
		}
		fmt.Fprintf(p.w, "\r\033[K%s %5.1f%% %9s/s  %s  peers %d  from peers %s, origin/edge %s",
			bar, pct, humanBytes(pr.Rate), state, pr.Peers, humanBytes(float64(pr.FromPeers)),
			humanBytes(float64(pr.FromOrigin+pr.FromEdge+pr.FromHTTP)))
		p.printed = true
	default:
		if time.Since(p.last) < 5*time.Second && (pct < 100 || pr.Seeding || p.sawDone) {
			return
		}
		p.sawDone = pct >= 100
		p.last = time.Now()
		fmt.Fprintf(p.w, "%s %5.1f%% %s/s peers=%d from_peers=%s from_origin=%s from_edge=%s from_http=%s up=%s\n",
			pr.Name, pct, humanBytes(pr.Rate), pr.Peers, humanBytes(float64(pr.FromPeers)),
			humanBytes(float64(pr.FromOrigin)), humanBytes(float64(pr.FromEdge)), humanBytes(float64(pr.FromHTTP)),
			humanBytes(float64(pr.Uploaded)))
	}
}

func (p *progressPrinter) finish() {
	if p.tty && p.printed {
		fmt.Fprintln(p.w)
	}
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

// newTrackerClient returns the tracker to announce to: url if given (fail
// is called with an error if it does not answer), else the sources' host on
// port 7071 if a tracker answers there, else none. Whether it answers is
// asked beside the download's start, not before it: the first announce
// comes only once the swarm is joined, and a round trip to the tracker
// before the manifest was time the origin's uplink had nothing to send.
func newTrackerClient(ctx context.Context, key ed25519.PrivateKey, trackerURL string, sources []string, fail func(error)) (client.Announcer, error) {
	explicit := trackerURL != ""
	if !explicit && len(sources) > 0 {
		u, err := url.Parse(sources[0])
		if err != nil || u.Hostname() == "" {
			return nil, nil
		}
		trackerURL = u.Scheme + "://" + net.JoinHostPort(u.Hostname(), "7071")
	}
	if trackerURL == "" {
		return nil, nil
	}
	tc, err := tracker.NewClient(tracker.ClientConfig{URL: trackerURL, Key: key})
	if err != nil {
		return nil, fmt.Errorf("--tracker: %v: %w", err, errUsage)
	}
	p := &probedTracker{done: make(chan struct{})}
	go func() {
		defer close(p.done)
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		if _, err := tc.Stats(pctx); err != nil {
			if explicit && ctx.Err() == nil {
				fail(withCode(exitUnreachable, fmt.Errorf("tracker %s: %w", trackerURL, err)))
			}
			return
		}
		p.tr = &client.Tracker{C: tc}
	}()
	return p, nil
}

// probedTracker is a tracker whose first answer is awaited by the first
// announce or report; without one (none answered) they fail with
// client.ErrNoTracker.
type probedTracker struct {
	done chan struct{}
	tr   *client.Tracker // set before done closes; nil if none answered
}

func (p *probedTracker) wait(ctx context.Context) (*client.Tracker, error) {
	select {
	case <-p.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if p.tr == nil {
		return nil, client.ErrNoTracker
	}
	return p.tr, nil
}

func (p *probedTracker) Announce(ctx context.Context, a client.Announce) ([]swarm.PeerAddr, time.Duration, error) {
	tr, err := p.wait(ctx)
	if err != nil {
		return nil, 0, err
	}
	return tr.Announce(ctx, a)
}

func (p *probedTracker) Report(ctx context.Context, content manifest.ID, offender identity.ID, reason string) error {
	tr, err := p.wait(ctx)
	if err != nil {
		return err
	}
	return tr.Report(ctx, content, offender, reason)
}

// routeSources asks the traffic manager at control for the best edges of
// property (best first), or its origin when no edge is eligible, as base
// URLs for the content.
func routeSources(ctx context.Context, control, property string, id manifest.ID) ([]string, error) {
	c := &traffic.Client{BaseURL: strings.TrimSuffix(control, "/")}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d, err := c.Route(rctx, property, "/v1/content/"+id.String())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range d.Edges {
		out = append(out, baseURL(e.URL))
	}
	if len(out) == 0 && d.Origin != "" {
		out = append(out, baseURL(d.Origin))
	}
	return out, nil
}

// baseURL keeps the scheme and host of a URL.
func baseURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return strings.TrimSuffix(s, "/")
	}
	return u.Scheme + "://" + u.Host
}
