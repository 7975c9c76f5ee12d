package cli

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"avalanche/internal/control"
	"avalanche/internal/dnsserver"
	"avalanche/internal/identity"
	"avalanche/internal/netmap"
	"avalanche/internal/tracker"
	"avalanche/internal/tracker/redisstore"
	"avalanche/internal/traffic"
)

func runControl(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "control", "[flags]", `
Run a control node: the tracker (POST /v1/announce, /v1/report, GET
/v1/stats: locality-biased peer introduction for swarms), the traffic
manager (edge registry and heartbeats, health probes voted across control
nodes, per-property routing policies, GET /v1/route, the 302 redirector
GET /<property>/<path>) and its authoritative DNS server for
<property>.<zone>, with /healthz and Prometheus /metrics. State is in
memory unless -redis names a Redis shared by several control nodes (edge
registry, health votes and the tracker's peer sets).

Tokens come from the environment: AVALANCHE_ADMIN_TOKEN authorises the
operator API and AVALANCHE_EDGE_TOKEN edge heartbeats; without them those
APIs answer loopback clients only. Network map files are reloaded when they
change and on SIGHUP.`)
	httpAddr := fs.String("http", "127.0.0.1:7071", "HTTP listen `address` (the origin uses 7070)")
	dnsAddr := fs.String("dns", "127.0.0.1:5353", "DNS listen `address`, UDP and TCP (empty: no DNS)")
	zone := fs.String("zone", "avalanche.test", "DNS `zone` served: answers <property>.<zone>")
	redisURL := fs.String("redis", "", "Redis `URL` (redis://host:port/db) for state shared between control nodes (empty: in memory)")
	redisPrefix := fs.String("redis-prefix", "avalanche:", "key `prefix` in Redis")
	maps := fs.String("netmap", "", "comma-separated network map `files` (.csv, .json, .mmdb)")
	policies := fs.String("policies", "", "JSON `file` with an array of property policies, stored at start")
	nodeID := fs.String("node-id", "", "this node's `name` in health votes (default: random)")
	probeInterval := fs.Duration("probe-interval", 0, "edge health probe `interval` (default 10s)")
	probeThreshold := fs.Int("probe-threshold", 0, "consecutive failed probes before an edge is voted down (default 3)")
	logJSON := fs.Bool("log-json", false, "log JSON lines instead of text")
	trackerInterval := fs.Duration("tracker-interval", 5*time.Second, "how often peers announce")
	infra := fs.String("infra", "", "comma-separated node IDs (hex) allowed to announce as origin or edge (default: any node on loopback)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("control: unexpected arguments %q: %w", fs.Args(), errUsage)
	}
	var log *slog.Logger
	if *logJSON {
		log = slog.New(slog.NewJSONHandler(env.Stderr, nil))
	} else {
		log = slog.New(slog.NewTextHandler(env.Stderr, nil))
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var files []string
	for _, f := range strings.Split(*maps, ",") {
		if f = strings.TrimSpace(f); f != "" {
			files = append(files, f)
		}
	}
	watcher, err := netmap.NewWatcher(netmap.WatcherConfig{Files: files, Logger: log})
	if err != nil {
		return err
	}
	go watcher.Run(ctx)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				watcher.Reload()
			}
		}
	}()

	tc := traffic.Config{
		Map:           watcher,
		NodeID:        *nodeID,
		ProbeInterval: *probeInterval,
		FailThreshold: *probeThreshold,
		AdminToken:    env.getenv("AVALANCHE_ADMIN_TOKEN"),
		EdgeToken:     env.getenv("AVALANCHE_EDGE_TOKEN"),
	}
	trc := tracker.Config{Logger: log.With("part", "tracker"), Interval: *trackerInterval, Map: watcher}
	for _, s := range splitComma(*infra) {
		id, err := identity.ParseID(s)
		if err != nil {
			return fmt.Errorf("control: -infra %q: %v: %w", s, err, errUsage)
		}
		trc.Infrastructure = append(trc.Infrastructure, id)
	}
	if *redisURL != "" {
		rs, err := traffic.OpenRedis(ctx, *redisURL, *redisPrefix)
		if err != nil {
			return err
		}
		defer rs.Close()
		tc.Store = rs
		if trc.Store, err = redisstore.New(redisstore.Config{Client: rs.Client(), Prefix: *redisPrefix + "tracker:"}); err != nil {
			return fmt.Errorf("control: %w", err)
		}
	}
	tr, err := tracker.New(trc)
	if err != nil {
		return fmt.Errorf("control: %w", err)
	}
	srv, err := control.New(ctx, control.Config{Traffic: tc, DNS: dnsserver.Config{Zone: *zone}, Logger: log})
	if err != nil {
		return err
	}
	th := tr.Handler()
	for _, p := range []string{"POST " + tracker.AnnouncePath, "POST " + tracker.ReportPath, "GET " + tracker.StatsPath} {
		srv.Handle(p, th)
	}
	if *policies != "" {
		f, err := os.Open(*policies)
		if err != nil {
			return fmt.Errorf("control: %w", err)
		}
		ps, err := traffic.ParsePolicies(f)
		f.Close()
		if err != nil {
			return fmt.Errorf("control: %s: %w", *policies, err)
		}
		for _, p := range ps {
			if err := srv.Traffic().PutPolicy(ctx, p); err != nil {
				return fmt.Errorf("control: property %s: %w", p.Name, err)
			}
		}
	}

	var l control.Listeners
	if l.HTTP, err = net.Listen("tcp", *httpAddr); err != nil {
		return fmt.Errorf("control: %w", err)
	}
	if *dnsAddr != "" {
		if l.DNSUDP, err = net.ListenPacket("udp", *dnsAddr); err != nil {
			return fmt.Errorf("control: %w", err)
		}
		if l.DNSTCP, err = net.Listen("tcp", l.DNSUDP.LocalAddr().String()); err != nil {
			return fmt.Errorf("control: %w", err)
		}
	}
	attrs := []any{"http", l.HTTP.Addr().String(), "node", srv.Traffic().NodeID(), "properties", len(srv.Traffic().Properties())}
	if l.DNSUDP != nil {
		attrs = append(attrs, "dns", l.DNSUDP.LocalAddr().String(), "zone", srv.DNS().Zone())
	}
	log.Info("control node serving", attrs...)
	return srv.Run(ctx, l)
}
