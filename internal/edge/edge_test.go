package edge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"avalanche/internal/cachestore"
)

// clock is a settable time source shared by a test and its edge.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// origin is a real HTTP origin that counts requests.
type origin struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	reqs []*http.Request
}

func newOrigin(t *testing.T, h http.HandlerFunc) *origin {
	o := &origin{}
	o.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.hits.Add(1)
		o.mu.Lock()
		o.reqs = append(o.reqs, r.Clone(context.Background()))
		o.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(o.Close)
	return o
}

func (o *origin) last() *http.Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.reqs) == 0 {
		return nil
	}
	return o.reqs[len(o.reqs)-1]
}

// testEdge runs a Server on real loopback listeners.
type testEdge struct {
	*Server
	base, admin string
	cancel      context.CancelFunc
	done        chan struct{}
}

func startEdge(t *testing.T, cfg Config) *testEdge {
	t.Helper()
	if cfg.Limits == (Limits{}) {
		cfg.Limits.Disabled = true
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	aln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &testEdge{Server: s, base: "http://" + ln.Addr().String(), admin: "http://" + aln.Addr().String(), cancel: cancel, done: make(chan struct{})}
	go func() {
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); s.Serve(ctx, ln) }()
		go func() { defer wg.Done(); s.ServeAdmin(ctx, aln) }()
		wg.Wait()
		close(e.done)
	}()
	t.Cleanup(e.stop)
	return e
}

func (e *testEdge) stop() {
	e.cancel()
	<-e.done
	e.Close()
}

func prop(o *origin) Property {
	return Property{Name: "site", Origin: o.URL, Token: "site-token-0123456789"}
}

type result struct {
	code int
	h    http.Header
	body string
}

func get(t *testing.T, url string, hdr ...string) result {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i] == "Host" {
			req.Host = hdr[i+1]
			continue
		}
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, string(b)}
}

func TestCachingRules(t *testing.T) {
	var n atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		v := n.Add(1)
		switch r.URL.Path {
		case "/fresh":
			w.Header().Set("Cache-Control", "max-age=60")
		case "/nostore":
			w.Header().Set("Cache-Control", "no-store")
		case "/private":
			w.Header().Set("Cache-Control", "private, max-age=60")
		case "/plain":
		case "/vary":
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Vary", "Accept-Language")
			fmt.Fprint(w, r.Header.Get("Accept-Language"), "-")
		case "/varystar":
			w.Header().Set("Cache-Control", "max-age=60")
			w.Header().Set("Vary", "*")
		case "/cdncc":
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("CDN-Cache-Control", "max-age=60")
		case "/surrogate":
			w.Header().Set("Surrogate-Control", "max-age=60")
			w.Header().Set("Surrogate-Key", "a b")
		}
		fmt.Fprint(w, v)
	})
	e := startEdge(t, Config{Properties: []Property{prop(o)}})
	tests := []struct {
		name   string
		path   string
		hdr    []string
		hdr2   []string
		cached bool
	}{
		{"max-age", "/fresh", nil, nil, true},
		{"no-store", "/nostore", nil, nil, false},
		{"private", "/private", nil, nil, false},
		{"no freshness", "/plain", nil, nil, false},
		{"authorization", "/fresh?auth", []string{"Authorization", "Basic x"}, []string{"Authorization", "Basic x"}, false},
		{"vary match", "/vary", []string{"Accept-Language", "en"}, []string{"Accept-Language", "en"}, true},
		{"vary mismatch", "/vary?2", []string{"Accept-Language", "en"}, []string{"Accept-Language", "de"}, false},
		{"vary star", "/varystar", nil, nil, false},
		{"cdn-cache-control wins", "/cdncc", nil, nil, true},
		{"surrogate-control", "/surrogate", nil, nil, true},
		{"request no-cache", "/fresh?nc", nil, []string{"Cache-Control", "no-cache"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := get(t, e.base+tt.path, tt.hdr...)
			b := get(t, e.base+tt.path, tt.hdr2...)
			if got := a.body == b.body; got != tt.cached {
				t.Errorf("second response cached = %v (bodies %q, %q), want %v; Cache-Status %q", got, a.body, b.body, tt.cached, b.h.Get("Cache-Status"))
			}
			if tt.cached && !strings.Contains(b.h.Get("Cache-Status"), "; hit") {
				t.Errorf("Cache-Status = %q, want a hit", b.h.Get("Cache-Status"))
			}
			if b.h.Get("Surrogate-Control") != "" || b.h.Get("Surrogate-Key") != "" {
				t.Errorf("surrogate headers leaked to the client")
			}
		})
	}
}

func TestRevalidationAndInvalidation(t *testing.T) {
	clk := newClock()
	var n atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=10")
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("If-None-Match") == `"v1"` {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		fmt.Fprint(w, "body", n.Add(1))
	})
	e := startEdge(t, Config{Properties: []Property{prop(o)}, Now: clk.Now})
	first := get(t, e.base+"/doc")
	clk.Add(20 * time.Second)
	second := get(t, e.base+"/doc")
	if second.body != first.body || !strings.Contains(second.h.Get("Cache-Status"), "fwd=stale; fwd-status=304") {
		t.Errorf("after expiry: body %q status %q, want the stored body revalidated with a 304", second.body, second.h.Get("Cache-Status"))
	}
	if inm := o.last().Header.Get("If-None-Match"); inm != `"v1"` {
		t.Errorf("revalidation sent If-None-Match %q", inm)
	}
	// client conditional → 304 from cache
	c := get(t, e.base+"/doc", "If-None-Match", `"v1"`)
	if c.code != http.StatusNotModified {
		t.Errorf("conditional hit = %d, want 304", c.code)
	}
	// POST invalidates
	resp, err := http.Post(e.base+"/doc", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	third := get(t, e.base+"/doc")
	if third.body == first.body {
		t.Errorf("after POST the stored response was reused")
	}
}

