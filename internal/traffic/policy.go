package traffic

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Limits on policies, so that a policy document cannot make routing slow or
// memory hungry.
const (
	MaxPolicyBytes   = 256 << 10 // one policy document
	MaxPolicies      = 10000     // properties
	maxPolicyNodes   = 256       // routing nodes in one policy
	maxPolicyDepth   = 8         // nesting
	maxTargets       = 64        // targets of one node
	maxMatches       = 4096      // geographic keys plus CIDRs in one policy
	maxAnswers       = 8         // answers in one decision
	maxTTLSeconds    = 300
	defaultTTL       = 20 * time.Second
	defaultSticky    = 15 * time.Minute
	defaultCeiling   = 0.9
	defaultBucketMS  = 15
	maxPropertyLen   = 63
	maxLoadCeiling   = 1.0
	maxStickySeconds = 7 * 24 * 3600
)

// Method names of routing nodes, as in Azure Traffic Manager and Route 53.
const (
	MethodPriority    = "priority"    // first target with a healthy edge wins (failover)
	MethodWeighted    = "weighted"    // targets by weight, sticky per client prefix
	MethodPerformance = "performance" // lowest measured RTT, else nearest by coordinates
	MethodGeographic  = "geographic"  // client country or region → target
	MethodSubnet      = "subnet"      // client CIDR → target (longest prefix)
	MethodMultiValue  = "multivalue"  // several healthy answers
)

// Policy is the routing policy of one property: a tree of routing methods
// whose leaves select edges, and the business rules applied on top.
type Policy struct {
	// Name is the property: a DNS label (a-z, 0-9, '-', at most 63).
	Name string `json:"name"`
	// TokenSHA256 is the hex SHA-256 of the property's admin token, which
	// may read, replace and delete this policy. Empty: only the operator's
	// admin token may.
	TokenSHA256 string `json:"token_sha256,omitempty"`
	// Origin is where clients go when no edge is eligible, e.g.
	// "https://origin.example.net". Empty: such requests fail with 503.
	Origin string `json:"origin,omitempty"`
	// TTLSeconds is the DNS TTL and the HTTP Cache-Control max-age of
	// answers. Default 20, at most 300.
	TTLSeconds int `json:"ttl_seconds,omitempty"`
	// Answers is how many edges a DNS answer carries (a multivalue node
	// raises it to its max). Default 1, at most 8.
	Answers int `json:"answers,omitempty"`
	// Rules are the business rules.
	Rules Rules `json:"rules"`
	// Route is the routing tree. Default: performance over every edge.
	Route *Node `json:"route,omitempty"`
}

// Rules are a property's business rules, applied after the routing tree has
// ranked the edges.
type Rules struct {
	// LoadCeiling: edges whose utilization (the largest of egress, conns and
	// CPU fractions) is at or above it get no new clients. Default 0.9.
	LoadCeiling float64 `json:"load_ceiling,omitempty"`
	// PreferPeering ranks edges that peer with the client's ISP first among
	// edges of equal quality. Default true.
	PreferPeering *bool `json:"prefer_peering,omitempty"`
	// LowestCost ranks cheaper edges (per GB, now) first among edges of
	// equal quality. Default true.
	LowestCost *bool `json:"lowest_cost,omitempty"`
	// StickySeconds keeps a client prefix on the edge it was first sent to
	// while that edge stays eligible, refreshed on every request. Default
	// 900; 0 turns stickiness off.
	StickySeconds *int `json:"sticky_seconds,omitempty"`
	// PrefixV4 and PrefixV6 are the client prefix lengths that stickiness
	// and weighted hashing work on. Default 24 and 48.
	PrefixV4 int `json:"prefix_v4,omitempty"`
	PrefixV6 int `json:"prefix_v6,omitempty"`
	// BucketMS is the width of a performance quality class: edges whose
	// estimated RTT falls in the same bucket are of equal quality. Default 15.
	BucketMS float64 `json:"bucket_ms,omitempty"`
}

// Node is one routing method over its targets.
type Node struct {
	// Method is one of the Method constants.
	Method string `json:"method"`
	// Targets are what the method chooses among.
	Targets []Target `json:"targets"`
	// Max is the most answers a multivalue node gives. Default 8.
	Max int `json:"max,omitempty"`
}

// Target is one choice of a node. Exactly one of Edge, Edges, Region and
// Route selects what it stands for; the other fields parameterise the
// parent's method.
type Target struct {
	// Edge is one edge by ID.
	Edge string `json:"edge,omitempty"`
	// Edges are several edges by ID.
	Edges []string `json:"edges,omitempty"`
	// Region selects every edge registered in that region; "*" selects
	// every edge.
	Region string `json:"region,omitempty"`
	// Route is a nested node.
	Route *Node `json:"route,omitempty"`

	// Weight (weighted): 1–1000, default 1.
	Weight int `json:"weight,omitempty"`
	// Priority (priority): lower wins, 1–1000; default the target's
	// position.
	Priority int `json:"priority,omitempty"`
	// Match (geographic): client countries (ISO codes) or regions as the
	// network map spells them; "*" matches everyone. A country match beats
	// a region match, which beats "*".
	Match []string `json:"match,omitempty"`
	// CIDRs (subnet): client prefixes; the longest match wins.
	CIDRs []string `json:"cidrs,omitempty"`
}

