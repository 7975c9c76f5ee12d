// Package netmap maps IP addresses to where they are on the network: the ISP
// (name and autonomous system number), region, country and coordinates. The
// tracker uses it to hand out nearby peers and the traffic manager to pick
// edges. A Map is immutable and safe for concurrent use; reloading builds a
// new Map.
package netmap

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
)

// Location is what the map knows about an address. The zero Location means
// "unknown".
type Location struct {
	ISP     string  `json:"isp,omitempty"`
	ASN     uint32  `json:"asn,omitempty"`
	Region  string  `json:"region,omitempty"`
	Country string  `json:"country,omitempty"`
	Lat     float64 `json:"lat,omitempty"`
	Lon     float64 `json:"lon,omitempty"`
}

// HasCoordinates reports whether l carries a position.
func (l Location) HasCoordinates() bool { return l.Lat != 0 || l.Lon != 0 }

// SameISP reports whether a and b are known to be on the same network: the
// same ASN when both have one, else the same non-empty ISP name.
func SameISP(a, b Location) bool {
	if a.ASN != 0 && b.ASN != 0 {
		return a.ASN == b.ASN
	}
	return a.ISP != "" && a.ISP == b.ISP
}

// SameRegion reports whether a and b are in the same non-empty region.
func SameRegion(a, b Location) bool { return a.Region != "" && a.Region == b.Region }

// Entry is one line of a network map: a prefix and its location.
type Entry struct {
	Prefix netip.Prefix `json:"prefix"`
	Location
}

// Limits on map files, so that a hostile or broken file cannot exhaust memory.
const (
	MaxEntries   = 1 << 20
	maxFieldSize = 256
)

// Map answers longest-prefix-match lookups. The zero Map knows nothing.
type Map struct {
	byPrefix map[netip.Prefix]Location
	lens4    []int // prefix lengths present for IPv4, longest first
	lens6    []int
}

var (
	// ErrSyntax is returned (wrapped) for malformed map files.
	ErrSyntax = errors.New("netmap: syntax error")
	// ErrTooLarge is returned for map files over MaxEntries entries.
	ErrTooLarge = errors.New("netmap: too many entries")
)

// New builds a Map from entries. When two entries have the same prefix the
// later wins.
func New(entries []Entry) (*Map, error) {
	if len(entries) > MaxEntries {
		return nil, ErrTooLarge
	}
	m := &Map{byPrefix: make(map[netip.Prefix]Location, len(entries))}
	seen4, seen6 := map[int]bool{}, map[int]bool{}
	for _, e := range entries {
		if !e.Prefix.IsValid() {
			return nil, fmt.Errorf("%w: invalid prefix", ErrSyntax)
		}
		p := e.Prefix.Masked()
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		m.byPrefix[p] = e.Location
		if p.Addr().Is4() {
			seen4[p.Bits()] = true
		} else {
			seen6[p.Bits()] = true
		}
	}
	m.lens4, m.lens6 = sortedDesc(seen4), sortedDesc(seen6)
	return m, nil
}

func sortedDesc(s map[int]bool) []int {
	out := make([]int, 0, len(s))
	for n := range s {
		out = append(out, n)
	}
	sort.Sort(sort.Reverse(sort.IntSlice(out)))
	return out
}

// Len returns the number of prefixes in m.
func (m *Map) Len() int {
	if m == nil {
		return 0
	}
	return len(m.byPrefix)
}

// Lookup returns the location of the longest prefix that contains a.
// IPv4-mapped IPv6 addresses are looked up as IPv4.
func (m *Map) Lookup(a netip.Addr) (Location, bool) {
	e, ok := m.LookupEntry(a)
	return e.Location, ok
}

// LookupEntry is like Lookup but also returns the matching prefix, so that
// callers can tell how far the answer holds (a DNS server scopes its EDNS
// Client Subnet answers by it).
func (m *Map) LookupEntry(a netip.Addr) (Entry, bool) {
	if m == nil || !a.IsValid() {
		return Entry{}, false
	}
	a = a.Unmap().WithZone("")
	lens := m.lens6
	if a.Is4() {
		lens = m.lens4
	}
	for _, bits := range lens {
		p, err := a.Prefix(bits)
		if err != nil {
			continue
		}
		if loc, ok := m.byPrefix[p]; ok {
			return Entry{Prefix: p, Location: loc}, true
		}
	}
	return Entry{}, false
}

// Entries returns the map's entries sorted by prefix.
func (m *Map) Entries() []Entry {
	if m == nil {
		return nil
	}
	out := make([]Entry, 0, len(m.byPrefix))
	for p, l := range m.byPrefix {
		out = append(out, Entry{Prefix: p, Location: l})
	}
	sort.Slice(out, func(i, j int) bool {
		if c := out[i].Prefix.Addr().Compare(out[j].Prefix.Addr()); c != 0 {
			return c < 0
		}
		return out[i].Prefix.Bits() < out[j].Prefix.Bits()
	})
	return out
}

// Default returns the built-in map: loopback and private ranges, so that a
// machine with no map file still groups local peers together.
func Default() *Map {
	local := Location{ISP: "loopback", Region: "local", Country: "ZZ"}
	private := Location{ISP: "private", Region: "local", Country: "ZZ"}
	var es []Entry
	for _, p := range []string{"127.0.0.0/8", "::1/128"} {
		es = append(es, Entry{netip.MustParsePrefix(p), local})
	}
	for _, p := range []string{"10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16", "fc00::/7", "fe80::/10"} {
		es = append(es, Entry{netip.MustParsePrefix(p), private})
	}
	m, _ := New(es)
	return m
}

// Merge returns a map holding the entries of base overlaid by those of top.
func Merge(base, top *Map) *Map {
	m, _ := New(append(base.Entries(), top.Entries()...))
	return m
}

// Load reads a map file. JSON (an array of entries) and CSV are told apart by
// the first non-space byte. Entries of the built-in Default map are kept
// unless the file overrides them.
func Load(path string) (*Map, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("netmap: %w", err)
	}
	defer f.Close()
	m, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return Merge(Default(), m), nil
}

// Parse reads a map in JSON or CSV form (see docs/formats.md). Input larger
// than MaxEntries lines is refused.
func Parse(r io.Reader) (*Map, error) {
	br := bufio.NewReader(r)
	for {
		b, err := br.Peek(1)
		if err != nil {
			if err == io.EOF {
				return New(nil)
			}
			return nil, err
		}
		if b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r' {
			br.ReadByte()
			continue
		}
		if b[0] == '[' {
			return parseJSON(br)
		}
		return parseCSV(br)
	}
}

func parseJSON(r io.Reader) (*Map, error) {
	dec := json.NewDecoder(r)
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	var es []Entry
	for dec.More() {
		if len(es) >= MaxEntries {
			return nil, ErrTooLarge
		}
		var raw struct {
			Prefix string `json:"prefix"`
			Location
		}
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%w: entry %d: %v", ErrSyntax, len(es)+1, err)
		}
		p, err := parsePrefix(raw.Prefix)
		if err != nil {
			return nil, fmt.Errorf("%w: entry %d: %v", ErrSyntax, len(es)+1, err)
		}
		if err := checkLocation(raw.Location); err != nil {
			return nil, fmt.Errorf("%w: entry %d: %v", ErrSyntax, len(es)+1, err)
		}
		es = append(es, Entry{p, raw.Location})
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSyntax, err)
	}
	return New(es)
}

// parseCSV reads lines "prefix,isp,asn,region,country,lat,lon"; trailing
// fields may be omitted, '#' starts a comment, and a first line starting
// with "prefix" is a header.
func parseCSV(r io.Reader) (*Map, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 4096)
	var es []Entry
	line := 0
	for sc.Scan() {
		line++
		text := sc.Bytes()
		if i := bytes.IndexByte(text, '#'); i >= 0 {
			text = text[:i]
		}
		s := strings.TrimSpace(string(text))
		if s == "" || (line == 1 && strings.HasPrefix(strings.ToLower(s), "prefix")) {
			continue
		}
		if len(es) >= MaxEntries {
			return nil, ErrTooLarge
		}
		f := strings.Split(s, ",")
		if len(f) > 7 {
			return nil, fmt.Errorf("%w: line %d: %d fields, want at most 7", ErrSyntax, line, len(f))
		}
		for i := range f {
			f[i] = strings.TrimSpace(f[i])
		}
		for len(f) < 7 {
			f = append(f, "")
		}
		p, err := parsePrefix(f[0])
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrSyntax, line, err)
		}
		loc := Location{ISP: f[1], Region: f[3], Country: f[4]}
		if f[2] != "" {
			asn, err := strconv.ParseUint(strings.TrimPrefix(strings.ToUpper(f[2]), "AS"), 10, 32)
			if err != nil {
				return nil, fmt.Errorf("%w: line %d: bad ASN %q", ErrSyntax, line, f[2])
			}
			loc.ASN = uint32(asn)
		}
		if loc.Lat, err = parseCoord(f[5]); err != nil {
			return nil, fmt.Errorf("%w: line %d: latitude: %v", ErrSyntax, line, err)
		}
		if loc.Lon, err = parseCoord(f[6]); err != nil {
			return nil, fmt.Errorf("%w: line %d: longitude: %v", ErrSyntax, line, err)
		}
		if err := checkLocation(loc); err != nil {
			return nil, fmt.Errorf("%w: line %d: %v", ErrSyntax, line, err)
		}
		es = append(es, Entry{p, loc})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: line %d: %v", ErrSyntax, line+1, err)
	}
	return New(es)
}

func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, err
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	return netip.ParsePrefix(s)
}

func parseCoord(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	return strconv.ParseFloat(s, 64)
}

func checkLocation(l Location) error {
	if len(l.ISP) > maxFieldSize || len(l.Region) > maxFieldSize || len(l.Country) > maxFieldSize {
		return errors.New("field too long")
	}
	if math.IsNaN(l.Lat) || math.IsNaN(l.Lon) || l.Lat < -90 || l.Lat > 90 || l.Lon < -180 || l.Lon > 180 {
		return errors.New("coordinates out of range")
	}
	return nil
}

// DistanceKM returns the great-circle distance between a and b in
// kilometres, or +Inf when either has no coordinates.
func DistanceKM(a, b Location) float64 {
	if !a.HasCoordinates() || !b.HasCoordinates() {
		return math.Inf(1)
	}
	const r = 6371.0
	rad := math.Pi / 180
	dLat := (b.Lat - a.Lat) * rad
	dLon := (b.Lon - a.Lon) * rad
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(a.Lat*rad)*math.Cos(b.Lat*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * r * math.Asin(math.Min(1, math.Sqrt(h)))
}
