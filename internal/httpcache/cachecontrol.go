// Package httpcache implements the decisions of an RFC 9111 shared HTTP
// cache, with the RFC 5861 stale-while-revalidate and stale-if-error
// extensions, RFC 9213 targeted cache control (CDN-Cache-Control), the
// Surrogate-Control header of the W3C Edge Architecture note, and RFC 9211
// Cache-Status values. It parses header fields and computes storability,
// freshness, age and variant keys; it does no I/O and no logging, and every
// function is safe for concurrent use.
package httpcache

import (
	"net/http"
	"strconv"
	"strings"
)

// Directives is a parsed Cache-Control (or targeted cache control) field.
// Durations are in whole seconds; -1 means the directive is absent.
type Directives struct {
	MaxAge               int64
	SMaxAge              int64
	MaxStale             int64 // request: -1 absent; MaxStaleAny set when no value
	MinFresh             int64
	StaleWhileRevalidate int64
	StaleIfError         int64

	MaxStaleAny     bool
	NoStore         bool
	NoCache         bool // unqualified no-cache
	Private         bool // unqualified private
	Public          bool
	MustRevalidate  bool
	ProxyRevalidate bool
	Immutable       bool
	OnlyIfCached    bool
	NoTransform     bool
	MustUnderstand  bool

	// NoCacheFields and PrivateFields hold the field names of the qualified
	// forms (no-cache="Set-Cookie"), lowercased. A shared cache may store
	// such a response after removing those fields (RFC 9111 §5.2.2.4,
	// §5.2.2.7); StripQualified does that.
	NoCacheFields []string
	PrivateFields []string

	// Invalid records that a directive this cache relies on had a malformed
	// value (max-age='3600', max-age=-1); such a response is treated as
	// stale rather than guessed at.
	Invalid bool
}

// maxDelta caps delta-seconds: RFC 9111 §1.2.2 says a value too large to
// represent is to be taken as 2^31.
const maxDelta = 1 << 31

// ParseCacheControl parses the field lines of a Cache-Control header.
// Directive names are case-insensitive; for a directive given more than once
// the first occurrence wins; unknown directives are ignored.
func ParseCacheControl(lines []string) Directives {
	d := Directives{MaxAge: -1, SMaxAge: -1, MaxStale: -1, MinFresh: -1, StaleWhileRevalidate: -1, StaleIfError: -1}
	seen := map[string]bool{}
	for _, line := range lines {
		for _, item := range splitList(line) {
			name, val, hasVal, _ := splitDirective(item)
			if name == "" {
				continue
			}
			name = strings.ToLower(name)
			if seen[name] {
				continue
			}
			seen[name] = true
			delta := func() int64 {
				if !hasVal {
					return -2
				}
				n, ok := parseDelta(val)
				if !ok {
					return -2
				}
				return n
			}
			switch name {
			case "max-age", "s-maxage", "min-fresh", "stale-while-revalidate", "stale-if-error":
				n := delta()
				if n == -2 {
					d.Invalid = d.Invalid || name == "max-age" || name == "s-maxage"
					continue
				}
				switch name {
				case "max-age":
					d.MaxAge = n
				case "s-maxage":
					d.SMaxAge = n
				case "min-fresh":
					d.MinFresh = n
				case "stale-while-revalidate":
					d.StaleWhileRevalidate = n
				case "stale-if-error":
					d.StaleIfError = n
				}
			case "max-stale":
				if !hasVal {
					d.MaxStaleAny = true
					continue
				}
				if n := delta(); n >= 0 {
					d.MaxStale = n
				}
			case "no-store":
				d.NoStore = true
			case "no-cache":
				if hasVal {
					d.NoCacheFields = fieldNames(val)
				} else {
					d.NoCache = true
				}
			case "private":
				if hasVal {
					d.PrivateFields = fieldNames(val)
				} else {
					d.Private = true
				}
			case "public":
				d.Public = true
			case "must-revalidate":
				d.MustRevalidate = true
			case "proxy-revalidate":
				d.ProxyRevalidate = true
			case "immutable":
				d.Immutable = true
			case "only-if-cached":
				d.OnlyIfCached = true
			case "no-transform":
				d.NoTransform = true
			case "must-understand":
				d.MustUnderstand = true
			}
		}
	}
	return d
}

