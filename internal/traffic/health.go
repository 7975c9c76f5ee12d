package traffic

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"
)

// prober actively checks every registered edge's health URL from this
// control node and records its verdicts as votes in the shared store.
//
// A probe passes when the edge answers 2xx or 3xx within ProbeTimeout. After
// a failure the edge is probed again every ProbeFastInterval until
// FailThreshold consecutive failures make this node vote it down (or a
// success clears the suspicion); a single success votes it up again. Every
// probe refreshes the node's vote, so votes of a dead control node age out
// after VoteTTL.
type prober struct {
	m        *Manager
	maxInfly int

	mu    sync.Mutex
	state map[string]*probeState
}

type probeState struct {
	fails    int
	healthy  bool
	next     time.Time
	inflight bool
}

func newProber(m *Manager) *prober {
	return &prober{m: m, maxInfly: 64, state: map[string]*probeState{}}
}

func (p *prober) run(ctx context.Context) {
	tick := max(p.m.cfg.ProbeFastInterval/4, 10*time.Millisecond)
	t := time.NewTicker(tick)
	defer t.Stop()
	sem := make(chan struct{}, p.maxInfly)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s := p.m.snap.Load()
		now := time.Now()
		p.mu.Lock()
		for id := range p.state {
			if _, ok := s.byID[id]; !ok {
				delete(p.state, id)
			}
		}
		for _, e := range s.edges {
			st := p.state[e.ID]
			if st == nil {
				st = &probeState{healthy: true}
				p.state[e.ID] = st
			}
			if st.inflight || now.Before(st.next) {
				continue
			}
			select {
			case sem <- struct{}{}:
			default:
				continue // at the concurrency cap; try on the next tick
			}
			st.inflight = true
			wg.Add(1)
			go func(id, url string, st *probeState) {
				defer func() { <-sem; wg.Done() }()
				p.probe(ctx, id, url, st)
			}(e.ID, e.healthURL(), st)
		}
		p.mu.Unlock()
	}
}

func (p *prober) probe(ctx context.Context, id, url string, st *probeState) {
	start := time.Now()
	err := p.check(ctx, url)
	rtt := time.Since(start)
	if ctx.Err() != nil {
		return
	}
	cfg := &p.m.cfg
	p.mu.Lock()
	st.inflight = false
	was := st.healthy
	if err == nil {
		st.fails = 0
		st.healthy = true
		st.next = start.Add(cfg.ProbeInterval)
	} else {
		st.fails++
		if st.fails >= cfg.FailThreshold {
			st.healthy = false
		}
		if st.healthy {
			st.next = time.Now().Add(cfg.ProbeFastInterval) // confirm quickly
		} else {
			st.next = start.Add(cfg.ProbeInterval)
		}
	}
	healthy := st.healthy
	p.mu.Unlock()

	v := Vote{Edge: id, Prober: cfg.NodeID, Healthy: healthy, At: p.m.now().UTC(), RTT: rtt}
	if !healthy && err != nil {
		v.Detail = err.Error()
		if len(v.Detail) > maxStringField {
			v.Detail = v.Detail[:maxStringField]
		}
	}
	p.m.metrics.probe(err == nil)
	if err := p.m.store.PutVote(ctx, v); err != nil {
		p.m.log.Warn("traffic: storing a health vote failed", "edge", id, "err", err)
		return
	}
	if healthy != was {
		p.m.log.Info("traffic: edge health changed", "edge", id, "healthy", healthy, "prober", cfg.NodeID, "err", err)
		p.m.poke()
	}
}

func (p *prober) check(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, p.m.cfg.ProbeTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "avalanche-control-probe")
	resp, err := p.m.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return fmt.Errorf("status %d", resp.StatusCode)
	}
	return nil
}
