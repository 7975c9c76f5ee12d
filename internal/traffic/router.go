package traffic

import (
	"math"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"avalanche/internal/netmap"
)

// Query asks where to send one client.
type Query struct {
	// Property is the property's name.
	Property string
	// Path is the object path within the property (may be empty); it is
	// carried into the answer URLs.
	Path string
	// Client is the client's address (or its EDNS Client Subnet address).
	Client netip.Addr
	// Max is how many ranked edges to return: 0 means the policy's answer
	// count, at most 8.
	Max int
}

// Decision is where a client should go.
type Decision struct {
	Property string `json:"property"`
	// Client is the address the decision was made for.
	Client string `json:"client"`
	// Edges are the chosen edges, best first. Empty when Origin is set.
	Edges []Answer `json:"edges"`
	// Origin is the property's origin URL (with the path), set when no edge
	// is eligible.
	Origin string `json:"origin,omitempty"`
	// TTLSeconds is how long the answer may be cached.
	TTLSeconds int `json:"ttl_seconds"`
	// Want is how many answers the policy gives by default (1, or a
	// multivalue node's max); a DNS answer carries that many.
	Want int `json:"-"`
	// ScopeBits is how many leading bits of the client address the
	// decision depends on (for EDNS Client Subnet scopes).
	ScopeBits int `json:"-"`
}

// Answer is one chosen edge.
type Answer struct {
	ID     string       `json:"id"`
	URL    string       `json:"url"`
	Region string       `json:"region,omitempty"`
	Addrs  []netip.Addr `json:"addrs,omitempty"`
}

// Locator places client addresses; *netmap.Map and *netmap.Watcher are
// Locators.
type Locator interface {
	LookupEntry(netip.Addr) (netmap.Entry, bool)
}

// snapshot is an immutable view of the shared state that routing reads
// without locks. A new one is built on every sync.
type snapshot struct {
	built    time.Time
	edges    []*edgeState // sorted by ID
	byID     map[string]int
	layout   string // IDs and regions; bound policies are reused while it holds
	policies map[string]*boundPolicy
	// contested: some edge has fresh votes both ways, so other probers
	// may be about to change its state; Run syncs faster meanwhile.
	contested bool
}

// edgeState is an edge as routing sees it.
type edgeState struct {
	Edge
	seen      time.Time
	healthy   bool
	flag      Flag
	status    string // healthy, down, stale, drained, overloaded
	util      float64
	cost      float64
	hash      uint64
	asns      []uint32
	isps      []string
	addrs     []netip.Addr
	votesUp   int
	votesDown int
}

// eligible reports whether e may receive new clients under ceiling.
func (e *edgeState) eligible(ceiling float64) bool {
	return e.healthy && !e.flag.Drained && !e.Load.Overloaded && e.util < ceiling
}

func (e *edgeState) peers(loc netmap.Location) bool {
	if loc.ASN != 0 {
		for _, a := range e.asns {
			if a == loc.ASN {
				return true
			}
		}
	}
	if loc.ISP != "" {
		for _, s := range e.isps {
			if strings.EqualFold(s, loc.ISP) {
				return true
			}
		}
	}
	return false
}

// boundPolicy is a policy with its targets resolved against a snapshot's
// edges.
type boundPolicy struct {
	p       *Policy
	raw     string
	root    *bnode
	answers int
	ttl     time.Duration
	sticky  time.Duration
	ceiling float64
	bucket  float64
	peering bool
	cost    bool
}

type methodKind uint8

const (
	mPriority methodKind = iota
	mWeighted
	mPerformance
	mGeographic
	mSubnet
	mMultiValue
)

type bnode struct {
	method  methodKind
	targets []btarget
	order   []int // priority order of targets
	max     int
	// geographic
	byCountry, byRegion map[string]int
	star                int
	// subnet
	nets         map[netip.Prefix]int
	lens4, lens6 []int
}

type btarget struct {
	edges  []int
	child  *bnode
	weight float64
	hash   uint64
}

// mix is splitmix64's finaliser: a fast, well-spread 64-bit hash of x.
func mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// stableHash is FNV-1a, finalised by mix: every control node computes the
// same value, so that they rank alike.
func stableHash(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return mix(h)
}

func bindPolicy(p *Policy, raw string, s *snapshot) *boundPolicy {
	bp := &boundPolicy{
		p:       p,
		raw:     raw,
		answers: max(p.Answers, 1),
		ttl:     p.ttl(),
		sticky:  p.Rules.sticky(),
		ceiling: p.Rules.ceiling(),
		bucket:  p.Rules.bucket(),
		peering: p.Rules.peering(),
		cost:    p.Rules.cost(),
	}
	root := p.Route
	if root == nil {
		root = &Node{Method: MethodPerformance, Targets: []Target{{Region: "*"}}}
	}
	bp.root = bindNode(root, s)
	return bp
}

