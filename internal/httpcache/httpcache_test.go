package httpcache

import (
	"net/http"
	"testing"
	"time"
)

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func TestParseCacheControl(t *testing.T) {
	tests := []struct {
		in      []string
		maxAge  int64
		sMaxAge int64
		noStore bool
		invalid bool
	}{
		{[]string{"max-age=3600"}, 3600, -1, false, false},
		{[]string{"MaX-aGe=3600"}, 3600, -1, false, false},
		{[]string{"foobar, max-age=3600"}, 3600, -1, false, false},
		{[]string{"max-age=003600"}, 3600, -1, false, false},
		{[]string{`max-age="60"`}, 60, -1, false, false},
		{[]string{"max-age='3600'"}, -1, -1, false, true},
		{[]string{"max-age=-1"}, -1, -1, false, true},
		{[]string{"max-age=99999999999"}, 1 << 31, -1, false, false},
		{[]string{`extension="max-age=3600", max-age=1`}, 1, -1, false, false},
		{[]string{"max-age=3600", "s-maxage=1"}, 3600, 1, false, false},
		{[]string{"max-age=1800, max-age=1"}, 1800, -1, false, false},
		{[]string{"No-StOrE"}, -1, -1, true, false},
		{[]string{"max-age =100"}, -1, -1, false, false},
	}
	for _, tt := range tests {
		d := ParseCacheControl(tt.in)
		if d.MaxAge != tt.maxAge || d.SMaxAge != tt.sMaxAge || d.NoStore != tt.noStore || d.Invalid != tt.invalid {
			t.Errorf("ParseCacheControl(%q) = max-age %d s-maxage %d no-store %v invalid %v, want %d %d %v %v",
				tt.in, d.MaxAge, d.SMaxAge, d.NoStore, d.Invalid, tt.maxAge, tt.sMaxAge, tt.noStore, tt.invalid)
		}
	}
}

func TestParseAge(t *testing.T) {
	tests := []struct {
		lines []string
		n     int64
		ok    bool
	}{
		{nil, 0, true}, {[]string{"30"}, 30, true}, {[]string{"abc"}, 0, false}, {[]string{"-7200"}, 0, false},
		{[]string{"7200.0"}, 0, false}, {[]string{"0, 0"}, 0, false}, {[]string{"0", "0"}, 0, false},
		{[]string{"7200;foo=bar"}, 0, false},
	}
	for _, tt := range tests {
		h := http.Header{"Age": tt.lines}
		n, ok := ParseAge(h)
		if n != tt.n || ok != tt.ok {
			t.Errorf("ParseAge(%q) = %d, %v, want %d, %v", tt.lines, n, ok, tt.n, tt.ok)
		}
	}
}

