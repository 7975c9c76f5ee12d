package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"avalanche/internal/identity"
	"avalanche/internal/netmap"
	"avalanche/internal/tracker"
	"avalanche/internal/tracker/redisstore"
)

// runTracker runs the tracker alone. It will become part of
// "avalanche control".
func runTracker(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "tracker", "[flags]", `
Run the tracker on its own: peers announce what they have and get back a
locality-biased list of other peers plus edges and origins (docs/tracker.md).
State is kept in memory unless -redis names a Redis server shared with other
control nodes.`)
	listen := fs.String("listen", "127.0.0.1:7071", "address to serve the tracker API on (the origin uses 7070)")
	mapFile := fs.String("netmap", "", "network map file (CSV or JSON; default: built-in loopback and private ranges)")
	redisAddr := fs.String("redis", "", "Redis address (host:port) for state shared between control nodes")
	redisPrefix := fs.String("redis-prefix", "avalanche:tracker:", "prefix of the tracker's Redis keys")
	interval := fs.Duration("interval", 5*time.Second, "announce interval handed to peers")
	want := fs.Int("want", 30, "peers handed out when an announce asks for none")
	infra := fs.String("infra", "", "comma-separated node IDs (hex) allowed to announce as origin or edge (default: any node on loopback)")
	proxies := fs.String("trusted-proxy", "", "comma-separated CIDRs of reverse proxies whose X-Forwarded-For is believed")
	verbose := fs.Bool("v", false, "log every announce")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("tracker takes no arguments: %w", errUsage)
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: level}))

	cfg := tracker.Config{Logger: log, Interval: *interval, DefaultWant: *want}
	if *mapFile != "" {
		m, err := netmap.Load(*mapFile)
		if err != nil {
			return fmt.Errorf("tracker: %w", err)
		}
		cfg.Map = m
	}
	for _, s := range splitComma(*infra) {
		id, err := identity.ParseID(s)
		if err != nil {
			return fmt.Errorf("tracker: -infra %q: %v: %w", s, err, errUsage)
		}
		cfg.Infrastructure = append(cfg.Infrastructure, id)
	}
	for _, s := range splitComma(*proxies) {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("tracker: -trusted-proxy %q: %v: %w", s, err, errUsage)
		}
		cfg.TrustedProxies = append(cfg.TrustedProxies, p)
	}
	var health func(context.Context) error
	if *redisAddr != "" {
		rdb := redis.NewClient(&redis.Options{Addr: *redisAddr})
		defer rdb.Close()
		s, err := redisstore.New(redisstore.Config{Client: rdb, Prefix: *redisPrefix})
		if err != nil {
			return fmt.Errorf("tracker: %w", err)
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err = s.Ping(pctx)
		cancel()
		if err != nil {
			return fmt.Errorf("tracker: Redis at %s: %w", *redisAddr, err)
		}
		cfg.Store, health = s, s.Ping
	}
	tr, err := tracker.New(cfg)
	if err != nil {
		return err
	}

	mux := http.NewServeMux()
	mux.Handle("/v1/", tr.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if health != nil {
			if err := health(r.Context()); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		fmt.Fprintln(w, "ok")
	})
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("tracker: %w", err)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	store := "memory"
	if *redisAddr != "" {
		store = "redis " + *redisAddr
	}
	fmt.Fprintf(env.Stdout, "tracker listening on http://%s (store: %s, interval %v)\n", ln.Addr(), store, *interval)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("tracker: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("tracker: shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("tracker: %w", err)
	}
	return nil
}

// splitComma splits a comma-separated flag value, dropping empty items.
func splitComma(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
