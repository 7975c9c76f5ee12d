package httpcache

import (
	"strconv"
	"strings"
)

// Status is one RFC 9211 Cache-Status member for this cache.
type Status struct {
	Hit bool
	// Fwd is why the request went forward: "uri-miss", "vary-miss",
	// "miss", "stale", "partial", "request", "bypass"; empty on a hit.
	Fwd string
	// FwdStatus is the origin's status code when forwarded (0 = omit).
	FwdStatus int
	// TTL is the remaining freshness in seconds (may be negative when
	// stale); used only when HasTTL.
	TTL    int64
	HasTTL bool
	Stored bool
	// Collapsed marks a request that waited for another's fetch.
	Collapsed bool
	// Detail is a free-form extra ("stale-while-revalidate",
	// "stale-if-error").
	Detail string
}

// Format renders the member for cache name, e.g.
// `avalanche; fwd=uri-miss; fwd-status=200; stored`.
func (s Status) Format(name string) string {
	var b strings.Builder
	b.WriteString(name)
	if s.Hit {
		b.WriteString("; hit")
	}
	if s.Fwd != "" {
		b.WriteString("; fwd=")
		b.WriteString(s.Fwd)
	}
	if s.FwdStatus != 0 {
		b.WriteString("; fwd-status=")
		b.WriteString(strconv.Itoa(s.FwdStatus))
	}
	if s.HasTTL {
		b.WriteString("; ttl=")
		b.WriteString(strconv.FormatInt(s.TTL, 10))
	}
	if s.Stored {
		b.WriteString("; stored")
	}
	if s.Collapsed {
		b.WriteString("; collapsed")
	}
	if s.Detail != "" {
		b.WriteString(`; detail=`)
		b.WriteString(s.Detail)
	}
	return b.String()
}

// Short is a one-word summary for logs and metric labels: "hit", "stale",
// "miss", "revalidated", "pass".
func (s Status) Short() string {
	switch {
	case s.Hit && s.Detail != "":
		return "stale"
	case s.Hit:
		return "hit"
	case s.Fwd == "stale" && s.FwdStatus == 304:
		return "revalidated"
	case s.Fwd == "bypass" || s.Fwd == "request" || (s.Fwd != "" && !s.Stored && s.Fwd != "stale"):
		if s.Fwd == "uri-miss" || s.Fwd == "vary-miss" || s.Fwd == "miss" || s.Fwd == "partial" {
			return "miss"
		}
		return "pass"
	default:
		return "miss"
	}
}
