package origin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"avalanche/internal/contentstore"
	"avalanche/internal/manifest"
)

const (
	tokenAlpha = "alpha-token-0123456789"
	tokenBeta  = "beta-token-0123456789"
	testK      = 4
	testBS     = 1024
)

func key(seed byte) ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
}

var (
	keyAlpha = key(1)
	keyBeta  = key(2)
	keyOther = key(3)
)

func randBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 9))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func signed(t testing.TB, property, name string, data []byte, priv ed25519.PrivateKey) *manifest.Manifest {
	t.Helper()
	m, err := manifest.FromReader(bytes.NewReader(data), testK, testBS, property, name, time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Sign(priv); err != nil {
		t.Fatal(err)
	}
	return m
}

func testProperties() []Property {
	return []Property{
		{Name: "alpha", Tokens: []Token{HashToken(tokenAlpha)}, Publishers: []ed25519.PublicKey{keyAlpha.Public().(ed25519.PublicKey)}},
		{Name: "beta", Tokens: []Token{HashToken(tokenBeta)}, Publishers: []ed25519.PublicKey{keyBeta.Public().(ed25519.PublicKey)}, QuotaBytes: 64 << 10},
	}
}

// fixture is an origin behind a real HTTP server on loopback.
type fixture struct {
	o   *Origin
	srv *httptest.Server
	dir string
	log *syncBuffer

	mu        sync.Mutex
	published []manifest.ID
	deleted   []manifest.ID
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newFixture(t testing.TB, mod func(*Config)) *fixture {
	t.Helper()
	f := &fixture{dir: t.TempDir(), log: &syncBuffer{}}
	cfg := Config{
		DataDir:    f.dir,
		Properties: testProperties(),
		Logger:     slog.New(slog.NewJSONHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
		OnPublish: func(m *manifest.Manifest) {
			f.mu.Lock()
			f.published = append(f.published, m.ID())
			f.mu.Unlock()
		},
		OnDelete: func(id manifest.ID) {
			f.mu.Lock()
			f.deleted = append(f.deleted, id)
			f.mu.Unlock()
		},
	}
	if mod != nil {
		mod(&cfg)
	}
	o, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.o = o
	f.srv = httptest.NewServer(o.Handler())
	t.Cleanup(func() {
		f.srv.Close()
		o.Close()
	})
	return f
}

// do sends a request and returns the response with its body read.
func (f *fixture) do(t testing.TB, method, path, token string, body io.Reader, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// publish puts the manifest and the data and fails the test unless both
// succeed.
func (f *fixture) publish(t testing.TB, property, token string, m *manifest.Manifest, data []byte) {
	t.Helper()
	resp, b := f.do(t, "PUT", "/v1/properties/"+property+"/manifests", token, bytes.NewReader(m.Encoded()))
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT manifest: %s %s", resp.Status, b)
	}
	resp, b = f.do(t, "PUT", "/v1/properties/"+property+"/content/"+m.ID().String(), token, bytes.NewReader(data))
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT content: %s %s", resp.Status, b)
	}
}

func TestPublishAndRead(t *testing.T) {
	f := newFixture(t, nil)
	data := randBytes(1, 3*testK*testBS+77)
	m := signed(t, "alpha", "setup v1.exe", data, keyAlpha)
	id := m.ID().String()

	resp, b := f.do(t, "PUT", "/v1/properties/alpha/manifests", tokenAlpha, bytes.NewReader(m.Encoded()))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT manifest = %s %s, want 201", resp.Status, b)
	}
	var obj Object
	if err := json.Unmarshal(b, &obj); err != nil || obj.ID != id || obj.Complete || obj.Size != int64(len(data)) {
		t.Fatalf("PUT manifest body = %s (%v)", b, err)
	}
	// Not public before the bytes are there.
	for _, p := range []string{"/v1/manifest/" + id, "/v1/content/" + id, "/d/" + id + "/x"} {
		if resp, _ := f.do(t, "GET", p, "", nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s before upload = %s, want 404", p, resp.Status)
		}
	}
	resp, b = f.do(t, "PUT", "/v1/properties/alpha/content/"+id, tokenAlpha, bytes.NewReader(data))
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT content = %s %s, want 201", resp.Status, b)
	}
	json.Unmarshal(b, &obj)
	if !obj.Complete || obj.URL != f.srv.URL+"/d/"+id+"/setup%20v1.exe" {
		t.Errorf("PUT content body = %s", b)
	}
	// Idempotent re-publish.
	if resp, b := f.do(t, "PUT", "/v1/properties/alpha/manifests", tokenAlpha, bytes.NewReader(m.Encoded())); resp.StatusCode != http.StatusOK {
		t.Errorf("re-PUT manifest = %s %s, want 200", resp.Status, b)
	}
	if resp, b := f.do(t, "PUT", "/v1/properties/alpha/content/"+id, tokenAlpha, bytes.NewReader(data)); resp.StatusCode != http.StatusOK {
		t.Errorf("re-PUT content = %s %s, want 200", resp.Status, b)
	}
	f.mu.Lock()
	if len(f.published) != 1 || f.published[0] != m.ID() {
		t.Errorf("OnPublish calls = %v, want exactly [%s]", f.published, m.ID().Short())
	}
	f.mu.Unlock()

	resp, b = f.do(t, "GET", "/v1/manifest/"+id, "", nil)
	if resp.StatusCode != 200 || !bytes.Equal(b, m.Encoded()) {
		t.Errorf("GET manifest = %s, %d bytes", resp.Status, len(b))
	}
	if got := resp.Header.Get("Cache-Control"); !strings.Contains(got, "immutable") {
		t.Errorf("manifest Cache-Control = %q", got)
	}
	if got := resp.Header.Get("Content-Type"); got != ManifestContentType {
		t.Errorf("manifest Content-Type = %q", got)
	}
	if _, err := manifest.Parse(b); err != nil {
		t.Errorf("served manifest does not parse: %v", err)
	}

	resp, b = f.do(t, "GET", "/v1/content/"+id, "", nil)
	if resp.StatusCode != 200 || !bytes.Equal(b, data) {
		t.Fatalf("GET content = %s, %d bytes", resp.Status, len(b))
	}
	if got := resp.Header.Get("ETag"); got != `"`+id+`"` {
		t.Errorf("ETag = %q", got)
	}
	if got := resp.Header.Get("Last-Modified"); got != m.Created.Format(http.TimeFormat) {
		t.Errorf("Last-Modified = %q", got)
	}
	if got := resp.Header.Get("Accept-Ranges"); got != "bytes" {
		t.Errorf("Accept-Ranges = %q", got)
	}

	resp, b = f.do(t, "GET", "/d/"+id+"/setup%20v1.exe", "", nil)
	if resp.StatusCode != 200 || !bytes.Equal(b, data) {
		t.Fatalf("GET /d/ = %s, %d bytes", resp.Status, len(b))
	}
	_, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition"))
	if err != nil || params["filename"] != "setup v1.exe" {
		t.Errorf("Content-Disposition = %q", resp.Header.Get("Content-Disposition"))
	}
	// A wrong name redirects to the canonical one (the client follows).
	resp, b = f.do(t, "GET", "/d/"+id+"/other.exe", "", nil)
	if resp.StatusCode != 200 || !bytes.Equal(b, data) || resp.Request.URL.Path != "/d/"+id+"/setup v1.exe" {
		t.Errorf("GET /d/ with another name = %s at %s", resp.Status, resp.Request.URL)
	}

	resp, b = f.do(t, "HEAD", "/v1/content/"+id, "", nil)
	if resp.StatusCode != 200 || len(b) != 0 || resp.ContentLength != int64(len(data)) {
		t.Errorf("HEAD = %s, Content-Length %d, body %d", resp.Status, resp.ContentLength, len(b))
	}

	resp, b = f.do(t, "GET", "/v1/properties/alpha/content", tokenAlpha, nil)
	var l Listing
	if err := json.Unmarshal(b, &l); err != nil || resp.StatusCode != 200 || len(l.Content) != 1 || l.Content[0].ID != id || !l.Content[0].Complete || l.Content[0].Name != "setup v1.exe" {
		t.Errorf("list = %s %s", resp.Status, b)
	}
	if got := f.o.List(); len(got) != 1 || got[0].ID != m.ID() {
		t.Errorf("Origin.List = %+v", got)
	}
	c, err := f.o.Open(m.ID())
	if err != nil {
		t.Fatalf("Origin.Open: %v", err)
	}
	buf := make([]byte, 10)
	if _, err := c.ReadAt(buf, 100); err != nil || !bytes.Equal(buf, data[100:110]) {
		t.Errorf("Content.ReadAt = %v", err)
	}
	c.Close()
}