func TestStaleWhileRevalidate(t *testing.T) {
	clk := newClock()
	var n atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Date", clk.Now().UTC().Format(http.TimeFormat)) // the origin shares the test's clock
		w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=60")
		fmt.Fprint(w, n.Add(1))
	})
	e := startEdge(t, Config{Properties: []Property{prop(o)}, Now: clk.Now})
	get(t, e.base+"/swr")
	clk.Add(5 * time.Second)
	r := get(t, e.base+"/swr")
	if r.body != "1" || !strings.Contains(r.h.Get("Cache-Status"), "stale-while-revalidate") {
		t.Fatalf("stale response = %q %q, want the stored one served at once", r.body, r.h.Get("Cache-Status"))
	}
	deadline := time.Now().Add(5 * time.Second)
	for o.hits.Load() < 2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if o.hits.Load() != 2 {
		t.Fatalf("background revalidation did not reach the origin")
	}
	for time.Now().Before(deadline) {
		if get(t, e.base+"/swr").body != "1" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := get(t, e.base+"/swr"); r.body != "2" || o.hits.Load() != 2 {
		t.Errorf("after the refresh: body %q, %d origin fetches; want the refreshed body and no other fetch", r.body, o.hits.Load())
	}
}

func TestOriginDownServesStale(t *testing.T) {
	clk := newClock()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/strict":
			w.Header().Set("Cache-Control", "max-age=1, must-revalidate")
		case "/sie":
			w.Header().Set("Cache-Control", "max-age=1, stale-if-error=600")
		default:
			w.Header().Set("Cache-Control", "max-age=1")
		}
		fmt.Fprint(w, "good")
	})
	e := startEdge(t, Config{Properties: []Property{prop(o)}, Now: clk.Now})
	for _, p := range []string{"/page", "/sie", "/strict"} {
		get(t, e.base+p)
	}
	o.Close() // origin down
	clk.Add(30 * time.Second)
	for _, tt := range []struct {
		path string
		code int
	}{{"/page", 200}, {"/sie", 200}, {"/strict", 502}} {
		r := get(t, e.base+tt.path)
		if r.code != tt.code {
			t.Errorf("GET %s with origin down = %d, want %d", tt.path, r.code, tt.code)
		}
		if tt.code == 200 && (r.body != "good" || !strings.Contains(r.h.Get("Cache-Status"), "stale-if-error")) {
			t.Errorf("GET %s = %q %q, want stale body marked stale-if-error", tt.path, r.body, r.h.Get("Cache-Status"))
		}
	}
}

func TestRequestCollapsing(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(200 * time.Millisecond)
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "once")
	})
	e := startEdge(t, Config{Properties: []Property{prop(o)}})
	var wg sync.WaitGroup
	var bad atomic.Int64
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := get(t, e.base+"/hot"); r.body != "once" {
				bad.Add(1)
			}
		}()
	}
	wg.Wait()
	if o.hits.Load() != 1 || bad.Load() != 0 {
		t.Errorf("20 concurrent misses: %d origin fetches, %d bad bodies; want 1 and 0", o.hits.Load(), bad.Load())
	}
}

func bigBody(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func TestSlicedRanges(t *testing.T) {
	const size = 9<<20 + 12345
	content := bigBody(size)
	var bytesOut atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("ETag", `"big"`)
		cw := &countW{ResponseWriter: w, n: &bytesOut}
		http.ServeContent(cw, r, "big.bin", time.Unix(1e9, 0), bytes.NewReader(content))
	})
	e := startEdge(t, Config{Properties: []Property{prop(o)}, SliceSize: 1 << 20})
	r := get(t, e.base+"/big.bin", "Range", "bytes=-100")
	if r.code != http.StatusPartialContent || r.body != string(content[size-100:]) {
		t.Fatalf("tail range = %d, %d bytes", r.code, len(r.body))
	}
	if got := bytesOut.Load(); got > 1<<20 {
		t.Errorf("a 100-byte tail range pulled %d bytes from the origin", got)
	}
	// a range in the middle fetches only its slices
	before := bytesOut.Load()
	r = get(t, e.base+"/big.bin", "Range", "bytes=5000000-5000099")
	if r.body != string(content[5000000:5000100]) {
		t.Fatalf("middle range body wrong")
	}
	if got := bytesOut.Load() - before; got > 1<<20 {
		t.Errorf("a middle range pulled %d bytes, want at most one slice", got)
	}
	// the whole object assembles from slices, then is a hit; the slice the
	// first (tail) range filled in part is completed with its head only
	r = get(t, e.base+"/big.bin")
	if r.code != 200 || sha256.Sum256([]byte(r.body)) != sha256.Sum256(content) {
		t.Fatalf("full GET = %d, %d bytes, content differs", r.code, len(r.body))
	}
	if got := bytesOut.Load(); got != size {
		t.Errorf("origin sent %d bytes in all, want the object once (%d)", got, size)
	}
	// a first range at the start of an object, then one further into the
	// same slice: the second fetches only the slice's missing tail
	before = bytesOut.Load()
	get(t, e.base+"/big.bin?copy=2", "Range", "bytes=0-99")
	r = get(t, e.base+"/big.bin?copy=2", "Range", "bytes=600000-600099")
	if r.body != string(content[600000:600100]) {
		t.Fatalf("range after a head range: body wrong")
	}
	if got := bytesOut.Load() - before; got != 1<<20 {
		t.Errorf("a head range and a range behind it pulled %d bytes, want one slice (%d)", got, 1<<20)
	}
	hits := o.hits.Load()
	r = get(t, e.base+"/big.bin", "Range", "bytes=1048000-1049000")
	if r.body != string(content[1048000:1049001]) || o.hits.Load() != hits {
		t.Errorf("range across a slice boundary after a full fill: origin contacted or body wrong")
	}
}

