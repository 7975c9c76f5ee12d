package cli

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// parseRate parses a rate in bytes per second: "500k", "10M", "1.5G" (powers
// of 1024), or bits per second with a "bit" suffix: "50mbit" (powers of
// 1000). "0" or "" means unlimited.
func parseRate(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "" || s == "0" {
		return 0, nil
	}
	if strings.HasSuffix(s, "bit") || strings.HasSuffix(s, "bps") {
		num := strings.TrimSuffix(strings.TrimSuffix(s, "bit"), "bps")
		mult := 1.0
		switch {
		case strings.HasSuffix(num, "k"):
			mult, num = 1e3, num[:len(num)-1]
		case strings.HasSuffix(num, "m"):
			mult, num = 1e6, num[:len(num)-1]
		case strings.HasSuffix(num, "g"):
			mult, num = 1e9, num[:len(num)-1]
		}
		f, err := strconv.ParseFloat(num, 64)
		if err != nil || f < 0 {
			return 0, fmt.Errorf("bad rate %q", s)
		}
		return int64(f * mult / 8), nil
	}
	return parseSize(strings.TrimSuffix(s, "/s"))
}

// parseSize parses a byte count with an optional k, M, G or T suffix
// (powers of 1024; a trailing "b" or "ib" is ignored).
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	s = strings.TrimSuffix(strings.TrimSuffix(s, "ib"), "b")
	mult := int64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k':
			mult, s = 1<<10, s[:n-1]
		case 'm':
			mult, s = 1<<20, s[:n-1]
		case 'g':
			mult, s = 1<<30, s[:n-1]
		case 't':
			mult, s = 1<<40, s[:n-1]
		}
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f < 0 || f*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(f * float64(mult)), nil
}

// parsePrefixes parses a comma-separated list of CIDR prefixes or addresses.
func parsePrefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if !strings.Contains(f, "/") {
			a, err := netip.ParseAddr(f)
			if err != nil {
				return nil, fmt.Errorf("bad address %q", f)
			}
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(f)
		if err != nil {
			return nil, fmt.Errorf("bad prefix %q", f)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// lanPrefixes are the address ranges --lan-only allows.
var lanPrefixes = []string{"127.0.0.0/8", "::1/128", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "fc00::/7", "fe80::/10"}

// humanBytes formats n bytes with a binary unit.
func humanBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f %s", n, units[i])
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}

// listFlag collects repeated string flags.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }
