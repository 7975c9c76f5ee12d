package httpcache

import (
	"net/http"
	"strings"
	"time"
)

// NotModified evaluates a client's If-None-Match and If-Modified-Since
// against a stored response's validators (RFC 9110 §13.2.2, weak comparison
// for If-None-Match; If-Modified-Since only when If-None-Match is absent
// and only for GET and HEAD). It reports whether a 304 should be sent.
func NotModified(method string, req http.Header, stored http.Header) bool {
	if method != http.MethodGet && method != http.MethodHead {
		return false
	}
	if inm := req.Values("If-None-Match"); len(inm) > 0 {
		etag := stored.Get("ETag")
		if etag == "" {
			return false
		}
		for _, line := range inm {
			for _, t := range strings.Split(line, ",") {
				t = strings.TrimSpace(t)
				if t == "*" || weakMatch(t, etag) {
					return true
				}
			}
		}
		return false
	}
	ims := req.Get("If-Modified-Since")
	if ims == "" {
		return false
	}
	t, err := http.ParseTime(ims)
	if err != nil {
		return false
	}
	lm := stored.Get("Last-Modified")
	if lm == "" {
		lm = stored.Get("Date")
	}
	lmt, err := http.ParseTime(lm)
	if err != nil {
		return false
	}
	return !lmt.Truncate(time.Second).After(t)
}

// weakMatch compares entity tags ignoring the weak prefix.
func weakMatch(a, b string) bool {
	return strings.TrimPrefix(a, "W/") == strings.TrimPrefix(b, "W/")
}

// StrongValidator returns a validator usable in If-Range for a stored
// response: a strong ETag, else the Last-Modified date, else "".
func StrongValidator(h http.Header) string {
	if e := h.Get("ETag"); e != "" && !strings.HasPrefix(e, "W/") {
		return e
	}
	return h.Get("Last-Modified")
}

// Hop-by-hop and cache-managed fields never stored or forwarded as they
// are (RFC 9111 §3.1, RFC 9110 §7.6.1).
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Proxy-Authenticate",
	"Proxy-Authentication-Info", "Proxy-Authorization", "TE", "Trailer", "Transfer-Encoding", "Upgrade"}

// StripHopByHop removes hop-by-hop fields from h, including the fields
// named in its Connection header.
func StripHopByHop(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, f := range strings.Split(v, ",") {
			if f = strings.TrimSpace(f); f != "" {
				h.Del(f)
			}
		}
	}
	for _, f := range hopByHop {
		h.Del(f)
	}
}

// notUpdated lists fields a 304 must not replace in a stored response
// (RFC 9111 §3.2: the cache keeps its own framing, and the entity tag
// that identifies the stored representation).
var notUpdated = map[string]bool{"Content-Length": true, "Content-Encoding": true, "Content-Range": true,
	"Content-Md5": true, "Transfer-Encoding": true, "Etag": true}

// Update304 merges the header of a 304 (or HEAD 200) response into a stored
// header (RFC 9111 §3.2, §4.3.4): every field present in fresh replaces the
// stored one, except framing fields and hop-by-hop fields.
func Update304(stored, fresh http.Header) {
	f := fresh.Clone()
	StripHopByHop(f)
	for k, v := range f {
		if notUpdated[k] {
			continue
		}
		stored[k] = v
	}
}
