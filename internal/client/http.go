package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"avalanche/internal/identity"
	"avalanche/internal/manifest"
	"avalanche/internal/seeder"
	"avalanche/internal/swarm"
	"avalanche/internal/wire"
)

// HTTPDoer is the part of *http.Client the client uses.
type HTTPDoer interface {
	Do(*http.Request) (*http.Response, error)
}

var defaultHTTP = &http.Client{Timeout: 60 * time.Second}

// fetchManifest gets and checks the manifest of id from the first source
// that has it.
func fetchManifest(ctx context.Context, hc HTTPDoer, sources []string, id manifest.ID) (*manifest.Manifest, error) {
	if len(sources) == 0 {
		return nil, fmt.Errorf("%w: no origin or edge given", ErrUnreachable)
	}
	var errs []error
	notFound := 0
	for _, src := range sources {
		b, status, err := httpGet(ctx, hc, src+"/v1/manifest/"+id.String(), "", 1<<30)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s: %v", src, err))
			continue
		case status == http.StatusNotFound:
			notFound++
			errs = append(errs, fmt.Errorf("%s: not found", src))
			continue
		case status != http.StatusOK:
			errs = append(errs, fmt.Errorf("%s: HTTP %d", src, status))
			continue
		}
		m, err := manifest.Parse(b)
		if err != nil {
			return nil, fmt.Errorf("%w: manifest from %s: %v", ErrIntegrity, src, err)
		}
		if m.ID() != id {
			return nil, fmt.Errorf("%w: %s served a manifest for %s", ErrIntegrity, src, m.ID().Short())
		}
		return m, nil
	}
	if notFound == len(sources) {
		return nil, fmt.Errorf("%w: %s", ErrNotFound, id)
	}
	return nil, fmt.Errorf("%w: %v", ErrUnreachable, errors.Join(errs...))
}

// httpGet fetches url (with an optional Range) and returns at most limit
// bytes of the body.
func httpGet(ctx context.Context, hc HTTPDoer, url, rng string, limit int64) ([]byte, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, resp.StatusCode, err
	}
	if int64(len(b)) > limit {
		return nil, resp.StatusCode, fmt.Errorf("response larger than %d bytes", limit)
	}
	return b, resp.StatusCode, nil
}

// fetchSeeds asks each source for the content's seeds.
func fetchSeeds(ctx context.Context, hc HTTPDoer, sources []string, id manifest.ID) []swarm.PeerAddr {
	var out []swarm.PeerAddr
	for _, src := range sources {
		b, status, err := httpGet(ctx, hc, src+"/v1/swarm/"+id.String(), "", 1<<20)
		if err != nil || status != http.StatusOK {
			continue
		}
		var si seeder.SeedInfo
		if json.Unmarshal(b, &si) != nil {
			continue
		}
		for _, s := range si.Seeds {
			pid, err := identity.ParseID(s.ID)
			if err != nil {
				continue
			}
			out = append(out, swarm.PeerAddr{ID: pid, Addr: s.Addr, Role: ParseRole(s.Role)})
		}
	}
	return out
}

// ParseRole maps a role name to its wire value (unknown names are peers).
func ParseRole(s string) wire.Role {
	switch strings.ToLower(s) {
	case "origin":
		return wire.RoleOrigin
	case "edge":
		return wire.RoleEdge
	}
	return wire.RolePeer
}

// introduce finds neighbours: seeds from the sources, then the tracker,
// announcing progress at the tracker's interval.
func (d *download) introduce(ctx context.Context) {
	// The fetch ends when Get returns, so this wait does too.
	if seeds := d.seeds(); len(seeds) > 0 {
		d.sw.AddPeers(seeds)
	}
	if d.cfg.Tracker == nil {
		return
	}
	event := "started"
	interval := 5 * time.Second
	for {
		st := d.sw.Stats()
		a := Announce{
			Content: d.m.ID(), Port: d.node.Port(), Event: event,
			Left: max(0, d.m.Size-st.Rank*int64(d.m.BlockSize)), Uploaded: st.Sent,
			FromPeers: st.Received[swarm.FromPeer], FromOrigin: st.Received[swarm.FromOrigin],
			FromEdge: st.Received[swarm.FromEdge], FromHTTP: st.Received[swarm.FromHTTP],
			Complete: d.sw.Complete(),
		}
		if a.Complete {
			a.Left = 0
			if event != "completed" && event != "started" {
				a.Event = "completed"
			}
		}
		peers, iv, err := d.cfg.Tracker.Announce(ctx, a)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, ErrNoTracker) {
				return
			}
			d.log.Warn("tracker announce failed", "err", err)
			iv = interval
		} else {
			d.sw.AddPeers(peers)
			event = "progress"
			if a.Complete {
				event = "done"
			}
		}
		if iv <= 0 {
			iv = interval
		}
		// Announce sooner when we have few neighbours.
		if st.Peers < 4 {
			iv = min(iv, time.Second)
		}
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			a.Event = "stopped"
			d.cfg.Tracker.Announce(sctx, a)
			cancel()
			return
		case <-time.After(iv):
		}
	}
}

// fallback fetches whole generations over HTTP while the swarm delivers
// less than MinRate, within the budget.
func (d *download) fallback(ctx context.Context) {
	delay := d.cfg.FallbackDelay
	if delay == 0 {
		delay = 5 * time.Second
	}
	budget := d.cfg.FallbackBudget
	if budget == 0 {
		budget = d.m.Size
	}
	w := newRateWindow(int(max(2, delay/time.Second)))
	slowSince := time.Time{}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-d.sw.Done():
			return
		case <-t.C:
		}
		st := d.sw.Stats()
		rate := w.add(time.Now(), st.Downloaded())
		if rate >= float64(d.cfg.MinRate) {
			slowSince = time.Time{}
			continue
		}
		if slowSince.IsZero() {
			slowSince = time.Now()
		}
		if time.Since(slowSince) < delay || d.httpBytes >= budget {
			continue
		}
		// The generation furthest from done (the first one when
		// streaming): a whole generation over HTTP replaces whatever part
		// of it the swarm has delivered.
		gens, ranks := d.sw.Incomplete()
		if len(gens) == 0 {
			continue
		}
		g, best := gens[0], ranks[0]
		if d.cfg.Stream == nil {
			for i, r := range ranks {
				if r < best {
					g, best = gens[i], r
				}
			}
		}
		off, n := d.m.GenerationSpan(g)
		if d.httpBytes+n > budget {
			continue
		}
		for _, src := range d.cfg.Sources {
			rng := fmt.Sprintf("bytes=%d-%d", off, off+n-1)
			b, status, err := httpGet(ctx, d.cfg.HTTP, src+"/v1/content/"+d.m.ID().String(), rng, n)
			if err != nil || (status != http.StatusPartialContent && !(status == http.StatusOK && off == 0 && n == d.m.Size)) || int64(len(b)) != n {
				continue
			}
			if err := d.sw.InjectGeneration(g, b); err != nil {
				d.log.Warn("HTTP fallback generation rejected", "gen", g, "source", src, "err", err)
				continue
			}
			d.httpBytes += n
			d.log.Info("fetched generation over HTTP", "gen", g, "source", src)
			break
		}
	}
}
