// Package control is the control node, `avalanche control`: one HTTP server
// that composes the traffic manager's API (and, later, the tracker's) with
// /healthz and Prometheus /metrics, plus the traffic manager's
// authoritative DNS server. The components stay in their own packages;
// Server only wires them together and runs them.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"avalanche/internal/dnsserver"
	"avalanche/internal/traffic"
)

// Config configures a Server. The zero value works: an in-memory traffic
// manager with default probing and a DNS server for "avalanche.test".
type Config struct {
	// Traffic configures the traffic manager. Its Logger and Metrics
	// default to the Server's.
	Traffic traffic.Config
	// DNS configures the DNS server; its Router is the traffic manager.
	// Logger and Metrics default to the Server's.
	DNS dnsserver.Config
	// Logger receives events. Default: discard.
	Logger *slog.Logger
}

// Listeners are the sockets a Server serves on; nil ones are not served.
type Listeners struct {
	HTTP   net.Listener
	DNSUDP net.PacketConn
	DNSTCP net.Listener
}

// Server is a control node. It is safe for concurrent use.
type Server struct {
	log     *slog.Logger
	reg     *prometheus.Registry
	mux     *http.ServeMux
	traffic *traffic.Manager
	dns     *dnsserver.Server
}

// New builds a control node: it creates the traffic manager (reading the
// shared state once) and the DNS server, and mounts the HTTP handlers.
func New(ctx context.Context, cfg Config) (*Server, error) {
	s := &Server{log: cfg.Logger, reg: prometheus.NewRegistry(), mux: http.NewServeMux()}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	tc := cfg.Traffic
	if tc.Logger == nil {
		tc.Logger = s.log
	}
	if tc.Metrics == nil {
		tc.Metrics = s.reg
	}
	var err error
	if s.traffic, err = traffic.New(ctx, tc); err != nil {
		return nil, err
	}
	dc := cfg.DNS
	dc.Router = s.traffic
	if dc.Logger == nil {
		dc.Logger = s.log
	}
	if dc.Metrics == nil {
		dc.Metrics = s.reg
	}
	if s.dns, err = dnsserver.New(dc); err != nil {
		return nil, err
	}
	s.mux.HandleFunc("GET /healthz", s.handleHealthz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	s.traffic.Register(s.mux)
	return s, nil
}

// Traffic returns the traffic manager.
func (s *Server) Traffic() *traffic.Manager { return s.traffic }

// DNS returns the DNS server.
func (s *Server) DNS() *dnsserver.Server { return s.dns }

// Registry returns the Prometheus registry served on /metrics, for other
// components (the tracker) to register their collectors.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Handle mounts another component's handler (e.g. the tracker) on the
// node's HTTP server. Patterns follow http.ServeMux; they must not
// conflict with the traffic manager's (see traffic.Manager.Register).
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// ServeHTTP serves the node's HTTP API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) handleHealthz(w http.ResponseWriter, r *http.Request) {
	healthy := 0
	edges := s.traffic.Edges()
	for _, e := range edges {
		if e.Status == "healthy" {
			healthy++
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(map[string]any{
		"status": "ok", "node": s.traffic.NodeID(),
		"edges": len(edges), "healthy_edges": healthy, "properties": len(s.traffic.Properties()),
	})
}

// Run serves on l and runs the traffic manager's probing and syncing until
// ctx is done; it then shuts the HTTP server down gracefully (up to 5 s)
// and returns nil. It returns early with the first serving error.
func (s *Server) Run(ctx context.Context, l Listeners) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 4)
	run := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("control: %s: %w", name, err)
				cancel()
			}
		}()
	}
	run("traffic", func() error { return s.traffic.Run(ctx) })
	if l.DNSUDP != nil {
		run("dns/udp", func() error { return s.dns.ServeUDP(ctx, l.DNSUDP) })
	}
	if l.DNSTCP != nil {
		run("dns/tcp", func() error { return s.dns.ServeTCP(ctx, l.DNSTCP) })
	}
	if l.HTTP != nil {
		hs := &http.Server{
			Handler:           s,
			ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout:       30 * time.Second,
			WriteTimeout:      30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			MaxHeaderBytes:    64 << 10,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		}
		run("http", func() error {
			if err := hs.Serve(l.HTTP); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-ctx.Done()
			sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer scancel()
			hs.Shutdown(sctx)
		}()
	}
	<-ctx.Done()
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}