func TestRanges(t *testing.T) {
	f := newFixture(t, nil)
	data := randBytes(2, 10000)
	m := signed(t, "alpha", "r.bin", data, keyAlpha)
	f.publish(t, "alpha", tokenAlpha, m, data)
	etag := `"` + m.ID().String() + `"`
	path := "/v1/content/" + m.ID().String()
	n := len(data)
	for _, tc := range []struct {
		name      string
		hdr       []string
		wantCode  int
		wantBody  []byte
		wantRange string
	}{
		{"start", []string{"Range", "bytes=0-99"}, 206, data[:100], "bytes 0-99/10000"},
		{"middle", []string{"Range", "bytes=4000-4999"}, 206, data[4000:5000], "bytes 4000-4999/10000"},
		{"end", []string{"Range", "bytes=9990-9999"}, 206, data[9990:], "bytes 9990-9999/10000"},
		{"open-ended", []string{"Range", "bytes=9000-"}, 206, data[9000:], "bytes 9000-9999/10000"},
		{"suffix", []string{"Range", "bytes=-10"}, 206, data[n-10:], "bytes 9990-9999/10000"},
		{"end past size is clipped", []string{"Range", "bytes=9995-20000"}, 206, data[9995:], "bytes 9995-9999/10000"},
		{"single byte", []string{"Range", "bytes=5-5"}, 206, data[5:6], "bytes 5-5/10000"},
		{"beyond end", []string{"Range", "bytes=10000-"}, 416, nil, "bytes */10000"},
		{"malformed", []string{"Range", "bytes=abc"}, 416, nil, ""},
		{"reversed", []string{"Range", "bytes=50-10"}, 416, nil, ""},
		{"If-Range matches ETag", []string{"Range", "bytes=0-9", "If-Range", etag}, 206, data[:10], "bytes 0-9/10000"},
		{"If-Range mismatch: full", []string{"Range", "bytes=0-9", "If-Range", `"0000"`}, 200, data, ""},
		{"If-Range matching date", []string{"Range", "bytes=0-9", "If-Range", m.Created.Format(http.TimeFormat)}, 206, data[:10], "bytes 0-9/10000"},
		{"If-Range older date: full", []string{"Range", "bytes=0-9", "If-Range", m.Created.Add(-time.Hour).Format(http.TimeFormat)}, 200, data, ""},
		{"If-None-Match", []string{"If-None-Match", etag}, 304, nil, ""},
		{"If-Match other", []string{"If-Match", `"nope"`}, 412, nil, ""},
		{"too many ranges: full", []string{"Range", "bytes=" + strings.Repeat("1-1,", 40) + "2-2"}, 200, data, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := f.do(t, "GET", path, "", nil, tc.hdr...)
			if resp.StatusCode != tc.wantCode {
				t.Fatalf("status = %s, want %d", resp.Status, tc.wantCode)
			}
			if tc.wantBody != nil && !bytes.Equal(b, tc.wantBody) {
				t.Errorf("body = %d bytes, want %d", len(b), len(tc.wantBody))
			}
			if got := resp.Header.Get("Content-Range"); got != tc.wantRange {
				t.Errorf("Content-Range = %q, want %q", got, tc.wantRange)
			}
		})
	}
	t.Run("multiple ranges", func(t *testing.T) {
		resp, b := f.do(t, "GET", path, "", nil, "Range", "bytes=0-9,5000-5009,-5")
		if resp.StatusCode != 206 {
			t.Fatalf("status = %s", resp.Status)
		}
		mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
		if err != nil || mt != "multipart/byteranges" {
			t.Fatalf("Content-Type = %q", resp.Header.Get("Content-Type"))
		}
		mr := multipart.NewReader(bytes.NewReader(b), params["boundary"])
		want := []struct {
			cr   string
			body []byte
		}{{"bytes 0-9/10000", data[:10]}, {"bytes 5000-5009/10000", data[5000:5010]}, {"bytes 9995-9999/10000", data[9995:]}}
		for i, w := range want {
			p, err := mr.NextPart()
			if err != nil {
				t.Fatalf("part %d: %v", i, err)
			}
			pb, _ := io.ReadAll(p)
			if p.Header.Get("Content-Range") != w.cr || !bytes.Equal(pb, w.body) {
				t.Errorf("part %d: Content-Range %q, %d bytes; want %q", i, p.Header.Get("Content-Range"), len(pb), w.cr)
			}
		}
		if _, err := mr.NextPart(); err != io.EOF {
			t.Errorf("extra part: %v", err)
		}
	})
}