func TestLargeObjectOneFetch(t *testing.T) {
	content := bigBody(5<<20 + 7)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("Content-Length", fmt.Sprint(len(content)))
		w.Write(content)
	})
	e := startEdge(t, Config{Properties: []Property{prop(o)}, SliceSize: 1 << 20})
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := get(t, e.base+"/big"); r.body != string(content) {
				t.Errorf("concurrent full GET: %d bytes, content differs", len(r.body))
			}
		}()
	}
	wg.Wait()
	if n := o.hits.Load(); n != 1 {
		t.Errorf("4 concurrent full GETs of a 5 MiB object made %d origin requests, want 1", n)
	}
}

type countW struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c *countW) Write(b []byte) (int, error) {
	c.n.Add(int64(len(b)))
	return c.ResponseWriter.Write(b)
}

func TestPurgeAndIsolation(t *testing.T) {
	var n atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		if strings.HasPrefix(r.URL.Path, "/tagged") {
			w.Header().Set("Surrogate-Key", "release-7 all")
		}
		fmt.Fprint(w, n.Add(1))
	})
	a := Property{Name: "a", Hosts: []string{"a.test"}, Origin: o.URL, Token: "token-of-a-0123456789"}
	b := Property{Name: "b", Hosts: []string{"b.test"}, Origin: o.URL, Token: "token-of-b-0123456789"}
	e := startEdge(t, Config{Properties: []Property{a, b}, AdminToken: "node-admin-token-0123"})
	fetch := func(host, path string) string {
		req, _ := http.NewRequest("GET", e.base+path, nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		bb, _ := io.ReadAll(resp.Body)
		return string(bb)
	}
	admin := func(method, path, token, body string) (int, string) {
		req, _ := http.NewRequest(method, e.admin+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		bb, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(bb)
	}
	paths := []string{"/x", "/dir/1", "/dir/2", "/tagged/1", "/tagged/2"}
	orig := map[string]string{}
	for _, p := range paths {
		orig["a"+p] = fetch("a.test", p)
		orig["b"+p] = fetch("b.test", p)
	}
	// isolation: one property's token never reaches the other
	for _, c := range []struct {
		method, path, token string
		want                int
	}{
		{"POST", "/v1/properties/b/purge", a.Token, 403},
		{"GET", "/v1/properties/b/keys", a.Token, 403},
		{"GET", "/v1/properties/b", a.Token, 403},
		{"POST", "/v1/properties/b/purge", "", 401},
		{"POST", "/v1/properties/nope/purge", a.Token, 403},
		{"GET", "/v1/properties/a/keys", a.Token, 200},
	} {
		if code, body := admin(c.method, c.path, c.token, `{"prefixes":["/"]}`); code != c.want {
			t.Errorf("%s %s = %d %s, want %d", c.method, c.path, code, body, c.want)
		}
	}
	if code, body := admin("GET", "/v1/properties", a.Token, ""); code != 200 || strings.Contains(body, `"b"`) {
		t.Errorf("listing with a's token = %d %s, want only a", code, body)
	}
	if code, _ := admin("POST", "/v1/properties/a/purge", a.Token, `{"bogus":1}`); code != 400 {
		t.Errorf("malformed purge = %d, want 400", code)
	}
	mustPurge := func(prop, token, body string) {
		if code, out := admin("POST", "/v1/properties/"+prop+"/purge", token, body); code != 200 {
			t.Fatalf("purge %s = %d %s", body, code, out)
		}
	}
	mustPurge("a", a.Token, `{"urls":["http://a.test/x"]}`)
	mustPurge("a", a.Token, `{"prefixes":["/dir/"]}`)
	mustPurge("a", "node-admin-token-0123", `{"tags":["release-7"]}`)
	for _, p := range paths {
		if fetch("a.test", p) == orig["a"+p] {
			t.Errorf("a%s still cached after purge", p)
		}
		if fetch("b.test", p) != orig["b"+p] {
			t.Errorf("b%s purged by a purge of a", p)
		}
	}
}

func TestMediaDefaults(t *testing.T) {
	clk := newClock()
	var n atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, n.Add(1))
	})
	e := startEdge(t, Config{Properties: []Property{prop(o)}, Now: clk.Now})
	pl1, seg1 := get(t, e.base+"/live/index.m3u8"), get(t, e.base+"/live/seg-1.ts")
	clk.Add(time.Second)
	if get(t, e.base+"/live/index.m3u8").body != pl1.body {
		t.Errorf("playlist not cached within its short TTL")
	}
	clk.Add(5 * time.Second)
	if get(t, e.base+"/live/index.m3u8").body == pl1.body {
		t.Errorf("playlist served past its short TTL")
	}
	if get(t, e.base+"/live/seg-1.ts").body != seg1.body {
		t.Errorf("segment not kept long")
	}
}

