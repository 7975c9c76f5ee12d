package edge

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
)

// nullWriter is a ResponseWriter that discards, to measure the handler.
type nullWriter struct{ h http.Header }

func (n *nullWriter) Header() http.Header         { return n.h }
func (n *nullWriter) Write(b []byte) (int, error) { return len(b), nil }
func (n *nullWriter) WriteHeader(int)             {}

func benchHit(b *testing.B, size int) {
	body := make([]byte, size)
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(body)
	}))
	defer o.Close()
	s, err := New(Config{Properties: []Property{{Name: "b", Origin: o.URL}}, Limits: Limits{Disabled: true}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	h := s.Handler()
	req := httptest.NewRequest("GET", "http://bench.test/obj", nil)
	h.ServeHTTP(&nullWriter{h: http.Header{}}, req) // fill
	b.SetBytes(int64(size))
	b.ReportAllocs()
	for b.Loop() {
		h.ServeHTTP(&nullWriter{h: http.Header{}}, req)
	}
}

// BenchmarkHit1KiB measures the handler on a memory hit of 1 KiB.
func BenchmarkHit1KiB(b *testing.B) { benchHit(b, 1024) }

// BenchmarkHit1MiB measures the handler on a memory hit of 1 MiB.
func BenchmarkHit1MiB(b *testing.B) { benchHit(b, 1<<20) }

// BenchmarkMissPipeline measures a miss: origin fetch over loopback TCP,
// storage and response, each iteration a new URL.
func BenchmarkMissPipeline(b *testing.B) {
	body := make([]byte, 1024)
	o := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Write(body)
	}))
	defer o.Close()
	s, err := New(Config{Properties: []Property{{Name: "b", Origin: o.URL}}, Limits: Limits{Disabled: true}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	h := s.Handler()
	b.SetBytes(1024)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		req := httptest.NewRequest("GET", "http://bench.test/m/"+itoa(i), nil)
		h.ServeHTTP(&nullWriter{h: http.Header{}}, req)
	}
	_ = io.Discard
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for i > 0 || n == len(b) {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	return string(b[n:])
}