func TestAuthorization(t *testing.T) {
	f := newFixture(t, nil)
	dataA := randBytes(3, 5000)
	mA := signed(t, "alpha", "a.bin", dataA, keyAlpha)
	f.publish(t, "alpha", tokenAlpha, mA, dataA)
	dataB := randBytes(4, 5000)
	mB := signed(t, "beta", "b.bin", dataB, keyBeta)
	mBPending := signed(t, "beta", "pending.bin", dataB[:100], keyBeta)
	if resp, b := f.do(t, "PUT", "/v1/properties/beta/manifests", tokenBeta, bytes.NewReader(mBPending.Encoded())); resp.StatusCode != 201 {
		t.Fatalf("PUT beta manifest: %s %s", resp.Status, b)
	}
	mAlphaByOther := signed(t, "alpha", "evil.bin", dataA, keyOther)
	mAlphaByBeta := signed(t, "alpha", "evil.bin", dataA, keyBeta)
	idA, idBp := mA.ID().String(), mBPending.ID().String()

	for _, tc := range []struct {
		name       string
		method     string
		path       string
		token      string
		authScheme string
		body       []byte
		want       int
	}{
		{"no token", "PUT", "/v1/properties/alpha/manifests", "", "", mA.Encoded(), 401},
		{"wrong token", "PUT", "/v1/properties/alpha/manifests", "alpha-token-0123456780", "", mA.Encoded(), 401},
		{"basic auth", "PUT", "/v1/properties/alpha/manifests", tokenAlpha, "Basic", mA.Encoded(), 401},
		{"unknown property", "PUT", "/v1/properties/gamma/manifests", tokenAlpha, "", mA.Encoded(), 403},
		{"alpha token puts beta manifest", "PUT", "/v1/properties/beta/manifests", tokenAlpha, "", mB.Encoded(), 403},
		{"alpha token uploads beta content", "PUT", "/v1/properties/beta/content/" + idBp, tokenAlpha, "", dataB[:100], 403},
		{"alpha token lists beta", "GET", "/v1/properties/beta/content", tokenAlpha, "", nil, 403},
		{"alpha token stats beta", "GET", "/v1/properties/beta/content/" + idBp, tokenAlpha, "", nil, 403},
		{"alpha token deletes beta", "DELETE", "/v1/properties/beta/content/" + idBp, tokenAlpha, "", nil, 403},
		{"beta content through alpha path", "PUT", "/v1/properties/alpha/content/" + idBp, tokenAlpha, "", dataB[:100], 404},
		{"beta content deleted through alpha path", "DELETE", "/v1/properties/alpha/content/" + idBp, tokenAlpha, "", nil, 404},
		{"beta token deletes alpha", "DELETE", "/v1/properties/alpha/content/" + idA, tokenBeta, "", nil, 403},
		{"beta manifest under alpha", "PUT", "/v1/properties/alpha/manifests", tokenAlpha, "", mB.Encoded(), 400},
		{"publisher key not allowed", "PUT", "/v1/properties/alpha/manifests", tokenAlpha, "", mAlphaByOther.Encoded(), 403},
		{"other property's key not allowed", "PUT", "/v1/properties/alpha/manifests", tokenAlpha, "", mAlphaByBeta.Encoded(), 403},
		{"garbage manifest", "PUT", "/v1/properties/alpha/manifests", tokenAlpha, "", []byte("hello"), 400},
		{"unsigned manifest", "PUT", "/v1/properties/alpha/manifests", tokenAlpha, "", mA.Encoded()[:len(mA.Encoded())-ed25519.SignatureSize], 400},
		{"bad signature", "PUT", "/v1/properties/alpha/manifests", tokenAlpha, "", append(bytes.Clone(mA.Encoded()[:len(mA.Encoded())-1]), mA.Encoded()[len(mA.Encoded())-1]^1), 400},
		{"bad content ID", "PUT", "/v1/properties/alpha/content/xyz", tokenAlpha, "", dataA, 400},
		{"unknown content", "PUT", "/v1/properties/alpha/content/" + mB.ID().String(), tokenAlpha, "", dataB, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, f.srv.URL+tc.path, bytes.NewReader(tc.body))
			if tc.token != "" {
				scheme := "Bearer"
				if tc.authScheme != "" {
					scheme = tc.authScheme
				}
				req.Header.Set("Authorization", scheme+" "+tc.token)
			}
			resp, err := f.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %s %s, want %d", resp.Status, b, tc.want)
			}
			var eb errorBody
			if err := json.Unmarshal(b, &eb); err != nil || eb.Error == "" || eb.Status != tc.want {
				t.Errorf("error body = %s", b)
			}
			if tc.want == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
		})
	}
	// Nothing of the above changed what is stored.
	if got := f.o.store.List(""); len(got) != 2 {
		t.Errorf("store holds %d objects, want 2: %+v", len(got), got)
	}
	if resp, _ := f.do(t, "GET", "/v1/content/"+idA, "", nil); resp.StatusCode != 200 {
		t.Errorf("alpha content after the attempts: %s", resp.Status)
	}
	if strings.Contains(f.log.String(), tokenAlpha) || strings.Contains(f.log.String(), tokenBeta) || strings.Contains(f.log.String(), "0123456780") {
		t.Error("a token appears in the logs")
	}
}

