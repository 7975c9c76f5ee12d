package tracker

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		h    []string
		want bool
	}{
		{nil, false},
		{[]string{"gzip"}, true},
		{[]string{"br, GZIP;q=0.5"}, true},
		{[]string{"identity", "deflate, gzip"}, true},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip; q=0.0, br"}, false},
		{[]string{"x-gzip"}, false},
	} {
		if got := acceptsGzip(tc.h); got != tc.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tc.h, got, tc.want)
		}
	}
}

// BenchmarkWriteCompressed measures a gzipped answer of 30 peers (with the
// compressors pooled: 45 µs and 8 KB a call here, against 160 µs and 820
// KB with a new compressor each time).
func BenchmarkWriteCompressed(b *testing.B) {
	var peers []peerJSON
	for range 30 {
		peers = append(peers, peerJSON{PeerID: strings.Repeat("ab", 32), Addr: "10.77.0.12:7072", Role: "peer"})
	}
	resp := &announceResponseJSON{IntervalSeconds: 5, YourAddr: "10.77.0.11", Peers: peers}
	r := httptest.NewRequest("POST", "/v1/announce", nil)
	r.Header.Set("Accept-Encoding", "gzip")
	b.ReportAllocs()
	for b.Loop() {
		writeCompressed(httptest.NewRecorder(), r, http.StatusOK, resp)
	}
}