func bindNode(n *Node, s *snapshot) *bnode {
	b := &bnode{star: -1}
	switch n.Method {
	case MethodPriority:
		b.method = mPriority
	case MethodWeighted:
		b.method = mWeighted
	case MethodPerformance:
		b.method = mPerformance
	case MethodGeographic:
		b.method = mGeographic
		b.byCountry, b.byRegion = map[string]int{}, map[string]int{}
	case MethodSubnet:
		b.method = mSubnet
		b.nets = map[netip.Prefix]int{}
	case MethodMultiValue:
		b.method = mMultiValue
		b.max = n.Max
		if b.max == 0 {
			b.max = maxAnswers
		}
	}
	seen4, seen6 := map[int]bool{}, map[int]bool{}
	for i, t := range n.Targets {
		bt := btarget{weight: float64(max(t.Weight, 1))}
		switch {
		case t.Route != nil:
			bt.child = bindNode(t.Route, s)
			bt.hash = stableHash("route/" + strconv.Itoa(i))
		case t.Edge != "":
			bt.edges = resolveIDs(s, []string{t.Edge})
			bt.hash = stableHash("edge/" + t.Edge)
		case len(t.Edges) > 0:
			bt.edges = resolveIDs(s, t.Edges)
			bt.hash = stableHash("edges/" + strings.Join(t.Edges, ","))
		default:
			for j, e := range s.edges {
				if t.Region == "*" || e.Region == t.Region {
					bt.edges = append(bt.edges, j)
				}
			}
			bt.hash = stableHash("region/" + t.Region)
		}
		b.targets = append(b.targets, bt)
		for _, m := range t.Match {
			if m == "*" {
				if b.star < 0 {
					b.star = i
				}
				continue
			}
			k := normalizeMatch(m)
			// Two-letter keys are countries (ISO 3166), longer ones regions;
			// a key may serve as both when the map's regions are continent
			// codes ("EU").
			if len(k) == 2 {
				if _, dup := b.byCountry[k]; !dup {
					b.byCountry[k] = i
				}
			}
			if _, dup := b.byRegion[k]; !dup {
				b.byRegion[k] = i
			}
		}
		for _, c := range t.CIDRs {
			p := netip.MustParsePrefix(c).Masked()
			if p.Addr().Is4In6() && p.Bits() >= 96 {
				p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
			}
			if _, dup := b.nets[p]; dup {
				continue
			}
			b.nets[p] = i
			if p.Addr().Is4() {
				seen4[p.Bits()] = true
			} else {
				seen6[p.Bits()] = true
			}
		}
	}
	b.lens4, b.lens6 = descKeys(seen4), descKeys(seen6)
	b.order = make([]int, len(n.Targets))
	for i := range b.order {
		b.order[i] = i
	}
	sort.SliceStable(b.order, func(x, y int) bool {
		px, py := n.Targets[b.order[x]].Priority, n.Targets[b.order[y]].Priority
		if px == 0 {
			px = b.order[x] + 1
		}
		if py == 0 {
			py = b.order[y] + 1
		}
		return px < py
	})
	return b
}

func resolveIDs(s *snapshot, ids []string) []int {
	var out []int
	for _, id := range ids {
		if i, ok := s.byID[id]; ok {
			out = append(out, i)
		}
	}
	return out
}

func descKeys(m map[int]bool) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(out)))
	return out
}

// cand is one edge being ranked.
type cand struct {
	idx   int
	group uint32 // quality class: lower is better
	peer  bool
	cost  float64
	hrw   uint64
}

// evalCtx holds one decision's scratch space; pooled.
type evalCtx struct {
	s      *snapshot
	bp     *boundPolicy
	addr   netip.Addr
	loc    netmap.Location
	key    uint64
	scope  int // extra client bits the decision depended on (subnet)
	cands  []cand
	seen   []uint64
	answer int
}

var evalPool = sync.Pool{New: func() any { return &evalCtx{cands: make([]cand, 0, 16)} }}

const perfBuckets = 4096

func (c *evalCtx) mark(i int) bool {
	w, b := i/64, uint64(1)<<(i%64)
	if c.seen[w]&b != 0 {
		return false
	}
	c.seen[w] |= b
	return true
}

func (c *evalCtx) target(t *btarget, base uint32) uint32 {
	if t.child != nil {
		return c.node(t.child, base)
	}
	for _, i := range t.edges {
		e := c.s.edges[i]
		if !e.eligible(c.bp.ceiling) || !c.mark(i) {
			continue
		}
		c.cands = append(c.cands, cand{idx: i, group: base})
	}
	return base + 1
}