func TestTraceparentAndAccessLog(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "hello")
	})
	var logBuf syncBuf
	e := startEdge(t, Config{Properties: []Property{prop(o)}, AccessLog: NewAccessLog(&logBuf), NodeID: "n1"})
	in := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	get(t, e.base+"/t?q=1", "Traceparent", in, "Range", "bytes=0-1")
	tp := o.last().Header.Get("Traceparent")
	id, parent, flags, ok := parseTraceparent(tp)
	if !ok || id != "4bf92f3577b34da6a3ce929d0e0e4736" || parent == "00f067aa0ba902b7" || flags != "01" {
		t.Errorf("origin saw traceparent %q, want the same trace with a new parent id", tp)
	}
	get(t, e.base+"/t?q=1")
	lines := strings.Split(strings.TrimSpace(logBuf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("access log has %d lines, want 2", len(lines))
	}
	var l LogLine
	if err := json.Unmarshal([]byte(lines[0]), &l); err != nil {
		t.Fatal(err)
	}
	if l.Property != "site" || l.Node != "n1" || l.Method != "GET" || l.Path != "/t?q=1" || l.Status != 206 ||
		l.TraceID != "4bf92f3577b34da6a3ce929d0e0e4736" || l.Range != "bytes=0-1" || l.BytesSent <= l.BodyBytes || l.Client != "127.0.0.1" ||
		l.CacheStatus != "miss" || !strings.HasSuffix(l.Time, "Z") {
		t.Errorf("log line = %+v", l)
	}
	if _, err := time.Parse(time.RFC3339, l.Time); err != nil {
		t.Errorf("time %q not RFC 3339: %v", l.Time, err)
	}
	json.Unmarshal([]byte(lines[1]), &l)
	if l.CacheStatus != "hit" {
		t.Errorf("second line cache status %q, want hit", l.CacheStatus)
	}
	// metrics reflect both requests
	m := get(t, e.admin+"/metrics").body
	for _, want := range []string{`edge_http_requests_total{cache_status="hit",code_class="2xx",property="site"} 1`,
		`edge_cache_bytes{property="site"}`, "edge_origin_fetch_duration_seconds_bucket", "edge_http_response_bytes_total"} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if h := get(t, e.admin+"/healthz"); h.code != 200 {
		t.Errorf("/healthz = %d", h.code)
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestRestartKeepsDiskTier(t *testing.T) {
	dir := t.TempDir()
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Write(bigBody(3 << 20)) // sliced
	})
	open := func() cachestore.Store {
		d, err := cachestore.OpenDisk(cachestore.DiskConfig{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		return cachestore.NewTiered(cachestore.TieredConfig{Memory: cachestore.NewMemory(cachestore.MemoryConfig{}), Disk: d})
	}
	st := open()
	e := startEdge(t, Config{Properties: []Property{prop(o)}, Store: st, SliceSize: 1 << 20})
	first := get(t, e.base+"/file")
	e.stop()
	st.Close() // flushes write-behind
	o.Close()
	e2 := startEdge(t, Config{Properties: []Property{prop(o)}, Store: open(), SliceSize: 1 << 20})
	r := get(t, e2.base+"/file")
	if r.code != 200 || r.body != first.body || !strings.Contains(r.h.Get("Cache-Status"), "hit") {
		t.Errorf("after restart with origin down = %d %q, want the stored object", r.code, r.h.Get("Cache-Status"))
	}
}

func TestRateLimitsByPrefix(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		fmt.Fprint(w, "ok")
	})
	e := startEdge(t, Config{Properties: []Property{prop(o)},
		Limits: Limits{ClientRate: 1000, ClientBurst: 1000, PrefixRate: 1, PrefixBurst: 10}})
	clientFrom := func(ip string) *http.Client {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}}
	}
	status := func(c *http.Client) int {
		resp, err := c.Get(e.base + "/r")
		if err != nil {
			t.Skipf("cannot use source address: %v", err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	// a flood from 127.0.9.0/24, from several addresses
	limited := 0
	for i := 0; i < 60; i++ {
		if status(clientFrom(fmt.Sprintf("127.0.9.%d", 1+i%5))) == http.StatusTooManyRequests {
			limited++
		}
	}
	if limited < 30 {
		t.Errorf("flood from one /24: only %d of 60 limited", limited)
	}
	other := clientFrom("127.0.10.1")
	for i := 0; i < 10; i++ {
		if c := status(other); c != 200 {
			t.Fatalf("client in another prefix got %d during the flood", c)
		}
	}
}

func TestProtocolLimits(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		fmt.Fprint(w, "ok")
	})
	e := startEdge(t, Config{Properties: []Property{prop(o)}, Limits: Limits{Disabled: true, MaxHeaderBytes: 4096,
		MaxBodyBytes: 1024, ReadHeaderTimeout: 300 * time.Millisecond}})
	if r := get(t, e.base+"/h", "X-Big", strings.Repeat("a", 10000)); r.code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("huge header = %d, want 431", r.code)
	}
	resp, err := http.Post(e.base+"/p", "text/plain", strings.NewReader(strings.Repeat("b", 5000)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("large body = %d, want 413", resp.StatusCode)
	}
	// slowloris: a client that never finishes its headers is cut off
	c, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: x\r\n")
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	if _, err := io.ReadAll(c); err != nil {
		t.Errorf("slow client not disconnected: %v", err)
	}
}