func TestUploadRejected(t *testing.T) {
	data := randBytes(5, 3*testK*testBS)
	bad := bytes.Clone(data)
	bad[len(bad)/2] ^= 1
	for _, tc := range []struct {
		name string
		body io.Reader
		cl   int64 // 0: from body; -1: chunked
		want int
	}{
		{"corrupted on the wire", bytes.NewReader(bad), 0, 422},
		{"corrupted, chunked", struct{ io.Reader }{bytes.NewReader(bad)}, -1, 422},
		{"short Content-Length", bytes.NewReader(data[:100]), 0, 400},
		{"short, chunked", struct{ io.Reader }{bytes.NewReader(data[:100])}, -1, 400},
		{"long, chunked", struct{ io.Reader }{io.MultiReader(bytes.NewReader(data), strings.NewReader("extra"))}, -1, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, nil)
			m := signed(t, "alpha", "u.bin", data, keyAlpha)
			if resp, b := f.do(t, "PUT", "/v1/properties/alpha/manifests", tokenAlpha, bytes.NewReader(m.Encoded())); resp.StatusCode != 201 {
				t.Fatalf("PUT manifest: %s %s", resp.Status, b)
			}
			req, _ := http.NewRequest("PUT", f.srv.URL+"/v1/properties/alpha/content/"+m.ID().String(), tc.body)
			req.Header.Set("Authorization", "Bearer "+tokenAlpha)
			if tc.cl == -1 {
				req.ContentLength = -1
			}
			resp, err := f.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("PUT content = %s %s, want %d", resp.Status, b, tc.want)
			}
			f.assertNotVisible(t, m)
		})
	}
}