// reservedNames cannot be properties: the redirector shares the URL space.
var reservedNames = map[string]bool{"v1": true, "healthz": true, "metrics": true, "debug": true}

// ValidProperty reports whether name can be a property name.
func ValidProperty(name string) bool {
	if name == "" || len(name) > maxPropertyLen || reservedNames[name] {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || (c == '-' && i > 0 && i < len(name)-1)
		if !ok {
			return false
		}
	}
	return true
}

// ParsePolicy decodes and validates one policy document (JSON, at most
// MaxPolicyBytes). Unknown fields are errors, so that typos do not silently
// change routing.
func ParsePolicy(b []byte) (*Policy, error) {
	if len(b) > MaxPolicyBytes {
		return nil, fmt.Errorf("%w: policy larger than %d bytes", ErrTooLarge, MaxPolicyBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p Policy
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: policy: %v", ErrInvalid, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: policy: trailing data", ErrInvalid)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// ParsePolicies reads a policy file: a JSON array of policies, at most
// MaxPolicies of them and 64 MiB in all.
func ParsePolicies(r io.Reader) ([]*Policy, error) {
	dec := json.NewDecoder(io.LimitReader(r, 64<<20))
	var raws []json.RawMessage
	if err := dec.Decode(&raws); err != nil {
		return nil, fmt.Errorf("%w: policy file: %v", ErrInvalid, err)
	}
	if len(raws) > MaxPolicies {
		return nil, fmt.Errorf("%w: more than %d policies", ErrTooLarge, MaxPolicies)
	}
	seen := map[string]bool{}
	out := make([]*Policy, 0, len(raws))
	for i, raw := range raws {
		p, err := ParsePolicy(raw)
		if err != nil {
			return nil, fmt.Errorf("policy %d: %w", i+1, err)
		}
		if seen[p.Name] {
			return nil, fmt.Errorf("%w: policy %d: property %q defined twice", ErrInvalid, i+1, p.Name)
		}
		seen[p.Name] = true
		out = append(out, p)
	}
	return out, nil
}

// Validate checks p against the format and limits.
func (p *Policy) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: property %q: %s", ErrInvalid, p.Name, fmt.Sprintf(format, a...))
	}
	if !ValidProperty(p.Name) {
		return bad("name must be a DNS label (a-z, 0-9, '-'), at most %d characters, not v1/healthz/metrics/debug", maxPropertyLen)
	}
	if p.TokenSHA256 != "" {
		if b, err := hex.DecodeString(p.TokenSHA256); err != nil || len(b) != sha256.Size {
			return bad("token_sha256 must be 64 hex digits")
		}
	}
	if p.Origin != "" {
		u, err := url.Parse(p.Origin)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || len(p.Origin) > maxURLLen {
			return bad("origin %q: want an http(s) URL", p.Origin)
		}
	}
	if p.TTLSeconds < 0 || p.TTLSeconds > maxTTLSeconds {
		return bad("ttl_seconds must be 0-%d", maxTTLSeconds)
	}
	if p.Answers < 0 || p.Answers > maxAnswers {
		return bad("answers must be 0-%d", maxAnswers)
	}
	r := p.Rules
	if !finite(r.LoadCeiling, r.BucketMS) || r.LoadCeiling > maxLoadCeiling || r.BucketMS > 10000 {
		return bad("load_ceiling must be 0-1 and bucket_ms 0-10000")
	}
	if r.StickySeconds != nil && (*r.StickySeconds < 0 || *r.StickySeconds > maxStickySeconds) {
		return bad("sticky_seconds must be 0-%d", maxStickySeconds)
	}
	if r.PrefixV4 < 0 || r.PrefixV4 > 32 || r.PrefixV6 < 0 || r.PrefixV6 > 128 {
		return bad("prefix_v4 must be 0-32 and prefix_v6 0-128")
	}
	if p.Route != nil {
		c := &validateCounter{}
		if err := p.Route.validate(c, 1); err != nil {
			return bad("%v", err)
		}
	}
	return nil
}

type validateCounter struct{ nodes, matches int }