func TestMalformedRequests(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "0123456789")
	})
	e := startEdge(t, Config{Properties: []Property{{Name: "site", Hosts: []string{"known.test"}, Origin: o.URL}}})
	addr := strings.TrimPrefix(e.base, "http://")
	raw := []string{
		"GARBAGE GARBAGE GARBAGE GARBAGE\r\n\r\n",
		"GET /x HTTP/1.1\r\n\r\n", // no Host
		"GET /x HTTP/1.1\r\nHost: known.test\r\nContent-Length: -5\r\n\r\n",
		"GET /x HTTP/9.9\r\nHost: known.test\r\n\r\n",
		"GET \x00 HTTP/1.1\r\nHost: known.test\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: unknown.test\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: known.test\r\nRange: bytes=99-1\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: known.test\r\nRange: bytes=100-\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: known.test\r\nTraceparent: zz\r\nCache-Control: max-age=\"\r\n\r\n",
		"CONNECT known.test:443 HTTP/1.1\r\nHost: known.test\r\n\r\n",
	}
	for _, req := range raw {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprint(c, req)
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		c.Close()
		if err != nil {
			t.Errorf("%q: no response: %v", req, err)
			continue
		}
		if resp.StatusCode >= 500 && resp.StatusCode != http.StatusHTTPVersionNotSupported {
			t.Errorf("%q = %d, want a 4xx answer", req, resp.StatusCode)
		}
	}
	if r := get(t, e.base+"/x"); r.code != http.StatusNotFound {
		t.Errorf("unknown host = %d, want 404", r.code)
	}
}

func TestHTTP2BoundedStreams(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "h2")
	})
	e := startEdge(t, Config{Properties: []Property{prop(o)}, Limits: Limits{Disabled: true, MaxConcurrentStreams: 7}})
	if got := e.HTTPServer().HTTP2.MaxConcurrentStreams; got != 7 {
		t.Errorf("MaxConcurrentStreams = %d, want 7", got)
	}
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	c := &http.Client{Transport: tr}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Get(e.base + "/h2")
			if err != nil {
				t.Error(err)
				return
			}
			defer resp.Body.Close()
			if resp.ProtoMajor != 2 {
				t.Errorf("proto = %s, want HTTP/2", resp.Proto)
			}
		}()
	}
	wg.Wait()
}

func TestTLSAndHTTP2(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "secure")
	})
	certSrv := httptest.NewUnstartedServer(http.NotFoundHandler())
	certSrv.EnableHTTP2 = true
	certSrv.StartTLS() // borrow its certificate and a client that trusts it
	defer certSrv.Close()
	e := startEdge(t, Config{Properties: []Property{prop(o)}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.ServeTLS(ctx, ln, certSrv.TLS); close(done) }()
	defer func() { cancel(); <-done }()
	c := certSrv.Client()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	resp, err := c.Get("https://127.0.0.1:" + port + "/s")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "secure" || resp.ProtoMajor != 2 {
		t.Errorf("TLS response %q over %s, want the origin body over HTTP/2", b, resp.Proto)
	}
}

