package traffic

import (
	"fmt"
	"math"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Limits on what an edge may report, so that a broken or hostile edge cannot
// blow up the registry.
const (
	MaxEdges         = 10000 // registered edges
	maxEdgeIDLen     = 64
	maxURLLen        = 512
	maxAddrs         = 16
	maxPeers         = 64
	maxRTTEntries    = 64
	maxCostWindows   = 24
	maxStringField   = 256
	maxHeartbeatBody = 64 << 10
)

// Edge is what an edge node tells the traffic manager about itself in every
// heartbeat: where it is, what it can carry, what it costs, whom it peers
// with, and how loaded it is right now.
type Edge struct {
	// ID names the edge: 1–64 characters of [a-z0-9._-].
	ID string `json:"id"`
	// URL is the base URL clients are sent to; a routed request for
	// property p and path x goes to URL + "/" + p + "/" + x.
	URL string `json:"url"`
	// HealthURL is probed by the control nodes. Default: URL + "/healthz".
	HealthURL string `json:"health_url,omitempty"`
	// Addrs are the addresses DNS answers carry (A and AAAA records).
	// Default: the URL's host when it is an IP literal.
	Addrs []netip.Addr `json:"addrs,omitempty"`
	// Region, Country, Lat and Lon place the edge (same vocabulary as the
	// network map: e.g. "eu-west", "IE").
	Region  string  `json:"region,omitempty"`
	Country string  `json:"country,omitempty"`
	Lat     float64 `json:"lat,omitempty"`
	Lon     float64 `json:"lon,omitempty"`
	// Peers lists the networks this edge peers with (free egress): ISP
	// names as the network map spells them, or "AS64500".
	Peers []string `json:"peers,omitempty"`
	// Capacity is what the edge can carry; zero fields mean "no limit
	// known".
	Capacity Capacity `json:"capacity"`
	// CostPerGB is the egress price outside every CostSchedule window.
	CostPerGB float64 `json:"cost_per_gb,omitempty"`
	// CostSchedule overrides CostPerGB during daily UTC windows (e.g. peak
	// hours).
	CostSchedule []CostWindow `json:"cost_schedule,omitempty"`
	// Load is the current load.
	Load Load `json:"load"`
}

// Capacity is an edge's limits.
type Capacity struct {
	EgressBps float64 `json:"egress_bps,omitempty"`
	Conns     int     `json:"conns,omitempty"`
}

// Load is an edge's current load as it reports it.
type Load struct {
	EgressBps float64 `json:"egress_bps,omitempty"`
	// CPU is the busy fraction, 0–1.
	CPU   float64 `json:"cpu,omitempty"`
	Conns int     `json:"conns,omitempty"`
	// CacheFill is the fraction of the cache in use, 0–1.
	CacheFill float64 `json:"cache_fill,omitempty"`
	// Overloaded is the edge asking for no new clients (e.g. under attack).
	Overloaded bool `json:"overloaded,omitempty"`
	// RTTms is the round-trip time the edge measured to clients, by client
	// region (network map vocabulary); performance routing prefers it to
	// distance.
	RTTms map[string]float64 `json:"rtt_ms,omitempty"`
}

// CostWindow is a daily UTC time window with its own egress price. From and
// To are "HH:MM"; a window with To before From wraps past midnight.
type CostWindow struct {
	From  string  `json:"from"`
	To    string  `json:"to"`
	PerGB float64 `json:"per_gb"`
}

// Utilization returns the edge's load as the largest of its egress,
// connection and CPU fractions; 0 when nothing is known.
func (e *Edge) Utilization() float64 {
	u := e.Load.CPU
	if e.Capacity.EgressBps > 0 {
		u = math.Max(u, e.Load.EgressBps/e.Capacity.EgressBps)
	}
	if e.Capacity.Conns > 0 {
		u = math.Max(u, float64(e.Load.Conns)/float64(e.Capacity.Conns))
	}
	return u
}

// CostAt returns the egress price per GB at t.
func (e *Edge) CostAt(t time.Time) float64 {
	t = t.UTC()
	m := t.Hour()*60 + t.Minute()
	for _, w := range e.CostSchedule {
		from, _ := parseHHMM(w.From)
		to, _ := parseHHMM(w.To)
		in := from <= m && m < to
		if to < from {
			in = m >= from || m < to
		}
		if in {
			return w.PerGB
		}
	}
	return e.CostPerGB
}

// healthURL returns where to probe the edge.
func (e *Edge) healthURL() string {
	if e.HealthURL != "" {
		return e.HealthURL
	}
	return strings.TrimRight(e.URL, "/") + "/healthz"
}

// addrs returns the DNS addresses of the edge.
func (e *Edge) addrs() []netip.Addr {
	if len(e.Addrs) > 0 {
		return e.Addrs
	}
	u, err := url.Parse(e.URL)
	if err != nil {
		return nil
	}
	a, err := netip.ParseAddr(u.Hostname())
	if err != nil {
		return nil
	}
	return []netip.Addr{a.Unmap()}
}

func parseHHMM(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	if !ok || len(h) != 2 || len(m) != 2 {
		return 0, fmt.Errorf("time %q: want HH:MM", s)
	}
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if err1 != nil || err2 != nil || hh < 0 || hh > 24 || mm < 0 || mm > 59 || (hh == 24 && mm != 0) {
		return 0, fmt.Errorf("time %q: want HH:MM", s)
	}
	return hh*60 + mm, nil
}

// validID reports whether s is a usable edge ID.
func validID(s string) bool {
	if s == "" || len(s) > maxEdgeIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_') {
			return false
		}
	}
	return true
}

