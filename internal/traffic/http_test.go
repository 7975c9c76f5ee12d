package traffic_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"avalanche/internal/traffic"
	"avalanche/internal/traffic/traffictest"
)

// apiServer runs a Manager over the synthetic world behind a real HTTP
// server.
func apiServer(t *testing.T, cfg traffic.Config) (*traffic.Manager, *httptest.Server) {
	t.Helper()
	ctx := context.Background()
	cfg.Map = traffictest.Map()
	cfg.DisableProbes = true
	m, err := traffic.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := traffictest.Register(ctx, m, traffictest.Edges()); err != nil {
		t.Fatal(err)
	}
	p, _ := traffic.ParsePolicy([]byte(`{"name":"devtools","origin":"https://origin.example.net","token_sha256":"` + traffic.TokenHash("dev-secret") + `"}`))
	if err := m.PutPolicy(ctx, p); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	return m, srv
}

func TestClientRoute(t *testing.T) {
	_, srv := apiServer(t, traffic.Config{})
	c := &traffic.Client{BaseURL: srv.URL}
	ctx := context.Background()
	// From loopback the answer is made for loopback: the map has no
	// coordinates for it, so every edge is a candidate.
	d, err := c.Route(ctx, "devtools", "builds/1.0/setup.exe")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Edges) != 3 || d.Client != "127.0.0.1" || !strings.HasSuffix(d.Edges[0].URL, "/devtools/builds/1.0/setup.exe") {
		t.Errorf("Route = %+v", d)
	}
	if u, err := c.RouteURL(ctx, "devtools", "/a b"); err != nil || u != d.Edges[0].URL[:strings.LastIndex(d.Edges[0].URL, "/devtools/")]+"/devtools/a%20b" {
		t.Errorf("RouteURL = %q, %v", u, err)
	}
	if _, err := c.Route(ctx, "nope", "x"); !errors.Is(err, traffic.ErrUnknownProperty) {
		t.Errorf("unknown property: %v, want ErrUnknownProperty", err)
	}
	if _, err := c.Route(ctx, "Bad Name", "x"); !errors.Is(err, traffic.ErrInvalid) {
		t.Errorf("bad property: %v, want ErrInvalid", err)
	}
}

func get(t *testing.T, u string, hdr ...string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestRouteParameters(t *testing.T) {
	_, srv := apiServer(t, traffic.Config{})
	long := strings.Repeat("a", 3000)
	tests := []struct {
		name  string
		query string
		code  int
		body  string
	}{
		{"ok", "property=devtools&path=f&client=203.0.113.10", 200, `"id":"dub-2"`},
		{"client from the map", "property=devtools&client=198.51.100.7&n=1", 200, `"id":"nyc-1"`},
		{"ipv6 client", "property=devtools&client=2001:db8:64::9&n=8", 200, `"nyc-1"`},
		{"missing property", "path=f", 400, "not a valid name"},
		{"upper-case property", "property=DevTools", 400, "not a valid name"},
		{"reserved property", "property=v1", 400, "not a valid name"},
		{"huge property", "property=" + strings.Repeat("x", 100), 400, "not a valid name"},
		{"unknown property", "property=nothere", 404, "unknown property"},
		{"n zero", "property=devtools&n=0", 400, "n must be"},
		{"n huge", "property=devtools&n=99999999999999999999", 400, "n must be"},
		{"n not a number", "property=devtools&n=abc", 400, "n must be"},
		{"path too long", "property=devtools&path=" + long, 400, "path longer"},
		{"control char in path", "property=devtools&path=a%00b", 400, "control character"},
		{"query too long", "property=devtools&junk=" + long + long, 400, "query longer"},
		{"client not an IP", "property=devtools&client=example.com", 400, "not an IP"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body, _ := get(t, srv.URL+"/v1/route?"+tc.query)
			if code != tc.code || !strings.Contains(body, tc.body) {
				t.Errorf("GET ?%.60s = %d %s, want %d containing %q", tc.query, code, body, tc.code, tc.body)
			}
		})
	}
}

func TestRedirector(t *testing.T) {
	ctx := context.Background()
	m, srv := apiServer(t, traffic.Config{})
	// A live edge behind the redirect, so that following it fetches bytes.
	es, live, err := traffictest.StartEdges(traffictest.Edges()[1:2])
	if err != nil {
		t.Fatal(err)
	}
	defer live[0].Kill()
	if err := m.Heartbeat(ctx, es[0]); err != nil {
		t.Fatal(err)
	}
	m.Refresh(ctx)

	code, _, hdr := get(t, srv.URL+"/devtools/builds/app.zip?v=2&client=203.0.113.10")
	want := live[0].URL + "/devtools/builds/app.zip?v=2"
	if code != http.StatusFound || hdr.Get("Location") != want {
		t.Fatalf("redirect = %d to %q, want 302 to %q", code, hdr.Get("Location"), want)
	}
	// Escaped characters survive the trip.
	code, _, hdr = get(t, srv.URL+"/devtools/dir/a%20b%3F.zip?client=203.0.113.10")
	if want := live[0].URL + "/devtools/dir/a%20b%3F.zip"; code != http.StatusFound || hdr.Get("Location") != want {
		t.Errorf("redirect = %d to %q, want %q", code, hdr.Get("Location"), want)
	}
	// curl -L: a client that follows redirects gets the edge's content.
	resp, err := http.Get(srv.URL + "/devtools/builds/app.zip?client=203.0.113.10")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "edge dub-2: /devtools/builds/app.zip\n" {
		t.Errorf("followed redirect body = %q", body)
	}
	// Nothing eligible: redirect to the origin.
	for _, e := range traffictest.Edges() {
		m.Drain(ctx, e.ID, true, "test")
	}
	code, _, hdr = get(t, srv.URL+"/devtools/a/b")
	if code != http.StatusFound || hdr.Get("Location") != "https://origin.example.net/a/b" {
		t.Errorf("origin fallback = %d %q", code, hdr.Get("Location"))
	}
	code, _, _ = get(t, srv.URL+"/unknownprop/a")
	if code != http.StatusNotFound {
		t.Errorf("unknown property redirect = %d, want 404", code)
	}
}