// assertNotVisible checks that m's content is neither served nor committed
// and that no temporary file remains.
func (f *fixture) assertNotVisible(t *testing.T, m *manifest.Manifest) {
	t.Helper()
	if resp, _ := f.do(t, "GET", "/v1/content/"+m.ID().String(), "", nil); resp.StatusCode != 404 {
		t.Errorf("GET content after failed upload = %s, want 404", resp.Status)
	}
	if _, err := f.o.Open(m.ID()); !errors.Is(err, contentstore.ErrIncomplete) {
		t.Errorf("Open after failed upload: %v, want ErrIncomplete", err)
	}
	// The handler may still be cleaning up after the client saw the
	// response; wait briefly for tmp/ to empty.
	deadline := time.Now().Add(5 * time.Second)
	for {
		ents, _ := os.ReadDir(filepath.Join(f.dir, "tmp"))
		if len(ents) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("tmp/ still holds %d files", len(ents))
		}
		time.Sleep(10 * time.Millisecond)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.published) != 0 {
		t.Errorf("OnPublish was called for a failed upload")
	}
}

// TestUploadCutOff sends part of an upload over a raw TCP connection and
// hangs up, or stalls past the idle timeout: nothing may become visible.
func TestUploadCutOff(t *testing.T) {
	data := randBytes(6, 8*testK*testBS)
	for _, tc := range []struct {
		name  string
		stall bool
	}{
		{"hang up", false},
		{"stall", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(c *Config) { c.UploadIdleTimeout = 200 * time.Millisecond })
			m := signed(t, "alpha", "cut.bin", data, keyAlpha)
			if resp, b := f.do(t, "PUT", "/v1/properties/alpha/manifests", tokenAlpha, bytes.NewReader(m.Encoded())); resp.StatusCode != 201 {
				t.Fatalf("PUT manifest: %s %s", resp.Status, b)
			}
			conn, err := net.Dial("tcp", f.srv.Listener.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			fmt.Fprintf(conn, "PUT /v1/properties/alpha/content/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Length: %d\r\n\r\n", m.ID(), tokenAlpha, len(data))
			conn.Write(data[:len(data)/2])
			if tc.stall {
				conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
				if err != nil {
					t.Fatalf("no response to a stalled upload: %v", err)
				}
				if resp.StatusCode != http.StatusRequestTimeout {
					t.Errorf("stalled upload = %s, want 408", resp.Status)
				}
			} else {
				time.Sleep(50 * time.Millisecond)
				conn.Close()
			}
			f.assertNotVisible(t, m)
		})
	}
}