func TestCanStore(t *testing.T) {
	date := time.Now().UTC().Format(http.TimeFormat)
	lm := time.Now().Add(-24 * time.Hour).UTC().Format(http.TimeFormat)
	tests := []struct {
		name   string
		method string
		req    http.Header
		status int
		resp   http.Header
		want   Reason
	}{
		{"max-age", "GET", hdr(), 200, hdr("Cache-Control", "max-age=60"), Storable},
		{"post", "POST", hdr(), 200, hdr("Cache-Control", "max-age=60"), ReasonMethod},
		{"no-store", "GET", hdr(), 200, hdr("Cache-Control", "max-age=60, no-store"), ReasonNoStore},
		{"private", "GET", hdr(), 200, hdr("Cache-Control", "private, max-age=60"), ReasonPrivate},
		{"auth", "GET", hdr("Authorization", "x"), 200, hdr("Cache-Control", "max-age=60"), ReasonAuth},
		{"auth public", "GET", hdr("Authorization", "x"), 200, hdr("Cache-Control", "max-age=60, public"), Storable},
		{"auth s-maxage", "GET", hdr("Authorization", "x"), 200, hdr("Cache-Control", "s-maxage=60"), Storable},
		{"nothing", "GET", hdr(), 200, hdr(), ReasonNoFreshness},
		{"heuristic 404", "GET", hdr(), 404, hdr("Last-Modified", lm, "Date", date), Storable},
		{"heuristic 403", "GET", hdr(), 403, hdr("Last-Modified", lm, "Date", date), ReasonNoFreshness},
		{"vary star", "GET", hdr(), 200, hdr("Cache-Control", "max-age=60", "Vary", "Foo, *"), ReasonVaryStar},
		{"must-understand 599", "GET", hdr(), 599, hdr("Cache-Control", "max-age=60, must-understand"), ReasonUnderstand},
		{"must-understand 200", "GET", hdr(), 200, hdr("Cache-Control", "no-store, max-age=60, must-understand"), Storable},
		{"cdn-cc no-store", "GET", hdr(), 200, hdr("Cache-Control", "max-age=60", "CDN-Cache-Control", "no-store"), ReasonNoStore},
		{"surrogate", "GET", hdr(), 200, hdr("Surrogate-Control", "max-age=60"), Storable},
		{"req no-store", "GET", hdr("Cache-Control", "no-store"), 200, hdr("Cache-Control", "max-age=60"), ReasonNoStore},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CanStore(tt.method, tt.req, tt.status, tt.resp, nil); got != tt.want {
				t.Errorf("CanStore = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestLifetime(t *testing.T) {
	now := time.Now().UTC()
	d := func(off time.Duration) string { return now.Add(off).Format(http.TimeFormat) }
	tests := []struct {
		name string
		resp http.Header
		want time.Duration
	}{
		{"s-maxage wins", hdr("Cache-Control", "max-age=3600, s-maxage=1"), time.Second},
		{"max-age over expires", hdr("Cache-Control", "max-age=60", "Expires", d(-time.Hour), "Date", d(0)), time.Minute},
		{"expires", hdr("Expires", d(time.Hour), "Date", d(0)), time.Hour},
		{"invalid expires", hdr("Expires", "0", "Date", d(0)), 0},
		{"heuristic", hdr("Last-Modified", d(-100*time.Second), "Date", d(0)), 10 * time.Second},
		{"cdn-cc", hdr("Cache-Control", "max-age=1", "CDN-Cache-Control", "max-age=600"), 10 * time.Minute},
		{"surrogate targeted", hdr("Cache-Control", "max-age=1", "Surrogate-Control", "max-age=5;other, max-age=600;avalanche"), 10 * time.Minute},
		{"surrogate other target", hdr("Surrogate-Control", "max-age=600;other"), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, _ := Lifetime(200, tt.resp, now, nil); got != tt.want {
				t.Errorf("Lifetime = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestEvaluateAndRequest(t *testing.T) {
	now := time.Now()
	h := hdr("Cache-Control", "max-age=10, stale-while-revalidate=30", "Date", now.UTC().Format(http.TimeFormat))
	f := Evaluate(200, h, now, now, now.Add(5*time.Second), nil)
	if !f.Fresh || f.StaleWhileRevalidate != 30*time.Second {
		t.Fatalf("Evaluate at 5s = %+v, want fresh with swr 30s", f)
	}
	if !RequestAllows(hdr(), f) {
		t.Errorf("RequestAllows(plain) = false, want true")
	}
	if RequestAllows(hdr("Cache-Control", "no-cache"), f) {
		t.Errorf("RequestAllows(no-cache) = true, want false")
	}
	if RequestAllows(hdr("Cache-Control", "min-fresh=20"), f) {
		t.Errorf("RequestAllows(min-fresh=20) = true, want false")
	}
	f = Evaluate(200, h, now, now, now.Add(15*time.Second), nil)
	if f.Fresh {
		t.Fatalf("Evaluate at 15s fresh, want stale")
	}
	if !RequestAllows(hdr("Cache-Control", "max-stale=10"), f) {
		t.Errorf("RequestAllows(max-stale=10) = false, want true")
	}
	h.Set("Age", "abc")
	if f = Evaluate(200, h, now, now, now, nil); f.Fresh {
		t.Errorf("Evaluate with bad Age fresh, want stale")
	}
}

func TestVaryKey(t *testing.T) {
	names, star := VaryNames(hdr("Vary", "accept-language, Foo", "Vary", "foo"))
	if star || len(names) != 2 || names[0] != "Accept-Language" || names[1] != "Foo" {
		t.Fatalf("VaryNames = %v %v", names, star)
	}
	same := [][2]http.Header{
		{hdr("Accept-Language", "en, de", "Foo", "1, 2"), hdr("Accept-Language", "De,EN", "Foo", "1", "Foo", "2")},
		{hdr("Accept-Language", " en ,   de"), hdr("Accept-Language", "en,de")},
	}
	for _, p := range same {
		if a, b := VaryKey(names, p[0]), VaryKey(names, p[1]); a != b {
			t.Errorf("VaryKey differs: %q vs %q", a, b)
		}
	}
	if VaryKey(names, hdr("Foo", "1")) == VaryKey(names, hdr("Foo", "2")) {
		t.Errorf("VaryKey equal for different values")
	}
	if VaryKey(names, hdr()) == VaryKey(names, hdr("Foo", "")) {
		t.Errorf("VaryKey equal for absent and empty")
	}
}

func TestNotModified(t *testing.T) {
	stored := hdr("ETag", `"abc"`, "Last-Modified", "Wed, 01 Jan 2020 00:00:00 GMT")
	tests := []struct {
		req  http.Header
		want bool
	}{
		{hdr("If-None-Match", `"abc"`), true},
		{hdr("If-None-Match", `"x", W/"abc"`), true},
		{hdr("If-None-Match", `"x"`, "If-Modified-Since", "Wed, 01 Jan 2030 00:00:00 GMT"), false},
		{hdr("If-Modified-Since", "Wed, 01 Jan 2020 00:00:00 GMT"), true},
		{hdr("If-Modified-Since", "Tue, 31 Dec 2019 00:00:00 GMT"), false},
		{hdr("If-Modified-Since", "garbage"), false},
	}
	for _, tt := range tests {
		if got := NotModified("GET", tt.req, stored); got != tt.want {
			t.Errorf("NotModified(%v) = %v, want %v", tt.req, got, tt.want)
		}
	}
}

func TestUpdate304AndHopByHop(t *testing.T) {
	stored := hdr("Content-Length", "10", "X-A", "1", "Cache-Control", "max-age=1")
	Update304(stored, hdr("Content-Length", "5", "X-A", "2", "Cache-Control", "max-age=60", "Connection", "x", "X", "y"))
	if stored.Get("Content-Length") != "10" || stored.Get("X-A") != "2" || stored.Get("Cache-Control") != "max-age=60" || stored.Get("X") != "" {
		t.Errorf("Update304 = %v", stored)
	}
}

func TestStatusFormat(t *testing.T) {
	s := Status{Fwd: "uri-miss", FwdStatus: 200, Stored: true}
	if got, want := s.Format("avalanche"), "avalanche; fwd=uri-miss; fwd-status=200; stored"; got != want {
		t.Errorf("Format = %q, want %q", got, want)
	}
	if got := (Status{Hit: true, TTL: 5, HasTTL: true}).Format("e"); got != "e; hit; ttl=5" {
		t.Errorf("Format = %q", got)
	}
}

func BenchmarkParseCacheControl(b *testing.B) {
	in := []string{"public, max-age=3600, s-maxage=600, stale-while-revalidate=30"}
	b.ReportAllocs()
	b.SetBytes(int64(len(in[0])))
	for b.Loop() {
		ParseCacheControl(in)
	}
}
