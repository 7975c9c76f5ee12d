package testnet

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"avalanche/internal/cachestore"
	"avalanche/internal/edge"
	"avalanche/internal/identity"
	"avalanche/internal/seeder"
	"avalanche/internal/swarm"
	"avalanche/internal/tracker"
	"avalanche/internal/wire"
)

// Edge is an edge node in the network: a caching proxy in front of the
// origin and a super-seed of everything asked of it.
type Edge struct {
	URL    string
	Server *edge.Server
	Node   *swarm.Node
	Seeder *seeder.Seeder
}

// StartEdge starts an edge on loopback whose one property sends everything
// to the origin, with a super-seed uploading at most upload bytes/s.
func (n *Net) StartEdge(ctx context.Context, upload int64) (*Edge, error) {
	srv, err := edge.New(edge.Config{
		NodeID:     "edge-test",
		Store:      cachestore.NewMemory(cachestore.MemoryConfig{Budget: 512 << 20}),
		Properties: []edge.Property{{Name: "default", Origin: n.OriginURL}},
		Logger:     n.log.With("role", "edge"),
	})
	if err != nil {
		return nil, err
	}
	key := identity.Generate()
	node, err := swarm.NewNode(ctx, swarm.NodeConfig{Key: key, Role: wire.RoleEdge, UploadLimit: upload, Logger: n.log.With("role", "edge")})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	go node.Serve(ln)
	tc, err := tracker.NewClient(tracker.ClientConfig{URL: n.TrackerURL, Key: key})
	if err != nil {
		return nil, err
	}
	sd, err := seeder.New(seeder.Config{Node: node, Tracker: tc, Role: tracker.RoleEdge, AnnounceInterval: time.Second, Logger: n.log.With("role", "edge")})
	if err != nil {
		return nil, err
	}
	go sd.Run(ctx)
	(&seeder.EdgeSource{Seeder: sd, Edge: srv, ContentBase: "http://content.test", Origin: n.OriginURL}).Mount()
	e := &Edge{Server: srv, Node: node, Seeder: sd}
	if e.URL, err = n.serve(srv.Handler()); err != nil {
		return nil, err
	}
	n.closers = append(n.closers, func() {
		sd.Close()
		node.Close()
		srv.Close()
	})
	return e, nil
}

// countBytes counts the response bytes a handler writes.
func countBytes(h http.Handler, n *atomic.Int64) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(&countingWriter{ResponseWriter: w, n: n}, r)
	})
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}