func TestRestartCleansTemp(t *testing.T) {
	f := newFixture(t, nil)
	data := randBytes(7, 5000)
	m := signed(t, "alpha", "keep.bin", data, keyAlpha)
	f.publish(t, "alpha", tokenAlpha, m, data)
	f.srv.Close()
	f.o.Close()
	leftover := filepath.Join(f.dir, "tmp", "deadbeef.1.part")
	if err := os.WriteFile(leftover, data[:10], 0o644); err != nil {
		t.Fatal(err)
	}
	f2 := newFixture(t, func(c *Config) { c.DataDir = f.dir })
	if _, err := os.Stat(leftover); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover temp file survived a restart: %v", err)
	}
	if resp, b := f2.do(t, "GET", "/v1/content/"+m.ID().String(), "", nil); resp.StatusCode != 200 || !bytes.Equal(b, data) {
		t.Errorf("content after restart = %s", resp.Status)
	}
}

func TestDelete(t *testing.T) {
	f := newFixture(t, nil)
	data := randBytes(8, 5000)
	m := signed(t, "alpha", "del.bin", data, keyAlpha)
	f.publish(t, "alpha", tokenAlpha, m, data)
	path := "/v1/properties/alpha/content/" + m.ID().String()
	if resp, b := f.do(t, "DELETE", path, tokenAlpha, nil); resp.StatusCode != 204 {
		t.Fatalf("DELETE = %s %s", resp.Status, b)
	}
	if resp, _ := f.do(t, "DELETE", path, tokenAlpha, nil); resp.StatusCode != 404 {
		t.Errorf("second DELETE = %s, want 404", resp.Status)
	}
	if resp, _ := f.do(t, "GET", "/v1/content/"+m.ID().String(), "", nil); resp.StatusCode != 404 {
		t.Errorf("GET after DELETE = %s, want 404", resp.Status)
	}
	f.mu.Lock()
	if len(f.deleted) != 1 || f.deleted[0] != m.ID() {
		t.Errorf("OnDelete calls = %v", f.deleted)
	}
	f.mu.Unlock()
	// Publishing again works.
	f.publish(t, "alpha", tokenAlpha, m, data)
}

