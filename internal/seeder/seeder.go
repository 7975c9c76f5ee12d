// Package seeder keeps a set of complete contents available to their swarms:
// it joins each one's swarm as a source on a swarm.Node, announces it to the
// tracker as an origin or edge, and answers GET /v1/swarm/{id} with the
// node's peer address so that downloaders can find a seed without a tracker.
// The origin uses it for everything it stores; an edge for what it has
// fetched.
package seeder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"avalanche/internal/manifest"
	"avalanche/internal/swarm"
	"avalanche/internal/tracker"
)

// Config configures a Seeder.
type Config struct {
	// Node is the peer-protocol node that serves the swarms. Required.
	Node *swarm.Node
	// Tracker, when set, is told about every content seeded.
	Tracker *tracker.Client
	// Role is the role announced to the tracker; default tracker.RoleOrigin.
	Role tracker.Role
	// MasterKey makes the node issue checksum keys (origins only).
	MasterKey []byte
	// SeedCap: the node declines non-urgent requests for a generation it
	// already sent this many times its size (see swarm.Config.SeedCap);
	// 0 means no cap.
	SeedCap float64
	// AnnounceInterval is the fallback announce period; default 5 s (the
	// tracker's answer overrides it).
	AnnounceInterval time.Duration
	// Logger receives events; nil discards.
	Logger *slog.Logger
}

// Seeder serves complete contents to their swarms. Safe for concurrent use.
type Seeder struct {
	cfg Config
	log *slog.Logger

	mu    sync.Mutex
	items map[manifest.ID]*item
}

type item struct {
	sw     *swarm.Swarm
	closer io.Closer
}

// New returns a Seeder.
func New(cfg Config) (*Seeder, error) {
	if cfg.Node == nil {
		return nil, errors.New("seeder: no node")
	}
	if cfg.Role == "" {
		cfg.Role = tracker.RoleOrigin
	}
	if cfg.AnnounceInterval == 0 {
		cfg.AnnounceInterval = 5 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Seeder{cfg: cfg, log: log, items: map[manifest.ID]*item{}}, nil
}

// Add starts seeding m from data; closer (may be nil) is closed when the
// content is removed. Adding content already seeded is a no-op (closer is
// closed at once).
func (s *Seeder) Add(m *manifest.Manifest, data io.ReaderAt, closer io.Closer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.items[m.ID()]; ok {
		if closer != nil {
			closer.Close()
		}
		return nil
	}
	sw, err := s.cfg.Node.Join(swarm.Config{
		Manifest: m, Data: data, MasterKey: s.cfg.MasterKey, SeedCap: s.cfg.SeedCap, Logger: s.cfg.Logger,
	})
	if err != nil {
		return fmt.Errorf("seeder: %w", err)
	}
	s.items[m.ID()] = &item{sw: sw, closer: closer}
	s.log.Info("seeding", "content", m.ID().Short(), "name", m.Name, "size", m.Size)
	return nil
}

// Remove stops seeding id.
func (s *Seeder) Remove(id manifest.ID) {
	s.mu.Lock()
	it := s.items[id]
	delete(s.items, id)
	s.mu.Unlock()
	if it == nil {
		return
	}
	it.sw.Close()
	if it.closer != nil {
		it.closer.Close()
	}
	if s.cfg.Tracker != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		s.cfg.Tracker.Announce(ctx, tracker.AnnounceRequest{Content: id, Port: s.cfg.Node.Port(), Role: s.cfg.Role, Event: tracker.EventStopped})
		cancel()
	}
}

// Swarm returns the swarm of id, or nil.
func (s *Seeder) Swarm(id manifest.ID) *swarm.Swarm {
	s.mu.Lock()
	defer s.mu.Unlock()
	if it := s.items[id]; it != nil {
		return it.sw
	}
	return nil
}

// Close stops seeding everything.
func (s *Seeder) Close() error {
	s.mu.Lock()
	ids := make([]manifest.ID, 0, len(s.items))
	for id := range s.items {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	for _, id := range ids {
		s.Remove(id)
	}
	return nil
}

// Run announces every content to the tracker until ctx ends.
func (s *Seeder) Run(ctx context.Context) {
	if s.cfg.Tracker == nil {
		<-ctx.Done()
		return
	}
	interval := s.cfg.AnnounceInterval
	for {
		s.mu.Lock()
		type ann struct {
			id manifest.ID
			sw *swarm.Swarm
		}
		anns := make([]ann, 0, len(s.items))
		for id, it := range s.items {
			anns = append(anns, ann{id, it.sw})
		}
		s.mu.Unlock()
		for _, a := range anns {
			st := a.sw.Stats()
			resp, err := s.cfg.Tracker.Announce(ctx, tracker.AnnounceRequest{
				Content: a.id, Port: s.cfg.Node.Port(), Role: s.cfg.Role, Event: tracker.EventProgress,
				Bytes: tracker.Bytes{Uploaded: uint64(st.Sent)},
			})
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				s.log.Warn("announce failed", "content", a.id.Short(), "err", err)
				continue
			}
			if resp.Interval > 0 {
				interval = resp.Interval
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// SeedInfo is the JSON answer of GET /v1/swarm/{id}.
type SeedInfo struct {
	Seeds []Seed `json:"seeds"`
}

// Seed is one seed's peer-protocol address.
type Seed struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
	Role string `json:"role"`
}

// ServeHTTP answers GET /v1/swarm/{id}: this node's peer address, on the
// IP the request reached, if it seeds the content.
func (s *Seeder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, err := manifest.ParseID(r.PathValue("id"))
	if err != nil {
		http.Error(w, "bad content ID", http.StatusBadRequest)
		return
	}
	info, ok := s.Info(r, id)
	if !ok {
		http.Error(w, "not seeded here", http.StatusNotFound)
		return
	}
	writeSeedInfo(w, info)
}

// Info returns this node as a seed of id, addressed on the IP that request
// r reached, or false if it does not seed id.
func (s *Seeder) Info(r *http.Request, id manifest.ID) (SeedInfo, bool) {
	if s.Swarm(id) == nil {
		return SeedInfo{}, false
	}
	host := "127.0.0.1"
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ap, err := netip.ParseAddrPort(la.String()); err == nil && !ap.Addr().IsUnspecified() {
			host = ap.Addr().Unmap().String()
		}
	}
	return SeedInfo{Seeds: []Seed{{
		ID:   s.cfg.Node.ID().String(),
		Addr: net.JoinHostPort(host, strconv.Itoa(int(s.cfg.Node.Port()))),
		Role: string(s.cfg.Role),
	}}}, true
}

func writeSeedInfo(w http.ResponseWriter, info SeedInfo) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(info)
}
