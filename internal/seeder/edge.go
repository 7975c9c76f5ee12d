package seeder

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"avalanche/internal/edge"
	"avalanche/internal/manifest"
)

// EdgeSource turns an edge into a super-seed: on the first request for a
// content's seeds (GET /v1/swarm/{id}) it fetches the signed manifest
// through the edge's cache, joins the content's swarm as a whole source
// whose bytes are read through the same cache (so the origin sends each
// generation to the edge once, as HTTP ranges, whatever the number of
// peers), and answers with its own peer address followed by the origin's
// seeds (downloaders need the origin for their checksums). Safe for
// concurrent use.
type EdgeSource struct {
	// Seeder serves the swarms; its Node should have the edge role.
	Seeder *Seeder
	// Edge is the caching proxy whose properties route ContentBase.
	Edge *edge.Server
	// ContentBase is the URL prefix, routed by the edge to the origin, under
	// which /v1/manifest/{id} and /v1/content/{id} are fetched.
	ContentBase string
	// Origin is the origin's own base URL, asked for its seeds.
	Origin string
	// HTTP asks the origin for its seeds; default: a client with a 10 s
	// timeout.
	HTTP *http.Client

	mu      sync.Mutex
	joining map[manifest.ID]*sync.Mutex
}

// Mount registers the seed endpoint on the edge.
func (e *EdgeSource) Mount() { e.Edge.HandleLocal("GET /v1/swarm/{id}", e) }

// ServeHTTP answers GET /v1/swarm/{id}.
func (e *EdgeSource) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, err := manifest.ParseID(r.PathValue("id"))
	if err != nil {
		http.Error(w, "bad content ID", http.StatusBadRequest)
		return
	}
	if err := e.ensure(r.Context(), id); err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	info, ok := e.Seeder.Info(r, id)
	if !ok {
		http.Error(w, "not seeded here", http.StatusNotFound)
		return
	}
	info.Seeds = append(info.Seeds, e.originSeeds(r.Context(), id)...)
	writeSeedInfo(w, info)
}

// ensure joins the swarm of id if not yet seeded.
func (e *EdgeSource) ensure(ctx context.Context, id manifest.ID) error {
	if e.Seeder.Swarm(id) != nil {
		return nil
	}
	e.mu.Lock()
	if e.joining == nil {
		e.joining = map[manifest.ID]*sync.Mutex{}
	}
	l := e.joining[id]
	if l == nil {
		l = &sync.Mutex{}
		e.joining[id] = l
	}
	e.mu.Unlock()
	l.Lock()
	defer l.Unlock()
	if e.Seeder.Swarm(id) != nil {
		return nil
	}
	b, _, err := e.Edge.ReadRange(ctx, e.ContentBase+"/v1/manifest/"+id.String(), 0, 0)
	if err != nil {
		return fmt.Errorf("seeder: manifest %s: %w", id.Short(), err)
	}
	m, err := manifest.Parse(b)
	if err != nil {
		return fmt.Errorf("seeder: manifest %s: %w", id.Short(), err)
	}
	if m.ID() != id {
		return fmt.Errorf("seeder: manifest %s: origin served %s", id.Short(), m.ID().Short())
	}
	return e.Seeder.Add(m, &edgeReader{edge: e.Edge, url: e.ContentBase + "/v1/content/" + id.String()}, nil)
}

// originSeeds asks the origin for its own seeds of id.
func (e *EdgeSource) originSeeds(ctx context.Context, id manifest.ID) []Seed {
	if e.Origin == "" {
		return nil
	}
	hc := e.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(e.Origin, "/")+"/v1/swarm/"+id.String(), nil)
	if err != nil {
		return nil
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var info SeedInfo
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&info) != nil {
		return nil
	}
	return info.Seeds
}

// edgeReader reads a published file through the edge's cache.
type edgeReader struct {
	edge *edge.Server
	url  string
}

func (r *edgeReader) ReadAt(p []byte, off int64) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	b, _, err := r.edge.ReadRange(ctx, r.url, off, int64(len(p)))
	n := copy(p, b)
	if err == nil && n < len(p) {
		err = io.ErrUnexpectedEOF
	}
	return n, err
}