func TestQuotaOverHTTP(t *testing.T) {
	f := newFixture(t, nil) // beta has a 64 KiB quota
	small := randBytes(9, 30<<10)
	f.publish(t, "beta", tokenBeta, signed(t, "beta", "1.bin", small, keyBeta), small)
	big := randBytes(10, 40<<10)
	resp, b := f.do(t, "PUT", "/v1/properties/beta/manifests", tokenBeta, bytes.NewReader(signed(t, "beta", "2.bin", big, keyBeta).Encoded()))
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(string(b), "quota") {
		t.Fatalf("over quota = %s %s, want 413 mentioning the quota", resp.Status, b)
	}
}

func TestManifestSizeLimit(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxManifestBytes = 100 })
	m := signed(t, "alpha", "x.bin", randBytes(11, 5000), keyAlpha)
	resp, b := f.do(t, "PUT", "/v1/properties/alpha/manifests", tokenAlpha, bytes.NewReader(m.Encoded()))
	if resp.StatusCode != 413 {
		t.Errorf("oversized manifest = %s %s, want 413", resp.Status, b)
	}
	resp, b = f.do(t, "PUT", "/v1/properties/alpha/manifests", tokenAlpha, struct{ io.Reader }{bytes.NewReader(m.Encoded())})
	if resp.StatusCode != 413 {
		t.Errorf("oversized chunked manifest = %s %s, want 413", resp.Status, b)
	}
}

