// Package origin implements the Avalanche origin server: the authoritative
// content store of a network, the publish API that fills it, and plain
// HTTP serving of manifests and content (Range, If-Range, ETag).
//
// Publishing is per property: a bearer token (configured per property,
// compared in constant time, never logged) authorizes a client to put
// signed manifests whose publisher key the property allows, then to stream
// the file bytes, which are verified generation by generation before they
// are committed (see package contentstore). Reads are public: content is
// addressed by its content ID and self-authenticating.
//
// The peer engine attaches through Open, List, Config.OnPublish,
// Config.OnDelete and Handle; it serves coded blocks and issues checksums,
// which this package does not.
//
// An Origin is safe for concurrent use. Several Origins may live in one
// process as long as their DataDirs differ.
package origin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"avalanche/internal/contentstore"
	"avalanche/internal/manifest"
)

// Errors returned (wrapped) by the origin.
var (
	ErrConfig           = errors.New("origin: invalid configuration")
	ErrUnauthorized     = errors.New("origin: missing or unknown bearer token")
	ErrForbidden        = errors.New("origin: token not valid for this property")
	ErrPropertyMismatch = errors.New("origin: manifest belongs to another property")
	ErrBadRequest       = errors.New("origin: bad request")
)

// Config configures an Origin. Only DataDir is required.
type Config struct {
	// DataDir is the directory of the content store. Required.
	DataDir string
	// Properties are the tenants that may publish. None: the origin serves
	// what it has stored but accepts no publications.
	Properties []Property
	// Logger receives request logs and warnings. Nil discards.
	Logger *slog.Logger
	// Registry receives the origin's metrics and is served at /metrics.
	// Nil: a new registry with the Go and process collectors. Pass one to
	// add the peer engine's metrics to the same endpoint.
	Registry *prometheus.Registry
	// OnPublish, if set, is called after new content has been committed
	// (its bytes verified and durable), before the publisher gets its
	// response. It may be called concurrently and must not block long.
	OnPublish func(*manifest.Manifest)
	// OnDelete, if set, is called after content has been deleted. It may be
	// called concurrently and must not block long.
	OnDelete func(manifest.ID)
	// MaxManifestBytes bounds a manifest upload. Default
	// manifest.MaxEncodedLen.
	MaxManifestBytes int64
	// UploadIdleTimeout ends an upload that sends nothing for this long.
	// Default 1 minute.
	UploadIdleTimeout time.Duration
	// MaxRanges is the most byte ranges one request may ask for; a Range
	// header with more is ignored and the whole content served. Default 32.
	MaxRanges int
	// ShutdownTimeout is how long Serve waits for requests in flight after
	// its context ends. Default 10 seconds.
	ShutdownTimeout time.Duration
	// VerifyOnOpen re-hashes all stored content at startup (see
	// contentstore.Config). Default false.
	VerifyOnOpen bool
	// PublicURL is the base URL written into publish responses, e.g.
	// "https://origin.example.com". Default: from the request's Host.
	PublicURL string
}

// Origin is an origin server. Create one with New.
type Origin struct {
	cfg     Config
	log     *slog.Logger
	store   *contentstore.Store
	props   []Property
	byName  map[string]*Property
	mux     *http.ServeMux
	handler http.Handler
	reg     *prometheus.Registry
	m       *metrics
}

// New opens the content store in cfg.DataDir (cleaning up after a crash,
// see contentstore.Open) and returns a ready Origin.
func New(ctx context.Context, cfg Config) (*Origin, error) {
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("%w: no data directory", ErrConfig)
	}
	if err := checkProperties(cfg.Properties); err != nil {
		return nil, err
	}
	if cfg.MaxManifestBytes <= 0 {
		cfg.MaxManifestBytes = manifest.MaxEncodedLen
	}
	if cfg.UploadIdleTimeout <= 0 {
		cfg.UploadIdleTimeout = time.Minute
	}
	if cfg.MaxRanges <= 0 {
		cfg.MaxRanges = 32
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = 10 * time.Second
	}
	o := &Origin{cfg: cfg, log: cfg.Logger, byName: make(map[string]*Property)}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	o.props = append([]Property(nil), cfg.Properties...)
	for i := range o.props {
		o.byName[o.props[i].Name] = &o.props[i]
	}
	st, err := contentstore.Open(ctx, contentstore.Config{
		Dir:          cfg.DataDir,
		Logger:       o.log.With("component", "contentstore"),
		VerifyOnOpen: cfg.VerifyOnOpen,
	})
	if err != nil {
		return nil, err
	}
	o.store = st
	o.reg = cfg.Registry
	if o.reg == nil {
		o.reg = newDefaultRegistry()
	}
	o.m, err = newMetrics(o.reg, o)
	if err != nil {
		st.Close()
		return nil, err
	}
	o.routes()
	return o, nil
}

// Handler returns the origin's HTTP handler: the publish API, public reads,
// /healthz and /metrics, and whatever was added with Handle.
func (o *Origin) Handler() http.Handler { return o.handler }

// Handle registers an extra handler on the origin's mux, with the pattern
// syntax of http.ServeMux (e.g. "GET /v1/swarm/{id}"). Requests to it are
// logged and counted like the origin's own. It panics if the pattern
// conflicts with an existing one, like http.ServeMux.Handle.
func (o *Origin) Handle(pattern string, h http.Handler) { o.mux.Handle(pattern, h) }

// Registry returns the metrics registry served at /metrics.
func (o *Origin) Registry() *prometheus.Registry { return o.reg }

// Open returns committed content for the peer engine: its manifest and its
// verified bytes as an io.ReaderAt. It returns an error wrapping
// contentstore.ErrNotFound or contentstore.ErrIncomplete otherwise. The
// caller must Close the result.
func (o *Origin) Open(id manifest.ID) (*contentstore.Content, error) { return o.store.Open(id) }

// List returns every committed (complete) object of every property, oldest
// first. Together with Config.OnPublish it lets the peer engine find all
// content to seed.
func (o *Origin) List() []contentstore.Entry {
	all := o.store.List("")
	out := all[:0]
	for _, e := range all {
		if e.Complete {
			out = append(out, e)
		}
	}
	return out
}

// Serve serves HTTP on ln until ctx ends, then shuts down gracefully:
// it stops accepting, waits up to Config.ShutdownTimeout for requests in
// flight and closes what remains. It returns nil after a shutdown caused by
// ctx, or the error that stopped serving. Serve closes ln.
func (o *Origin) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           o.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(o.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		o.log.Warn("shutdown timed out; closing remaining connections", "err", err)
		srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Close closes the content store. Call it after Serve has returned.
func (o *Origin) Close() error { return o.store.Close() }