func (n *Node) validate(c *validateCounter, depth int) error {
	c.nodes++
	if c.nodes > maxPolicyNodes {
		return fmt.Errorf("more than %d routing nodes", maxPolicyNodes)
	}
	if depth > maxPolicyDepth {
		return fmt.Errorf("routing nested deeper than %d", maxPolicyDepth)
	}
	switch n.Method {
	case MethodPriority, MethodWeighted, MethodPerformance, MethodGeographic, MethodSubnet, MethodMultiValue:
	default:
		return fmt.Errorf("unknown method %q (want priority, weighted, performance, geographic, subnet or multivalue)", n.Method)
	}
	if len(n.Targets) == 0 || len(n.Targets) > maxTargets {
		return fmt.Errorf("%s: want 1-%d targets", n.Method, maxTargets)
	}
	if n.Max < 0 || n.Max > maxAnswers {
		return fmt.Errorf("%s: max must be 0-%d", n.Method, maxAnswers)
	}
	for i := range n.Targets {
		t := &n.Targets[i]
		where := fmt.Sprintf("%s target %d", n.Method, i+1)
		sel := 0
		if t.Edge != "" {
			sel++
			if !validID(t.Edge) {
				return fmt.Errorf("%s: bad edge id %q", where, t.Edge)
			}
		}
		if len(t.Edges) > 0 {
			sel++
			if len(t.Edges) > maxTargets {
				return fmt.Errorf("%s: more than %d edges", where, maxTargets)
			}
			for _, id := range t.Edges {
				if !validID(id) {
					return fmt.Errorf("%s: bad edge id %q", where, id)
				}
			}
		}
		if t.Region != "" {
			sel++
			if len(t.Region) > maxStringField {
				return fmt.Errorf("%s: region too long", where)
			}
		}
		if t.Route != nil {
			sel++
			if err := t.Route.validate(c, depth+1); err != nil {
				return err
			}
		}
		if sel != 1 {
			return fmt.Errorf("%s: want exactly one of edge, edges, region, route", where)
		}
		if t.Weight < 0 || t.Weight > 1000 || t.Priority < 0 || t.Priority > 1000 {
			return fmt.Errorf("%s: weight and priority must be 0-1000", where)
		}
		c.matches += len(t.Match) + len(t.CIDRs)
		if c.matches > maxMatches {
			return fmt.Errorf("more than %d match keys and CIDRs", maxMatches)
		}
		switch n.Method {
		case MethodGeographic:
			if len(t.Match) == 0 {
				return fmt.Errorf("%s: geographic targets need match", where)
			}
			for _, m := range t.Match {
				if m == "" || len(m) > maxStringField {
					return fmt.Errorf("%s: bad match key %q", where, m)
				}
			}
		case MethodSubnet:
			if len(t.CIDRs) == 0 {
				return fmt.Errorf("%s: subnet targets need cidrs", where)
			}
			for _, s := range t.CIDRs {
				if _, err := netip.ParsePrefix(s); err != nil {
					return fmt.Errorf("%s: %v", where, err)
				}
			}
		default:
			if len(t.Match) > 0 || len(t.CIDRs) > 0 {
				return fmt.Errorf("%s: match and cidrs belong to geographic and subnet nodes", where)
			}
		}
	}
	return nil
}

// checkToken reports whether token is the property's admin token.
func (p *Policy) checkToken(token string) bool {
	if p.TokenSHA256 == "" || token == "" {
		return false
	}
	want, err := hex.DecodeString(p.TokenSHA256)
	if err != nil {
		return false
	}
	got := sha256.Sum256([]byte(token))
	return subtle.ConstantTimeCompare(got[:], want) == 1
}

// TokenHash returns the value of Policy.TokenSHA256 for a token.
func TokenHash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

// Effective rule values.

func (p *Policy) ttl() time.Duration {
	if p.TTLSeconds == 0 {
		return defaultTTL
	}
	return time.Duration(p.TTLSeconds) * time.Second
}

func (r *Rules) ceiling() float64 {
	if r.LoadCeiling == 0 {
		return defaultCeiling
	}
	return r.LoadCeiling
}

func (r *Rules) peering() bool { return r.PreferPeering == nil || *r.PreferPeering }
func (r *Rules) cost() bool    { return r.LowestCost == nil || *r.LowestCost }

func (r *Rules) sticky() time.Duration {
	if r.StickySeconds == nil {
		return defaultSticky
	}
	return time.Duration(*r.StickySeconds) * time.Second
}

func (r *Rules) bucket() float64 {
	if r.BucketMS == 0 {
		return defaultBucketMS
	}
	return r.BucketMS
}

func (r *Rules) prefixBits(a netip.Addr) int {
	if a.Is4() {
		if r.PrefixV4 == 0 {
			return 24
		}
		return r.PrefixV4
	}
	if r.PrefixV6 == 0 {
		return 48
	}
	return r.PrefixV6
}

// normalizeMatch folds match keys so that "ie" and "IE" agree.
func normalizeMatch(s string) string { return strings.ToLower(s) }
