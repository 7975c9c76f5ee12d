package tracker

import (
	"cmp"
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"avalanche/internal/identity"
	"avalanche/internal/manifest"
	"avalanche/internal/netmap"
)

// quotas splits a hand-out of want peers into the number drawn from the
// requester's ISP, from its region and from the whole swarm. The random
// share is rounded up, so it is never below MinRandomShare of want and is
// at least one peer.
func (t *Tracker) quotas(want int) (isp, region, random int) {
	random = int(math.Ceil(float64(want)*(1-t.ispShare-t.regionShare) - 1e-9))
	random = min(max(random, 1), want)
	isp = min(int(float64(want)*t.ispShare), want-random)
	region = want - random - isp
	return isp, region, random
}

// handout picks up to want peers of swarm c for self, whose location is
// loc, then appends the swarm's origins and up to MaxEdges edges, nearest
// first. It never returns self, peers self has reported, banned peers, or
// peers that accept no connections.
//
// Tiers are filled in order: up to the ISP quota from self's ISP, then
// from self's region (other ISPs) up to the ISP and region quotas together,
// then from the whole swarm up to want. A tier that falls short leaves its
// quota to the next, so a peer alone in its ISP or region still gets a full
// list. Candidates are shuffled within each tier, so different requesters
// get different subsets.
func (t *Tracker) handout(ctx context.Context, c manifest.ID, self Peer, loc netmap.Location, want int, now time.Time) ([]Peer, error) {
	excluded, err := t.store.Excluded(ctx, c, self.ID, now)
	if err != nil {
		return nil, t.storeErr("excluded", err)
	}
	skip := make(map[identity.ID]bool, 2*want+len(excluded)+8)
	skip[self.ID] = true
	for _, id := range excluded {
		skip[id] = true
	}
	qISP, qRegion, _ := t.quotas(want)
	ispKey, region := self.ISPKey(), self.Region
	// Ask for more than needed: samples may hold self, excluded peers and
	// peers already taken by an earlier tier.
	extra := len(excluded) + 1
	qs := []Query{
		{GroupPool, 2*want + extra},
		{GroupInfra, maxInfraSample},
	}
	ispAt, regionAt := -1, -1
	if ispKey != "" && qISP > 0 {
		ispAt = len(qs)
		qs = append(qs, Query{ISPGroup(ispKey), qISP + extra})
	}
	if region != "" && qISP+qRegion > 0 {
		regionAt = len(qs)
		qs = append(qs, Query{RegionGroup(region), 2*(qISP+qRegion) + extra})
	}
	res, err := t.store.Sample(ctx, c, now, qs)
	if err != nil {
		return nil, t.storeErr("sample", err)
	}
	for _, r := range res {
		rand.Shuffle(len(r), func(i, j int) { r[i], r[j] = r[j], r[i] })
	}

	out := make([]Peer, 0, want+t.cfg.MaxEdges+2)
	take := func(cands []Peer, limit int, ok func(*Peer) bool) {
		for i := range cands {
			if len(out) >= limit {
				return
			}
			p := &cands[i]
			if skip[p.ID] || p.Addr.Port() == 0 || p.Role.Infra() || !ok(p) {
				continue
			}
			skip[p.ID] = true
			out = append(out, *p)
		}
	}
	sameISP := func(p *Peer) bool { return p.ISPKey() == ispKey }
	if ispAt >= 0 {
		take(res[ispAt], qISP, sameISP)
	}
	if regionAt >= 0 {
		take(res[regionAt], qISP+qRegion, func(p *Peer) bool { return p.Region == region && (ispKey == "" || !sameISP(p)) })
	}
	take(res[0], want, func(*Peer) bool { return true })

	return append(out, t.seedsOfLastResort(res[1], loc, skip)...), nil
}

// seedsOfLastResort returns the MaxEdges edges closest to the requester at
// loc (same ISP first, then same region, then by distance, ties broken at
// random) followed by every origin: edges before the origin, whose egress
// costs most.
func (t *Tracker) seedsOfLastResort(infra []Peer, loc netmap.Location, skip map[identity.ID]bool) []Peer {
	var origins []Peer
	type ranked struct {
		p          Peer
		isp, reg   int
		dist, coin float64
	}
	var edges []ranked
	for _, p := range infra {
		if skip[p.ID] || p.Addr.Port() == 0 {
			continue
		}
		switch p.Role {
		case RoleOrigin:
			origins = append(origins, p)
		case RoleEdge:
			if t.cfg.MaxEdges < 0 {
				continue
			}
			el, _ := t.loc.Lookup(p.Addr.Addr())
			r := ranked{p: p, isp: 1, reg: 1, dist: netmap.DistanceKM(loc, el), coin: rand.Float64()}
			if netmap.SameISP(loc, el) {
				r.isp = 0
			}
			if netmap.SameRegion(loc, el) {
				r.reg = 0
			}
			edges = append(edges, r)
		}
	}
	slices.SortFunc(edges, func(a, b ranked) int {
		return cmp.Or(cmp.Compare(a.isp, b.isp), cmp.Compare(a.reg, b.reg), cmp.Compare(a.dist, b.dist), cmp.Compare(a.coin, b.coin))
	})
	rand.Shuffle(len(origins), func(i, j int) { origins[i], origins[j] = origins[j], origins[i] })
	out := make([]Peer, 0, min(len(edges), max(t.cfg.MaxEdges, 0))+len(origins))
	for i := 0; i < len(edges) && i < t.cfg.MaxEdges; i++ {
		out = append(out, edges[i].p)
	}
	return append(out, origins...)
}