func TestHealthzMetricsAndHook(t *testing.T) {
	f := newFixture(t, nil)
	f.o.Handle("GET /v1/extra/{x}", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "extra "+r.PathValue("x"))
	}))
	data := randBytes(12, 3000)
	f.publish(t, "alpha", tokenAlpha, signed(t, "alpha", "m.bin", data, keyAlpha), data)
	if resp, b := f.do(t, "GET", "/healthz", "", nil); resp.StatusCode != 200 || string(b) != "ok\n" {
		t.Errorf("healthz = %s %q", resp.Status, b)
	}
	if resp, b := f.do(t, "GET", "/v1/extra/42", "", nil); resp.StatusCode != 200 || string(b) != "extra 42" {
		t.Errorf("extra handler = %s %q", resp.Status, b)
	}
	resp, b := f.do(t, "GET", "/metrics", "", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("metrics = %s", resp.Status)
	}
	for _, want := range []string{
		`avalanche_origin_http_requests_total{code="200",route="GET /healthz"} 1`,
		`avalanche_origin_http_requests_total{code="200",route="GET /v1/extra/{x}"} 1`,
		`avalanche_origin_publish_total{kind="content",property="alpha",result="created"} 1`,
		`avalanche_origin_upload_bytes_total{property="alpha"} 3000`,
		`avalanche_origin_objects{property="alpha"} 1`,
		`avalanche_origin_http_response_bytes_total`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if !strings.Contains(f.log.String(), `"route":"PUT /v1/properties/{p}/content/{id}"`) {
		t.Errorf("request log lacks the upload: %s", f.log.String())
	}
}

func TestServeGracefulShutdown(t *testing.T) {
	dir := t.TempDir()
	o, err := New(context.Background(), Config{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Serve(ctx, ln) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve = %v, want nil after shutdown", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if _, err := http.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		t.Error("server still answers after shutdown")
	}
}

func TestTwoOriginsInOneProcess(t *testing.T) {
	a := newFixture(t, nil)
	b := newFixture(t, nil)
	data := randBytes(13, 1000)
	m := signed(t, "alpha", "two.bin", data, keyAlpha)
	a.publish(t, "alpha", tokenAlpha, m, data)
	if resp, _ := b.do(t, "GET", "/v1/content/"+m.ID().String(), "", nil); resp.StatusCode != 404 {
		t.Errorf("second origin serves the first one's content: %s", resp.Status)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no data dir", Config{}},
		{"bad property name", Config{DataDir: t.TempDir(), Properties: []Property{{Name: "Bad Name"}}}},
		{"duplicate property", Config{DataDir: t.TempDir(), Properties: []Property{{Name: "a"}, {Name: "a"}}}},
		{"shared token", Config{DataDir: t.TempDir(), Properties: []Property{{Name: "a", Tokens: []Token{HashToken(tokenAlpha)}}, {Name: "b", Tokens: []Token{HashToken(tokenAlpha)}}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(context.Background(), tc.cfg); !errors.Is(err, ErrConfig) {
				t.Errorf("New: err = %v, want ErrConfig", err)
			}
		})
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// TestExpectContinue: a refused upload that asked for 100-continue is
// answered before its body is sent.
func TestExpectContinue(t *testing.T) {
	f := newFixture(t, nil)
	data := randBytes(14, 100000)
	m := signed(t, "alpha", "e.bin", data, keyAlpha)
	if resp, b := f.do(t, "PUT", "/v1/properties/alpha/manifests", tokenAlpha, bytes.NewReader(m.Encoded())); resp.StatusCode != 201 {
		t.Fatalf("PUT manifest: %s %s", resp.Status, b)
	}
	client := &http.Client{Transport: &http.Transport{ExpectContinueTimeout: 10 * time.Second}}
	for _, tc := range []struct {
		name  string
		token string
		want  int
		sent  bool
	}{
		{"bad token", "nope-nope-nope-nope", 401, false},
		{"other property", tokenBeta, 403, false},
		{"good token", tokenAlpha, 201, true},
		{"already complete", tokenAlpha, 200, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := &countingReader{r: bytes.NewReader(data)}
			req, _ := http.NewRequest("PUT", f.srv.URL+"/v1/properties/alpha/content/"+m.ID().String(), body)
			req.ContentLength = int64(len(data))
			req.Header.Set("Authorization", "Bearer "+tc.token)
			req.Header.Set("Expect", "100-continue")
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %s, want %d", resp.Status, tc.want)
			}
			if sent := body.n > 0; sent != tc.sent {
				t.Errorf("body bytes sent = %d, want sent = %v", body.n, tc.sent)
			}
		})
	}
}