func TestReloadKeepsConnections(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, r.Host) })
	e := startEdge(t, Config{Properties: []Property{{Name: "one", Hosts: []string{"one.test"}, Origin: o.URL}}})
	c := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	do := func(host string) int {
		req, _ := http.NewRequest("GET", e.base+"/", nil)
		req.Host = host
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if do("two.test") != 404 {
		t.Fatal("two.test served before reload")
	}
	err := e.Reload(Config{Properties: []Property{{Name: "one", Hosts: []string{"one.test"}, Origin: o.URL},
		{Name: "two", Hosts: []string{"two.test"}, Origin: o.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	if do("two.test") != 200 || do("one.test") != 200 {
		t.Errorf("after reload properties not both served")
	}
	if err := e.Reload(Config{Properties: []Property{{Name: "bad name!", Origin: o.URL}}}); err == nil {
		t.Errorf("invalid reload accepted")
	}
}

func TestConfigFile(t *testing.T) {
	good := `{"node_id":"n","mem":"64MiB","limits":{"client_rate":5,"slow_client_timeout":"5s"},
	  "properties":[{"name":"p","hosts":["a.test"],"origin":"http://127.0.0.1:1","cache_bytes":"1GB","default_ttl":30}]}`
	f, err := ParseFile([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	cfg := f.Config()
	if int64(f.Mem) != 64<<20 || cfg.Properties[0].CacheBytes != 1e9 || cfg.Properties[0].DefaultTTL != 30*time.Second ||
		cfg.Limits.SlowClientTimeout != 5*time.Second {
		t.Errorf("parsed %+v / %+v", f, cfg)
	}
	for _, bad := range []string{``, `{"unknown":1}`, `{"properties":[{"name":"p","origin":"ftp://x"}]}`,
		`{"properties":[{"name":"p","origin":"http://x"},{"name":"p","origin":"http://y"}]}`,
		`{"mem":"12 parsecs"}`, `{"properties":[{"name":"p","origin":"http://x","token":"short"}]}`, `{} {}`} {
		if _, err := ParseFile([]byte(bad)); err == nil {
			t.Errorf("ParseFile(%q) accepted", bad)
		}
	}
}

func TestSlowReaderIsDropped(t *testing.T) {
	big := bigBody(32 << 20)
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Write(big)
	})
	var logBuf syncBuf
	e := startEdge(t, Config{Properties: []Property{prop(o)}, AccessLog: NewAccessLog(&logBuf),
		Limits: Limits{Disabled: true, SlowClientTimeout: 300 * time.Millisecond}})
	c, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4096)
	fmt.Fprint(c, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
	// read nothing: the edge must give up on this client by itself
	deadline := time.Now().Add(5 * time.Second)
	for logBuf.String() == "" && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	var l LogLine
	if err := json.Unmarshal([]byte(logBuf.String()), &l); err != nil {
		t.Fatalf("no access-log line 5 s after the client stalled: the request is still being served")
	}
	if l.BodyBytes >= int64(len(big)) {
		t.Errorf("stalled client logged %d body bytes, want the transfer cut short", l.BodyBytes)
	}
}

func TestAccessLogRotation(t *testing.T) {
	path := t.TempDir() + "/access.log"
	l, err := OpenAccessLog(path, 300, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		l.Write(&LogLine{Time: logTime(time.Now()), Property: "p", Path: fmt.Sprint("/", i)})
	}
	l.Close()
	for _, f := range []string{path, path + ".1", path + ".2"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(b) > 300 {
			t.Errorf("%s is %d bytes, over the 300-byte limit", f, len(b))
		}
		for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			var ll LogLine
			if err := json.Unmarshal([]byte(line), &ll); err != nil {
				t.Errorf("%s: bad line %q", f, line)
			}
		}
	}
	if _, err := os.Stat(path + ".3"); err == nil {
		t.Errorf("more rotated files kept than asked")
	}
}

func TestReadRangeInProcess(t *testing.T) {
	content := bigBody(5<<20 + 3)
	var bytesOut atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		w.Header().Set("ETag", `"pub"`)
		http.ServeContent(&countW{ResponseWriter: w, n: &bytesOut}, r, "", time.Time{}, bytes.NewReader(content))
	})
	e := startEdge(t, Config{Properties: []Property{prop(o)}, SliceSize: 1 << 20})
	// "generation" 3 of a published file: one slice from the origin
	b, total, err := e.ReadRange(context.Background(), "http://pub.test/file", 3<<20, 1<<20)
	if err != nil || total != int64(len(content)) || !bytes.Equal(b, content[3<<20:4<<20]) {
		t.Fatalf("ReadRange = %d bytes, total %d, %v", len(b), total, err)
	}
	if got := bytesOut.Load(); got > 1<<20 {
		t.Errorf("one slice pulled %d bytes from the origin", got)
	}
	hits := o.hits.Load()
	if b, _, err = e.ReadRange(context.Background(), "http://pub.test/file", 3<<20+5, 10); err != nil || !bytes.Equal(b, content[3<<20+5:3<<20+15]) {
		t.Fatalf("second ReadRange = %q, %v", b, err)
	}
	if o.hits.Load() != hits {
		t.Errorf("a range inside a stored slice went to the origin")
	}
	// clients see the same cache
	if r := get(t, e.base+"/file", "Host", "pub.test", "Range", "bytes=3145728-3145737"); r.body != string(content[3<<20:3<<20+10]) ||
		!strings.Contains(r.h.Get("Cache-Status"), "hit") {
		t.Errorf("client range after ReadRange = %q %q", r.body, r.h.Get("Cache-Status"))
	}
}

// TestMixedTrafficStress runs concurrent gets, ranges, conditionals,
// unsafe methods and purges against objects of every kind (small, sliced,
// varying, uncacheable, failing) and checks every body that comes back.
func TestMixedTrafficStress(t *testing.T) {
	big := bigBody(3<<20 + 11)
	var flip atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=5")
			w.Header().Set("ETag", `"s"`)
			if r.Header.Get("If-None-Match") == `"s"` {
				w.WriteHeader(http.StatusNotModified)
				return
			}
			fmt.Fprint(w, "small-body")
		case "/big":
			w.Header().Set("Cache-Control", "max-age=600")
			w.Header().Set("Surrogate-Key", "big")
			w.Header().Set("ETag", `"b"`)
			http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(big))
		case "/vary":
			w.Header().Set("Cache-Control", "max-age=600")
			w.Header().Set("Vary", "X-V")
			fmt.Fprint(w, "v=", r.Header.Get("X-V"))
		case "/nostore":
			w.Header().Set("Cache-Control", "no-store")
			fmt.Fprint(w, "fresh")
		case "/flaky":
			w.Header().Set("Cache-Control", "max-age=0")
			if flip.Add(1)%3 == 0 {
				w.WriteHeader(http.StatusServiceUnavailable)
				return
			}
			fmt.Fprint(w, "flaky")
		default:
			io.Copy(io.Discard, r.Body)
			w.WriteHeader(http.StatusNoContent)
		}
	})
	e := startEdge(t, Config{Properties: []Property{prop(o)}, SliceSize: 1 << 20})
	n := 400
	if testing.Short() {
		n = 120
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < n/8; i++ {
				switch (g + i) % 7 {
				case 0:
					if r := get(t, e.base+"/small"); r.code != 200 || r.body != "small-body" {
						t.Errorf("/small = %d %q", r.code, r.body)
					}
				case 1:
					off := (g*7919 + i*104729) % len(big)
					r := get(t, e.base+"/big", "Range", fmt.Sprintf("bytes=%d-%d", off, off+999))
					if r.code != 206 || r.body != string(big[off:min(off+1000, len(big))]) {
						t.Errorf("/big range at %d = %d, %d bytes", off, r.code, len(r.body))
					}
				case 2:
					v := fmt.Sprint(i % 3)
					if r := get(t, e.base+"/vary", "X-V", v); r.body != "v="+v {
						t.Errorf("/vary X-V %s = %q", v, r.body)
					}
				case 3:
					if r := get(t, e.base+"/nostore"); r.body != "fresh" {
						t.Errorf("/nostore = %q", r.body)
					}
				case 4:
					if r := get(t, e.base+"/flaky"); r.code != 200 && r.code != 503 {
						t.Errorf("/flaky = %d", r.code)
					}
				case 5:
					resp, err := http.Post(e.base+"/small", "text/plain", strings.NewReader("x"))
					if err == nil {
						resp.Body.Close()
					}
				case 6:
					e.Purge("site", PurgeRequest{Tags: []string{"big"}, Prefixes: []string{"/va"}})
				}
			}
		}(g)
	}
	wg.Wait()
	if r := get(t, e.base+"/big"); r.code != 200 || r.body != string(big) {
		t.Errorf("/big after the storm: %d, %d bytes", r.code, len(r.body))
	}
}

