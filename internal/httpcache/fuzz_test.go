package httpcache

import (
	"net/http"
	"testing"
	"time"
)

// FuzzParseCacheControl checks that no Cache-Control or Surrogate-Control
// value crashes the parsers and that parsed durations stay in range.
func FuzzParseCacheControl(f *testing.F) {
	for _, s := range []string{"max-age=3600", `no-cache="Set-Cookie, X"`, "max-age='1'", "s-maxage=99999999999",
		`a="\"", max-age=1`, "max-age=1;edge, no-store;other", ",,,", `"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d := ParseCacheControl([]string{s})
		for _, v := range []int64{d.MaxAge, d.SMaxAge, d.MinFresh, d.MaxStale, d.StaleIfError, d.StaleWhileRevalidate} {
			if v < -1 || v > maxDelta {
				t.Fatalf("ParseCacheControl(%q) gave out-of-range %d", s, v)
			}
		}
		ParseSurrogateControl([]string{s}, "edge")
		h := http.Header{"Cache-Control": {s}, "Vary": {s}, "Age": {s}, "Expires": {s}, "Date": {s}}
		now := time.Now()
		Evaluate(200, h, now, now, now, nil)
		CanStore("GET", h, 200, h, nil)
		names, _ := VaryNames(h)
		VaryKey(names, h)
	})
}

// FuzzNotModified checks the conditional-request evaluation on arbitrary
// validators.
func FuzzNotModified(f *testing.F) {
	f.Add(`"abc"`, `W/"abc", "x"`, "Wed, 01 Jan 2020 00:00:00 GMT")
	f.Add("", "*", "garbage")
	f.Fuzz(func(t *testing.T, etag, inm, ims string) {
		stored := http.Header{"Etag": {etag}, "Last-Modified": {ims}}
		NotModified("GET", http.Header{"If-None-Match": {inm}}, stored)
		NotModified("GET", http.Header{"If-Modified-Since": {ims}}, stored)
	})
}