func (c *evalCtx) node(n *bnode, base uint32) uint32 {
	switch n.method {
	case mPriority:
		for _, ti := range n.order {
			base = c.target(&n.targets[ti], base)
		}
	case mMultiValue:
		c.answer = max(c.answer, n.max)
		for _, ti := range n.order {
			base = c.target(&n.targets[ti], base)
		}
	case mWeighted:
		// Weighted rendezvous hashing: each target scores
		// -weight/ln(u) with u a hash of (client prefix, target) in (0,1);
		// targets are tried best score first. A prefix keeps its target as
		// long as that target has eligible edges, and the share of
		// prefixes each target gets is proportional to its weight.
		var order [maxTargets]int
		var score [maxTargets]float64
		k := len(n.targets)
		for i := range n.targets {
			h := mix(c.key ^ n.targets[i].hash)
			u := (float64(h>>11) + 0.5) / (1 << 53)
			score[i] = -n.targets[i].weight / math.Log(u)
			order[i] = i
		}
		for i := 1; i < k; i++ {
			for j := i; j > 0 && score[order[j]] > score[order[j-1]]; j-- {
				order[j], order[j-1] = order[j-1], order[j]
			}
		}
		for _, ti := range order[:k] {
			base = c.target(&n.targets[ti], base)
		}
	case mPerformance:
		start := len(c.cands)
		for i := range n.targets {
			c.target(&n.targets[i], base)
		}
		for j := start; j < len(c.cands); j++ {
			rtt := c.rtt(c.s.edges[c.cands[j].idx])
			b := uint32(perfBuckets - 1)
			if rtt < float64(perfBuckets-1)*c.bp.bucket {
				b = uint32(rtt / c.bp.bucket)
			}
			c.cands[j].group = base + b
		}
		base += perfBuckets
	case mGeographic:
		ti := -1
		if i, ok := n.byCountry[normalizeMatch(c.loc.Country)]; ok && c.loc.Country != "" {
			ti = i
		} else if i, ok := n.byRegion[normalizeMatch(c.loc.Region)]; ok && c.loc.Region != "" {
			ti = i
		}
		start := len(c.cands)
		if ti >= 0 {
			base = c.target(&n.targets[ti], base)
		}
		if len(c.cands) == start && n.star >= 0 && n.star != ti {
			base = c.target(&n.targets[n.star], base)
		}
	case mSubnet:
		a := c.addr
		lens := n.lens6
		if a.Is4() {
			lens = n.lens4
		}
		if len(lens) > 0 {
			c.scope = max(c.scope, lens[0])
		}
		start := len(c.cands)
		for _, bits := range lens {
			p, err := a.Prefix(bits)
			if err != nil {
				continue
			}
			if ti, ok := n.nets[p]; ok {
				base = c.target(&n.targets[ti], base)
				if len(c.cands) > start {
					break
				}
			}
		}
	}
	return base
}

// rtt estimates the round trip to e in milliseconds: the edge's own
// measurement for the client's region, else 1 ms per 100 km of great-circle
// distance, else +Inf.
func (c *evalCtx) rtt(e *edgeState) float64 {
	if c.loc.Region != "" {
		if v, ok := e.Load.RTTms[c.loc.Region]; ok {
			return v
		}
	}
	el := netmap.Location{Lat: e.Lat, Lon: e.Lon}
	return netmap.DistanceKM(c.loc, el) / 100
}

// rank orders the candidates: quality class first, then (within a class)
// peering with the client's ISP, lower cost, and the rendezvous hash of the
// client prefix, which spreads prefixes over equal edges and keeps each
// prefix on the same one.
func (c *evalCtx) rank() {
	for j := range c.cands {
		e := c.s.edges[c.cands[j].idx]
		if c.bp.peering {
			c.cands[j].peer = e.peers(c.loc)
		}
		if c.bp.cost {
			c.cands[j].cost = e.cost
		}
		c.cands[j].hrw = mix(c.key ^ e.hash)
	}
	slices.SortFunc(c.cands, func(a, b cand) int {
		switch {
		case a.group != b.group:
			if a.group < b.group {
				return -1
			}
			return 1
		case a.peer != b.peer:
			if a.peer {
				return -1
			}
			return 1
		case a.cost != b.cost:
			if a.cost < b.cost {
				return -1
			}
			return 1
		case a.hrw != b.hrw:
			if a.hrw > b.hrw {
				return -1
			}
			return 1
		}
		return 0
	})
}