func TestPOSTResponseReusedForGET(t *testing.T) {
	var n atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		v := n.Add(1)
		if r.Method == http.MethodPost {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Cache-Control", "max-age=600")
			if r.URL.Path == "/same" {
				w.Header().Set("Content-Location", "/same")
			}
		}
		fmt.Fprint(w, r.Method, v)
	})
	e := startEdge(t, Config{Properties: []Property{prop(o)}})
	for _, tt := range []struct {
		path   string
		reused bool
	}{{"/same", true}, {"/other", false}} {
		resp, err := http.Post(e.base+tt.path, "text/plain", strings.NewReader("x"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		g := get(t, e.base+tt.path)
		if got := g.body == string(b); got != tt.reused {
			t.Errorf("GET %s after POST = %q (POST gave %q): reused %v, want %v", tt.path, g.body, b, got, tt.reused)
		}
	}
}

// TestHTTP2StreamLimitEnforced speaks raw h2c to the edge: the server
// advertises MaxConcurrentStreams in its SETTINGS, and a stream opened
// beyond that while the others wait on the origin is refused with
// RST_STREAM, never forwarded.
func TestHTTP2StreamLimitEnforced(t *testing.T) {
	const limit = 5
	release := make(chan struct{})
	var inflight, peak atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
		}
		<-release
		inflight.Add(-1)
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprint(w, "ok")
	})
	e := startEdge(t, Config{Properties: []Property{prop(o)}, Limits: Limits{Disabled: true, MaxConcurrentStreams: limit}})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	c, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	frame := func(typ, flags byte, stream uint32, payload []byte) []byte {
		n := len(payload)
		b := []byte{byte(n >> 16), byte(n >> 8), byte(n), typ, flags, byte(stream >> 24), byte(stream >> 16), byte(stream >> 8), byte(stream)}
		return append(b, payload...)
	}
	lit := func(nameIdx byte, v string) []byte { // literal without indexing, indexed name
		return append([]byte{nameIdx, byte(len(v))}, v...)
	}
	out := append([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), frame(0x4, 0, 0, nil)...)
	for i := 0; i <= limit; i++ { // limit+1 streams: 1, 3, ...
		hb := []byte{0x82, 0x86} // :method GET, :scheme http
		hb = append(hb, lit(0x04, fmt.Sprintf("/slow/%d", i))...)
		hb = append(hb, lit(0x01, "site.test")...)
		out = append(out, frame(0x1, 0x5, uint32(2*i+1), hb)...) // END_STREAM|END_HEADERS
	}
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(c)
	var advertised uint32
	refused := map[uint32]bool{}
	answered := map[uint32]bool{}
	readFrame := func() (typ, flags byte, stream uint32, payload []byte) {
		var h [9]byte
		if _, err := io.ReadFull(rd, h[:]); err != nil {
			t.Fatalf("reading frame: %v (refused %v, answered %v)", err, refused, answered)
		}
		payload = make([]byte, int(h[0])<<16|int(h[1])<<8|int(h[2]))
		if _, err := io.ReadFull(rd, payload); err != nil {
			t.Fatal(err)
		}
		return h[3], h[4], uint32(h[5]&0x7f)<<24 | uint32(h[6])<<16 | uint32(h[7])<<8 | uint32(h[8]), payload
	}
	lastStream := uint32(2*limit + 1)
	for !refused[lastStream] {
		typ, flags, stream, p := readFrame()
		switch typ {
		case 0x4: // SETTINGS
			if flags&1 == 0 {
				for i := 0; i+6 <= len(p); i += 6 {
					if id := uint16(p[i])<<8 | uint16(p[i+1]); id == 0x3 {
						advertised = uint32(p[i+2])<<24 | uint32(p[i+3])<<16 | uint32(p[i+4])<<8 | uint32(p[i+5])
					}
				}
				c.Write(frame(0x4, 1, 0, nil))
			}
		case 0x3: // RST_STREAM
			refused[stream] = true
		case 0x7: // GOAWAY
			t.Fatalf("connection closed with GOAWAY instead of refusing one stream")
		}
	}
	if advertised != limit {
		t.Errorf("SETTINGS_MAX_CONCURRENT_STREAMS = %d, want %d", advertised, limit)
	}
	if len(refused) != 1 {
		t.Errorf("refused streams %v, want only stream %d", refused, lastStream)
	}
	for deadline := time.Now().Add(5 * time.Second); inflight.Load() < limit && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if p := peak.Load(); p != limit {
		t.Errorf("origin saw %d concurrent requests from one connection, want %d", p, limit)
	}
	close(release)
	for len(answered) < limit {
		typ, _, stream, _ := readFrame()
		if typ == 0x1 {
			answered[stream] = true
		}
	}
	if answered[lastStream] {
		t.Errorf("the refused stream was answered")
	}
}