func TestUntrustedClients(t *testing.T) {
	_, srv := apiServer(t, traffic.Config{TrustedProxies: []netip.Prefix{}, RateLimit: 5, RateBurst: 5})
	code, body, _ := get(t, srv.URL+"/v1/route?property=devtools&client=203.0.113.10")
	if code != http.StatusUnauthorized || !strings.Contains(body, "trusted proxies") {
		t.Errorf("client parameter from an untrusted address = %d %s, want 401", code, body)
	}
	limited := false
	for range 10 {
		if code, _, _ := get(t, srv.URL+"/v1/route?property=devtools"); code == http.StatusTooManyRequests {
			limited = true
		}
	}
	if !limited {
		t.Error("11 requests at a limit of 5/s with burst 5 were never rate limited")
	}
}

func TestAdminAuth(t *testing.T) {
	m, srv := apiServer(t, traffic.Config{AdminToken: "root-secret", EdgeToken: "edge-secret"})
	ctx := context.Background()
	admin := &traffic.Client{BaseURL: srv.URL, Token: "root-secret"}
	dev := &traffic.Client{BaseURL: srv.URL, Token: "dev-secret"}
	anon := &traffic.Client{BaseURL: srv.URL}
	edge := &traffic.Client{BaseURL: srv.URL, Token: "edge-secret"}

	if _, err := anon.Edges(ctx); !errors.Is(err, traffic.ErrUnauthorized) {
		t.Errorf("anonymous edge list: %v", err)
	}
	if _, err := dev.Edges(ctx); !errors.Is(err, traffic.ErrUnauthorized) {
		t.Errorf("property token on the edge list: %v", err)
	}
	st, err := admin.Edges(ctx)
	if err != nil || len(st) != 6 || st[0].Status != "healthy" {
		t.Fatalf("admin edge list: %v, %v", st, err)
	}
	// Heartbeats need the edge token.
	e := traffictest.Edges()[0]
	if _, err := anon.Heartbeat(ctx, e); !errors.Is(err, traffic.ErrUnauthorized) {
		t.Errorf("anonymous heartbeat: %v", err)
	}
	if iv, err := edge.Heartbeat(ctx, e); err != nil || iv <= 0 {
		t.Errorf("heartbeat: %v, %v", iv, err)
	}
	e.ID = "Bad ID"
	if _, err := edge.Heartbeat(ctx, e); !errors.Is(err, traffic.ErrInvalid) {
		t.Errorf("bad heartbeat: %v", err)
	}
	// The property token manages its own property only.
	p, _ := m.Policy("devtools")
	p2 := *p
	p2.TTLSeconds = 7
	if err := dev.PutPolicy(ctx, &p2); err != nil {
		t.Errorf("property token updating its policy: %v", err)
	}
	if err := dev.PutPolicy(ctx, &traffic.Policy{Name: "other"}); !errors.Is(err, traffic.ErrUnauthorized) {
		t.Errorf("property token creating another property: %v", err)
	}
	if err := admin.PutPolicy(ctx, &traffic.Policy{Name: "other"}); err != nil {
		t.Errorf("admin creating a property: %v", err)
	}
	if got, _ := m.Policy("devtools"); got.TTLSeconds != 7 {
		t.Errorf("policy not updated: %+v", got)
	}
	if err := admin.Drain(ctx, "nosuch", true, ""); !errors.Is(err, traffic.ErrUnknownProperty) { // 404
		t.Errorf("drain of an unknown edge: %v", err)
	}
	if err := dev.Drain(ctx, "dub-1", true, ""); !errors.Is(err, traffic.ErrUnauthorized) {
		t.Errorf("property token draining an edge: %v", err)
	}
	// Limits and bad bodies.
	huge := `{"id":"x","url":"http://a","peers":["` + strings.Repeat("a", 70000) + `"]}`
	code, _ := do(t, http.MethodPost, srv.URL+"/v1/edges/heartbeat", "edge-secret", huge)
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("huge heartbeat = %d, want 413", code)
	}
	code, body := do(t, http.MethodPut, srv.URL+"/v1/properties/x1", "root-secret", `{"name":"x1","route":{"method":"teleport","targets":[{"edge":"a"}]}}`)
	if code != http.StatusBadRequest || !strings.Contains(body, "unknown method") {
		t.Errorf("bad policy = %d %s", code, body)
	}
	code, _ = do(t, http.MethodPut, srv.URL+"/v1/properties/x2", "root-secret", `{"name":"x3"}`)
	if code != http.StatusBadRequest {
		t.Errorf("mismatched policy name = %d", code)
	}
	code, _ = do(t, http.MethodDelete, srv.URL+"/v1/properties/devtools", "dev-secret", "")
	if code != http.StatusNoContent {
		t.Errorf("delete by property token = %d", code)
	}
}

func do(t *testing.T, method, u, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
