// Package testnet starts a whole Avalanche network in one process, on
// loopback: a tracker, an origin that seeds everything it stores, and any
// number of downloading clients, each with its own node key, peer listener
// and upload cap. The demo command and the end-to-end tests use it; every
// component is the real one, talking real HTTP and TLS over TCP.
package testnet

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"avalanche/internal/client"
	"avalanche/internal/identity"
	"avalanche/internal/manifest"
	"avalanche/internal/origin"
	"avalanche/internal/seeder"
	"avalanche/internal/swarm"
	"avalanche/internal/tracker"
	"avalanche/internal/wire"
)

// Config configures a network. The zero value works (with Dir set).
type Config struct {
	// Dir holds the origin's store and the clients' files. Required.
	Dir string
	// OriginUpload caps the origin's peer-protocol upload in bytes/s;
	// 0 = unlimited.
	OriginUpload int64
	// SeedCap is the origin's per-generation cap (swarm.Config.SeedCap);
	// default 1.0, negative for none.
	SeedCap float64
	// Host is the loopback address the tracker, the origin and its peer
	// node listen on; default 127.0.0.1. Another one (127.0.0.2) sets the
	// origin apart from clients, which listen on 127.0.0.1.
	Host string
	// Logger receives every component's logs; nil discards.
	Logger *slog.Logger
}

// Net is a running network.
type Net struct {
	cfg Config
	log *slog.Logger

	TrackerURL string
	Tracker    *tracker.Tracker
	OriginURL  string
	Origin     *origin.Origin
	OriginNode *swarm.Node
	Seeder     *seeder.Seeder

	// OriginHTTPBytes counts the bytes the origin served over HTTP
	// (manifests, ranges for edges and fallbacks).
	OriginHTTPBytes atomic.Int64

	publisher ed25519.PrivateKey
	token     string
	cancel    context.CancelFunc
	servers   []*http.Server
	closers   []func()
}

const property = "demo"

// Start starts a tracker and an origin on loopback.
func Start(ctx context.Context, cfg Config) (*Net, error) {
	if cfg.Dir == "" {
		return nil, errors.New("testnet: Dir required")
	}
	if cfg.SeedCap == 0 {
		cfg.SeedCap = 1.0
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(ctx)
	n := &Net{cfg: cfg, log: log, cancel: cancel, publisher: identity.Generate(), token: origin.NewToken()}
	if err := n.start(ctx); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

func (n *Net) serve(h http.Handler) (string, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(n.cfg.Host, "0"))
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	n.servers = append(n.servers, srv)
	go srv.Serve(ln)
	return "http://" + ln.Addr().String(), nil
}

func (n *Net) start(ctx context.Context) error {
	tr, err := tracker.New(tracker.Config{Logger: n.log.With("role", "tracker"), Interval: 2 * time.Second, AddrRate: -1, PeerRate: -1})
	if err != nil {
		return err
	}
	n.Tracker = tr
	if n.TrackerURL, err = n.serve(tr.Handler()); err != nil {
		return err
	}

	nodeKey := identity.Generate()
	n.OriginNode, err = swarm.NewNode(ctx, swarm.NodeConfig{Key: nodeKey, Role: wire.RoleOrigin, UploadLimit: n.cfg.OriginUpload, Logger: n.log.With("role", "origin")})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(n.cfg.Host, "0"))
	if err != nil {
		return err
	}
	go n.OriginNode.Serve(ln)
	tc, err := tracker.NewClient(tracker.ClientConfig{URL: n.TrackerURL, Key: nodeKey})
	if err != nil {
		return err
	}
	master := make([]byte, 32)
	copy(master, nodeKey.Seed())
	n.Seeder, err = seeder.New(seeder.Config{
		Node: n.OriginNode, Tracker: tc, Role: tracker.RoleOrigin, MasterKey: master,
		SeedCap: max(0, n.cfg.SeedCap), AnnounceInterval: time.Second, Logger: n.log.With("role", "origin"),
	})
	if err != nil {
		return err
	}
	go n.Seeder.Run(ctx)
	tok, err := origin.ParseToken(n.token)
	if err != nil {
		return err
	}
	n.Origin, err = origin.New(ctx, origin.Config{
		DataDir: filepath.Join(n.cfg.Dir, "origin"),
		Properties: []origin.Property{{
			Name: property, Tokens: []origin.Token{tok},
			Publishers: []ed25519.PublicKey{n.publisher.Public().(ed25519.PublicKey)},
		}},
		Logger: n.log.With("role", "origin"),
		OnPublish: func(m *manifest.Manifest) {
			if err := n.Seeder.Publish(n.Origin, m.ID()); err != nil {
				n.log.Error("cannot seed", "err", err)
			}
		},
		OnDelete: n.Seeder.Remove,
	})
	if err != nil {
		return err
	}
	if err := n.Seeder.ServeOrigin(n.Origin); err != nil {
		return err
	}
	n.OriginURL, err = n.serve(countBytes(n.Origin.Handler(), &n.OriginHTTPBytes))
	return err
}

// Publish signs and publishes data under name, with coding parameters k
// and blockSize, over the origin's HTTP API.
func (n *Net) Publish(ctx context.Context, name string, data []byte, k, blockSize int) (*manifest.Manifest, error) {
	m, err := manifest.FromReader(bytes.NewReader(data), k, blockSize, property, name, time.Now())
	if err != nil {
		return nil, err
	}
	if err := m.Sign(n.publisher); err != nil {
		return nil, err
	}
	p := &origin.Publisher{BaseURL: n.OriginURL, Property: property, Token: n.token}
	_, _, err = p.Publish(ctx, m, func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil })
	if err != nil {
		return nil, fmt.Errorf("testnet: publish: %w", err)
	}
	return m, nil
}

// PublishFile signs and publishes the file at path (streamed, not read
// into memory).
func (n *Net) PublishFile(ctx context.Context, path string, k, blockSize int) (*manifest.Manifest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m, err := manifest.FromReader(f, k, blockSize, property, filepath.Base(path), time.Now())
	if err != nil {
		return nil, err
	}
	if err := m.Sign(n.publisher); err != nil {
		return nil, err
	}
	p := &origin.Publisher{BaseURL: n.OriginURL, Property: property, Token: n.token}
	_, _, err = p.Publish(ctx, m, func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil {
		return nil, fmt.Errorf("testnet: publish: %w", err)
	}
	return m, nil
}

// ClientConfig returns the configuration of a client that downloads id
// into a directory of its own under Dir (named name), announcing to the
// tracker, listening on loopback, uploading at most upload bytes/s.
func (n *Net) ClientConfig(id manifest.ID, name string, upload int64) (client.Config, error) {
	dir := filepath.Join(n.cfg.Dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return client.Config{}, err
	}
	key := identity.Generate()
	tc, err := tracker.NewClient(tracker.ClientConfig{URL: n.TrackerURL, Key: key})
	if err != nil {
		return client.Config{}, err
	}
	return client.Config{
		Key: key, Content: id, Sources: []string{n.OriginURL}, Tracker: &client.Tracker{C: tc},
		Output: dir, Listen: "127.0.0.1:0", UploadLimit: upload, Logger: n.log.With("role", "peer", "name", name),
	}, nil
}

// Close stops everything.
func (n *Net) Close() {
	n.cancel()
	for _, c := range n.closers {
		c()
	}
	if n.Seeder != nil {
		n.Seeder.Close()
	}
	if n.OriginNode != nil {
		n.OriginNode.Close()
	}
	for _, s := range n.servers {
		s.Close()
	}
	if n.Origin != nil {
		n.Origin.Close()
	}
}