// TestLivePlaylistCollapsing: when a live playlist's short lifetime runs
// out, many players asking at once cause one origin fetch.
func TestLivePlaylistCollapsing(t *testing.T) {
	clk := newClock()
	var n atomic.Int64
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(100 * time.Millisecond)
		w.Header().Set("Date", clk.Now().UTC().Format(http.TimeFormat)) // the origin shares the test clock
		w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
		fmt.Fprintf(w, "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:%d\n", n.Add(1))
	})
	e := startEdge(t, Config{Properties: []Property{prop(o)}, Now: clk.Now})
	for update := 1; update <= 3; update++ {
		before := o.hits.Load()
		var wg sync.WaitGroup
		bodies := make([]string, 30)
		for i := range bodies {
			wg.Add(1)
			go func() { defer wg.Done(); bodies[i] = get(t, e.base+"/live/chunklist.m3u8").body }()
		}
		wg.Wait()
		if got := o.hits.Load() - before; got != 1 {
			t.Errorf("update %d: 30 concurrent players caused %d origin fetches, want 1", update, got)
		}
		for _, b := range bodies {
			if b != bodies[0] {
				t.Errorf("update %d: players got different playlists %q and %q", update, b, bodies[0])
				break
			}
		}
		clk.Add(3 * time.Second) // past playlist_ttl (2 s)
	}
}

// TestClientPrefix: the per-prefix buckets group IPv4 clients by /24 and
// IPv6 clients by /64; IPv4-mapped addresses count as IPv4.
func TestClientPrefix(t *testing.T) {
	for _, tc := range []struct{ remote, addr, prefix string }{
		{"198.51.100.7:5000", "198.51.100.7", "198.51.100.0/24"},
		{"[2001:db8:1:2:aaaa::1]:443", "2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff:ffff:ffff:ffff]:1", "2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"},
		{"[::ffff:198.51.100.9]:80", "198.51.100.9", "198.51.100.0/24"},
		{"not-an-ip", "not-an-ip", "not-an-ip"},
	} {
		if addr, prefix := clientPrefix(tc.remote); addr != tc.addr || prefix != tc.prefix {
			t.Errorf("clientPrefix(%q) = %q, %q; want %q, %q", tc.remote, addr, prefix, tc.addr, tc.prefix)
		}
	}
}

// TestConnectionCaps: connections beyond the per-address cap are closed at
// accept and counted, while another address still gets in.
func TestConnectionCaps(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	e := startEdge(t, Config{Properties: []Property{prop(o)}, Limits: Limits{MaxConns: 100, MaxConnsPerIP: 2}})
	addr := strings.TrimPrefix(e.base, "http://")
	dialFrom := func(ip string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 2 * time.Second}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Skipf("cannot use source address %s: %v", ip, err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	alive := func(c net.Conn) bool {
		c.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprint(c, "GET /x HTTP/1.1\r\nHost: site.test\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	a, b := dialFrom("127.0.0.1"), dialFrom("127.0.0.1")
	if !alive(a) || !alive(b) {
		t.Fatal("connections within the cap not served")
	}
	if alive(dialFrom("127.0.0.1")) {
		t.Errorf("third connection from one address served, want it closed at accept (cap 2)")
	}
	if !alive(dialFrom("127.0.0.2")) {
		t.Errorf("another address refused while one address is at its cap")
	}
	if m := get(t, e.admin+"/metrics").body; !strings.Contains(m, "edge_connections_rejected_total 1") {
		t.Errorf("rejected connection not counted")
	}
}

// TestPropertyAccessLogs: each property's requests go to its own
// access-log stream, the rest to the node's.
func TestPropertyAccessLogs(t *testing.T) {
	o := newOrigin(t, func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") })
	var node, la, lb syncBuf
	e := startEdge(t, Config{AccessLog: NewAccessLog(&node), Properties: []Property{
		{Name: "a", Hosts: []string{"a.test"}, Origin: o.URL, AccessLog: NewAccessLog(&la)},
		{Name: "b", Hosts: []string{"b.test"}, Origin: o.URL, AccessLog: NewAccessLog(&lb)},
		{Name: "c", Hosts: []string{"c.test"}, Origin: o.URL},
	}})
	for _, h := range []string{"a.test", "b.test", "b.test", "c.test"} {
		get(t, e.base+"/p", "Host", h)
	}
	for _, tc := range []struct {
		name string
		buf  *syncBuf
		want []string
	}{{"a", &la, []string{"a"}}, {"b", &lb, []string{"b", "b"}}, {"node", &node, []string{"c"}}} {
		var got []string
		for _, line := range strings.Split(strings.TrimSpace(tc.buf.String()), "\n") {
			var l LogLine
			if json.Unmarshal([]byte(line), &l) == nil {
				got = append(got, l.Property)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("%s log has properties %v, want %v", tc.name, got, tc.want)
		}
	}
}