func finite(fs ...float64) bool {
	for _, f := range fs {
		if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
			return false
		}
	}
	return true
}

// Validate checks an edge report against the limits and formats above.
func (e *Edge) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: edge %q: %s", ErrInvalid, e.ID, fmt.Sprintf(format, a...))
	}
	if !validID(e.ID) {
		return fmt.Errorf("%w: edge id %q: want 1-%d characters of [a-z0-9._-]", ErrInvalid, e.ID, maxEdgeIDLen)
	}
	if len(e.URL) > maxURLLen || len(e.HealthURL) > maxURLLen {
		return bad("url longer than %d bytes", maxURLLen)
	}
	for i, s := range []string{e.URL, e.HealthURL} {
		if i == 1 && s == "" {
			continue
		}
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return bad("url %q: want http(s)://host[:port]", s)
		}
	}
	if len(e.Addrs) > maxAddrs || len(e.Peers) > maxPeers || len(e.Load.RTTms) > maxRTTEntries || len(e.CostSchedule) > maxCostWindows {
		return bad("too many addrs (max %d), peers (max %d), rtt entries (max %d) or cost windows (max %d)", maxAddrs, maxPeers, maxRTTEntries, maxCostWindows)
	}
	for _, a := range e.Addrs {
		if !a.IsValid() {
			return bad("invalid address")
		}
	}
	for _, s := range append([]string{e.Region, e.Country}, e.Peers...) {
		if len(s) > maxStringField {
			return bad("field longer than %d bytes", maxStringField)
		}
	}
	if math.IsNaN(e.Lat) || math.IsNaN(e.Lon) || e.Lat < -90 || e.Lat > 90 || e.Lon < -180 || e.Lon > 180 {
		return bad("coordinates out of range")
	}
	if !finite(e.Capacity.EgressBps, e.CostPerGB, e.Load.EgressBps, e.Load.CPU, e.Load.CacheFill) ||
		e.Capacity.Conns < 0 || e.Load.Conns < 0 {
		return bad("negative or non-finite capacity, cost or load")
	}
	for k, v := range e.Load.RTTms {
		if len(k) > maxStringField || !finite(v) {
			return bad("bad rtt entry %q", k)
		}
	}
	for _, w := range e.CostSchedule {
		if _, err := parseHHMM(w.From); err != nil {
			return bad("cost window: %v", err)
		}
		if _, err := parseHHMM(w.To); err != nil {
			return bad("cost window: %v", err)
		}
		if !finite(w.PerGB) {
			return bad("cost window: bad price")
		}
	}
	return nil
}
