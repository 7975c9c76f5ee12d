package cli

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"

	"avalanche/internal/cachestore"
	"avalanche/internal/edge"
	"avalanche/internal/seeder"
	"avalanche/internal/tracker"
)

const edgeHelp = `
Run an edge node: an HTTP caching reverse proxy (RFC 9111 shared cache with
stale-while-revalidate, stale-if-error, CDN-Cache-Control, request
collapsing, sliced large objects, purges) for the properties in the
configuration file. The admin API, /healthz and /metrics listen on --admin.

With no --config and no --origin the node starts with no properties and
answers 404. --origin URL adds one property, "default", for every host.
SIGHUP re-reads the configuration file and reopens access logs without
dropping connections. Flags override the file's listen/admin/cache fields.`

func runEdge(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "edge", "[flags]", edgeHelp)
	listen := fs.String("listen", "", "client traffic address (default 127.0.0.1:8080)")
	tlsListen := fs.String("tls-listen", "", "HTTPS (HTTP/2) address; needs --tls-cert and --tls-key")
	tlsCert := fs.String("tls-cert", "", "PEM certificate chain for --tls-listen (re-read on SIGHUP)")
	tlsKey := fs.String("tls-key", "", "PEM private key for --tls-listen")
	admin := fs.String("admin", "", "admin API address (default 127.0.0.1:8081)")
	config := fs.String("config", "", "JSON configuration file (see docs/edge.md)")
	cacheDir := fs.String("cache-dir", "", "directory of the disk tier (none: memory only)")
	mem := fs.String("mem", "", "memory tier budget (default 256MiB)")
	disk := fs.String("disk", "", "disk tier budget (default 10GiB)")
	origin := fs.String("origin", "", "serve every host from this origin URL as property \"default\"")
	node := fs.String("node", "", "node ID for logs and Cache-Status (default edge)")
	accessLog := fs.String("access-log", "", `access log file, or "-" for stdout (default: none)`)
	verbose := fs.Bool("v", false, "debug logging")
	peerListen := fs.String("peer-listen", "", "super-seed: peer-protocol address; serves published content to swarms through the cache (default: off)")
	trackerURL := fs.String("tracker", "", "super-seed: tracker to announce seeded content to")
	seedOrigin := fs.String("seed-origin", "", "super-seed: the Avalanche origin's base URL (default: --origin)")
	seedBase := fs.String("seed-base", "http://avalanche-content", "super-seed: URL prefix the edge routes to that origin (a property must map it)")
	upload := fs.String("upload-limit", "0", "super-seed: peer-protocol upload cap, e.g. 100M or 1gbit; 0 = none")
	if err := parse(fs, args); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: level}))

	file := &edge.File{}
	load := func() error {
		if *config == "" {
			return nil
		}
		data, err := os.ReadFile(*config)
		if err != nil {
			return err
		}
		f, err := edge.ParseFile(data)
		if err != nil {
			return fmt.Errorf("%s: %w", *config, err)
		}
		file = f
		return nil
	}
	if err := load(); err != nil {
		return err
	}
	pick := func(flagV, fileV, def string) string {
		if flagV != "" {
			return flagV
		}
		if fileV != "" {
			return fileV
		}
		return def
	}
	size := func(flagV string, fileV edge.Size, def int64) (int64, error) {
		if flagV != "" {
			return edge.ParseSize(flagV)
		}
		if fileV > 0 {
			return int64(fileV), nil
		}
		return def, nil
	}
	memB, err := size(*mem, file.Mem, 256<<20)
	if err != nil {
		return fmt.Errorf("--mem: %w", errUsage)
	}
	diskB, err := size(*disk, file.Disk, 10<<30)
	if err != nil {
		return fmt.Errorf("--disk: %w", errUsage)
	}
	if env.getenv("GOMEMLIMIT") == "" {
		// keep the heap near the cache budget: a soft limit makes the GC
		// work harder instead of letting the heap double the live cache
		debug.SetMemoryLimit(memB + memB/8 + 128<<20)
	}
	tiers := cachestore.TieredConfig{Memory: cachestore.NewMemory(cachestore.MemoryConfig{Budget: memB})}
	if dir := pick(*cacheDir, file.CacheDir, ""); dir != "" {
		d, err := cachestore.OpenDisk(cachestore.DiskConfig{Dir: dir, Budget: diskB, Logger: log})
		if err != nil {
			return err
		}
		tiers.Disk = d
		log.Info("disk tier", "dir", dir, "objects", d.Stats().Objects, "bytes", d.Stats().Bytes)
	}
	store := cachestore.NewTiered(tiers)
	defer store.Close()

	var logs []*edge.AccessLog
	build := func() (edge.Config, error) {
		for _, l := range logs {
			l.Close()
		}
		logs = nil
		cfg := file.Config()
		if *node != "" {
			cfg.NodeID = *node
		}
		cfg.Store, cfg.Logger = store, log
		open := func(path string) (*edge.AccessLog, error) {
			switch path {
			case "":
				return nil, nil
			case "-":
				return edge.NewAccessLog(env.Stdout), nil
			}
			l, err := edge.OpenAccessLog(path, 0, 0)
			if err == nil {
				logs = append(logs, l)
			}
			return l, err
		}
		var err error
		if cfg.AccessLog, err = open(pick(*accessLog, file.AccessLog, "")); err != nil {
			return cfg, err
		}
		for i, fp := range file.Properties {
			if cfg.Properties[i].AccessLog, err = open(fp.AccessLog); err != nil {
				return cfg, err
			}
		}
		if *origin != "" {
			cfg.Properties = append(cfg.Properties, edge.Property{Name: "default", Origin: *origin})
		}
		return cfg, nil
	}
	cfg, err := build()
	if err != nil {
		return err
	}
	srv, err := edge.New(cfg)
	if err != nil {
		return err
	}
	defer srv.Close()
	if len(cfg.Properties) == 0 {
		log.Warn("no properties configured: every request answers 404 (use --origin or --config)")
	}

	ln, err := net.Listen("tcp", pick(*listen, file.Listen, "127.0.0.1:8080"))
	if err != nil {
		return err
	}
	aln, err := net.Listen("tcp", pick(*admin, file.Admin, "127.0.0.1:8081"))
	if err != nil {
		ln.Close()
		return err
	}
	var cert atomic.Pointer[tls.Certificate]
	loadCert := func() error {
		certFile, keyFile := pick(*tlsCert, file.TLSCert, ""), pick(*tlsKey, file.TLSKey, "")
		if certFile == "" && keyFile == "" {
			return nil
		}
		c, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		cert.Store(&c)
		return nil
	}
	var tln net.Listener
	if addr := pick(*tlsListen, file.TLSListen, ""); addr != "" {
		if err := loadCert(); err != nil {
			ln.Close()
			aln.Close()
			return err
		}
		if cert.Load() == nil {
			ln.Close()
			aln.Close()
			return fmt.Errorf("--tls-listen needs --tls-cert and --tls-key: %w", errUsage)
		}
		if tln, err = net.Listen("tcp", addr); err != nil {
			ln.Close()
			aln.Close()
			return err
		}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	log.Info("edge listening", "addr", ln.Addr().String(), "admin", aln.Addr().String(), "properties", len(cfg.Properties))

	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := load(); err != nil {
					log.Error("reload failed; keeping the running configuration", "err", err)
					continue
				}
				c, err := build()
				if err == nil {
					err = srv.Reload(c)
				}
				if err == nil && tln != nil {
					err = loadCert()
				}
				if err != nil {
					log.Error("reload failed; keeping the running configuration", "err", err)
					continue
				}
				log.Info("configuration reloaded", "properties", len(c.Properties))
			}
		}
	}()
	if *peerListen != "" {
		so := *seedOrigin
		if so == "" {
			so = *origin
		}
		if so == "" {
			return fmt.Errorf("--peer-listen needs --seed-origin or --origin: %w", errUsage)
		}
		upBps, err := parseRate(*upload)
		if err != nil {
			return fmt.Errorf("--upload-limit: %v: %w", err, errUsage)
		}
		sd, err := startEdgeSeeder(ctx, env, log, *peerListen, *trackerURL, upBps)
		if err != nil {
			return err
		}
		defer sd.Close()
		(&seeder.EdgeSource{Seeder: sd, Edge: srv, ContentBase: strings.TrimSuffix(*seedBase, "/"), Origin: so}).Mount()
	}
	errc := make(chan error, 3)
	n := 2
	go func() { errc <- srv.Serve(ctx, ln) }()
	go func() { errc <- srv.ServeAdmin(ctx, aln) }()
	if tln != nil {
		n++
		log.Info("edge TLS listening", "addr", tln.Addr().String())
		tc := &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return cert.Load(), nil }}
		go func() { errc <- srv.ServeTLS(ctx, tln, tc) }()
	}
	err = <-errc
	for i := 1; i < n; i++ {
		if err2 := <-errc; err == nil {
			err = err2
		}
	}
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// startEdgeSeeder starts the edge's peer-protocol node (role edge, no
// per-generation cap: an edge is there to spare the origin) and its seeder.
func startEdgeSeeder(ctx context.Context, env *Env, log *slog.Logger, listen, trackerURL string, upBps int64) (*seeder.Seeder, error) {
	return startSeeder(ctx, env, log, seederSpec{
		keyPath: filepath.Join(env.configDir(), "edge-node.key"), role: tracker.RoleEdge,
		listen: listen, tracker: trackerURL, upload: upBps,
	})
}