// parseDelta parses delta-seconds: one or more ASCII digits, capped at 2^31.
func parseDelta(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < maxDelta {
			n = n*10 + int64(c-'0')
		}
	}
	if n > maxDelta {
		n = maxDelta
	}
	return n, true
}

// splitList splits a comma-separated field value, honouring quoted strings.
func splitList(s string) []string {
	var out []string
	start, inQuote, esc := 0, false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case esc:
			esc = false
		case inQuote && c == '\\':
			esc = true
		case c == '"':
			inQuote = !inQuote
		case c == ',' && !inQuote:
			if t := strings.TrimSpace(s[start:i]); t != "" {
				out = append(out, t)
			}
			start = i + 1
		}
	}
	if t := strings.TrimSpace(s[start:]); t != "" {
		out = append(out, t)
	}
	return out
}

// splitDirective splits name[=value], unquoting a quoted-string value. A
// directive with whitespace around "=" is malformed and yields name "".
func splitDirective(item string) (name, val string, hasVal, quoted bool) {
	i := strings.IndexByte(item, '=')
	if i < 0 {
		if !isToken(item) {
			return "", "", false, false
		}
		return item, "", false, false
	}
	name, val = item[:i], item[i+1:]
	if !isToken(name) {
		return "", "", false, false
	}
	if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
		return name, unquote(val[1 : len(val)-1]), true, true
	}
	return name, val, true, false
}

func unquote(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

func fieldNames(v string) []string {
	var out []string
	for _, f := range strings.Split(v, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, strings.ToLower(f))
		}
	}
	return out
}

// ParseAge parses the Age header. It returns ok=false when Age is present
// but is not exactly one non-negative integer on one field line (a list,
// a parameter, a sign or a fraction), in which case the caller should treat
// the response as stale: an age that cannot be trusted cannot prove
// freshness. An absent Age is 0, true.
func ParseAge(h http.Header) (int64, bool) {
	v := h.Values("Age")
	if len(v) == 0 {
		return 0, true
	}
	if len(v) > 1 {
		return 0, false
	}
	n, ok := parseDelta(strings.TrimSpace(v[0]))
	return n, ok
}

// ParseSurrogateControl parses a Surrogate-Control field (W3C Edge
// Architecture 1.0) for the device token target. Directives may carry a
// ";target" suffix; a directive targeted at another device is ignored, and
// a directive targeted at target takes precedence over an untargeted one.
// present reports whether any directive applied.
func ParseSurrogateControl(lines []string, target string) (d Directives, present bool) {
	var mine, general []string
	for _, line := range lines {
		for _, item := range splitList(line) {
			if i := strings.IndexByte(item, ';'); i >= 0 {
				if strings.EqualFold(strings.TrimSpace(item[i+1:]), target) {
					mine = append(mine, strings.TrimSpace(item[:i]))
				}
				continue
			}
			general = append(general, item)
		}
	}
	if len(mine) == 0 && len(general) == 0 {
		return ParseCacheControl(nil), false
	}
	return ParseCacheControl([]string{strings.Join(append(mine, general...), ", ")}), true
}

// formatDelta formats seconds for a header.
func formatDelta(n int64) string { return strconv.FormatInt(n, 10) }

// StripQualified removes from h the fields named by qualified no-cache and
// private directives, so the rest of the response can be stored and reused.
func StripQualified(h http.Header, d Directives) {
	for _, f := range d.NoCacheFields {
		h.Del(f)
	}
	for _, f := range d.PrivateFields {
		h.Del(f)
	}
}
