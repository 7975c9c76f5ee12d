package control_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"avalanche/internal/control"
	"avalanche/internal/netmap"
	"avalanche/internal/tracker"
	"avalanche/internal/traffic"
	"avalanche/internal/traffic/traffictest"
)

type node struct {
	s    *control.Server
	url  string
	dns  string
	stop func()
}

func start(t *testing.T) *node {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := control.New(ctx, control.Config{
		Traffic: traffic.Config{Map: traffictest.Map(), DisableProbes: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	// A tracker-like component mounted beside the traffic manager.
	s.Handle("GET /v1/tracker/ping", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "pong") }))
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx, control.Listeners{HTTP: hl, DNSUDP: pc}) }()
	n := &node{s: s, url: "http://" + hl.Addr().String(), dns: pc.LocalAddr().String()}
	n.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	}
	t.Cleanup(func() {
		if n.stop != nil {
			n.stop()
		}
	})
	return n
}

func body(t *testing.T, u string) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServer(t *testing.T) {
	// Two control nodes in one process: nothing global collides.
	a, b := start(t), start(t)
	ctx := context.Background()
	for _, n := range []*node{a, b} {
		c := &traffic.Client{BaseURL: n.url}
		for _, e := range traffictest.Edges() {
			if _, err := c.Heartbeat(ctx, e); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.PutPolicy(ctx, &traffic.Policy{Name: "devtools"}); err != nil {
			t.Fatal(err)
		}
	}
	code, hz := body(t, a.url+"/healthz")
	var h struct {
		Status     string `json:"status"`
		Edges      int    `json:"edges"`
		Properties int    `json:"properties"`
	}
	if code != 200 || json.Unmarshal([]byte(hz), &h) != nil || h.Status != "ok" || h.Edges != 6 || h.Properties != 1 {
		t.Errorf("/healthz = %d %s", code, hz)
	}
	if _, got := body(t, a.url+"/v1/tracker/ping"); got != "pong" {
		t.Errorf("mounted handler = %q", got)
	}
	d, err := (&traffic.Client{BaseURL: a.url}).Route(ctx, "devtools", "x")
	if err != nil || len(d.Edges) == 0 {
		t.Errorf("Route = %+v, %v", d, err)
	}
	// DNS on the same node.
	q := new(dns.Msg)
	q.SetQuestion("devtools.avalanche.test.", dns.TypeA)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(q, a.dns)
	if err != nil || r.Rcode != dns.RcodeSuccess || len(r.Answer) != 1 {
		t.Errorf("DNS = %v, %v", r, err)
	}
	_, metrics := body(t, a.url+"/metrics")
	for _, want := range []string{
		`avalanche_traffic_decisions_total{outcome="edge"} 2`, // one HTTP, one DNS
		`avalanche_traffic_edges{status="healthy"} 6`,
		`avalanche_dns_queries_total{rcode="NOERROR"} 1`,
		`avalanche_traffic_http_requests_total{code_class="2xx",endpoint="route"} 1`,
		"go_goroutines",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// Each node keeps its own state (no shared store configured).
	if _, m := body(t, b.url+"/metrics"); strings.Contains(m, `avalanche_traffic_decisions_total{outcome="edge"} 1`) {
		t.Error("node b counted node a's decision")
	}
	// A node stops cleanly; the other keeps serving.
	a.stop()
	a.stop = nil
	if _, err := http.Get(a.url + "/healthz"); err == nil {
		t.Error("stopped node still serves")
	}
	if code, _ := body(t, b.url+"/healthz"); code != 200 {
		t.Errorf("node b after a stopped: %d", code)
	}
}

// TestMountTracker mounts the real tracker beside the traffic manager, as
// `avalanche control` will, and checks that the patterns coexist.
func TestMountTracker(t *testing.T) {
	ctx := context.Background()
	// One reloadable network map serves both.
	nm, err := netmap.NewWatcher(netmap.WatcherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := control.New(ctx, control.Config{Traffic: traffic.Config{Map: nm, DisableProbes: true}})
	if err != nil {
		t.Fatal(err)
	}
	tr, err := tracker.New(tracker.Config{Map: nm})
	if err != nil {
		t.Fatal(err)
	}
	h := tr.Handler()
	for _, p := range []string{"POST " + tracker.AnnouncePath, "POST " + tracker.ReportPath, "GET " + tracker.StatsPath} {
		s.Handle(p, h)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	if err := s.Traffic().PutPolicy(ctx, &traffic.Policy{Name: "devtools", Origin: "http://127.0.0.1:9"}); err != nil {
		t.Fatal(err)
	}
	if code, b := body(t, srv.URL+tracker.StatsPath); code != 200 {
		t.Errorf("GET %s = %d %s", tracker.StatsPath, code, b)
	}
	if code, b := body(t, srv.URL+"/v1/route?property=devtools"); code != 200 || !strings.Contains(b, "origin") {
		t.Errorf("GET /v1/route = %d %s", code, b)
	}
	if code, _ := body(t, srv.URL+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
}
