package httpcache

import (
	"net/http"
	"sort"
	"strings"
)

// VaryNames returns the canonical field names listed in a response's Vary
// header, sorted and deduplicated, and whether the list contains "*"
// (which matches no later request).
func VaryNames(h http.Header) (names []string, star bool) {
	seen := map[string]bool{}
	for _, line := range h.Values("Vary") {
		for _, f := range strings.Split(line, ",") {
			f = strings.TrimSpace(f)
			switch {
			case f == "":
			case f == "*":
				star = true
			default:
				c := http.CanonicalHeaderKey(f)
				if !seen[c] {
					seen[c] = true
					names = append(names, c)
				}
			}
		}
	}
	sort.Strings(names)
	return names, star
}

func hasVaryStar(h http.Header) bool {
	_, star := VaryNames(h)
	return star
}

// listNormalised names request fields whose members may be reordered and
// lowercased without changing meaning.
var listNormalised = map[string]bool{"Accept-Language": true, "Accept-Encoding": true, "Accept": true, "Accept-Charset": true}

// VaryKey returns the secondary cache key of a request for the Vary field
// names (as returned by VaryNames): the names with the request's normalised
// values. Field lines are combined, whitespace around list members removed,
// and for the Accept family members are lowercased and sorted. Two requests
// with equal keys select the same variant.
func VaryKey(names []string, req http.Header) string {
	if len(names) == 0 {
		return ""
	}
	var b strings.Builder
	for _, n := range names {
		b.WriteString(strings.ToLower(n))
		vals := req.Values(n)
		if len(vals) == 0 {
			b.WriteString("\x02")
			continue
		}
		b.WriteByte(':')
		var members []string
		for _, v := range vals {
			for _, m := range strings.Split(v, ",") {
				if m = strings.TrimSpace(m); m != "" {
					members = append(members, m)
				}
			}
		}
		if listNormalised[n] {
			for i := range members {
				members[i] = strings.ToLower(strings.ReplaceAll(members[i], " ", ""))
			}
			sort.Strings(members)
		}
		b.WriteString(strings.Join(members, ","))
		b.WriteByte('\x03')
	}
	return b.String()
}
