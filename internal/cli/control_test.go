package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"avalanche/internal/traffic"
	"avalanche/internal/traffic/traffictest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestControlCommand(t *testing.T) {
	dir := t.TempDir()
	mapFile := filepath.Join(dir, "map.csv")
	os.WriteFile(mapFile, []byte(traffictest.MapCSV), 0o644)
	polFile := filepath.Join(dir, "policies.json")
	os.WriteFile(polFile, []byte(`[{"name":"devtools","ttl_seconds":10},{"name":"docs","origin":"https://origin.example.net"}]`), 0o644)
	httpAddr := freeAddr(t)
	var dnsAddr string
	for {
		dnsAddr = freeAddr(t)
		if pc, err := net.ListenPacket("udp", dnsAddr); err == nil {
			pc.Close()
			break
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	var stderr bytes.Buffer
	env := &Env{Stdout: io.Discard, Stderr: &stderr, Getenv: func(k string) string {
		if k == "AVALANCHE_EDGE_TOKEN" {
			return "edge-secret"
		}
		return ""
	}}
	done := make(chan error, 1)
	go func() {
		done <- runControl(ctx, env, []string{"-http", httpAddr, "-dns", dnsAddr, "-zone", "cdn.test",
			"-netmap", mapFile, "-policies", polFile, "-node-id", "cli-test", "-probe-interval", "1s"})
	}()
	base := "http://" + httpAddr
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("control did not come up: %v\n%s", err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Probes are on: the edges must be live servers on loopback.
	edges, srvs, err := traffictest.StartEdges(traffictest.Edges())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		for _, s := range srvs {
			s.Kill()
		}
	}()
	c := &traffic.Client{BaseURL: base, Token: "edge-secret"}
	for _, e := range edges {
		if _, err := c.Heartbeat(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	// Heartbeats reach the routing snapshot at the next sync; poll briefly.
	var d traffic.Decision
	for wait := time.Now().Add(5 * time.Second); ; {
		resp, err := http.Get(base + "/v1/route?property=devtools&client=198.51.100.7&n=1")
		if err != nil {
			t.Fatal(err)
		}
		d = traffic.Decision{}
		json.NewDecoder(resp.Body).Decode(&d)
		resp.Body.Close()
		// The snapshot may hold only some of the heartbeats yet: wait for
		// the answer every edge being known gives.
		if len(d.Edges) > 0 && d.Edges[0].ID == "nyc-1" || time.Now().After(wait) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if len(d.Edges) != 1 || d.Edges[0].ID != "nyc-1" || d.TTLSeconds != 10 {
		t.Errorf("route = %+v", d)
	}
	q := new(dns.Msg)
	q.SetQuestion("docs.cdn.test.", dns.TypeA)
	r, _, err := (&dns.Client{Net: "tcp", Timeout: 2 * time.Second}).Exchange(q, dnsAddr)
	if err != nil || len(r.Answer) != 1 {
		t.Errorf("DNS over TCP = %v, %v", r, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("control returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("control did not stop")
	}
	if !strings.Contains(stderr.String(), "control node serving") {
		t.Errorf("log lacks the start line:\n%s", stderr.String())
	}
}

func TestControlFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-probe-interval", "soon"},
		{"extra-arg"},
		{"-policies", "/nonexistent/p.json", "-http", "127.0.0.1:0", "-dns", ""},
		{"-netmap", "/nonexistent/map.csv"},
	} {
		env := &Env{Stdout: io.Discard, Stderr: io.Discard}
		if err := runControl(context.Background(), env, args); err == nil {
			t.Errorf("control %v succeeded", args)
		}
	}
}

func TestBenchRouteJSON(t *testing.T) {
	var out bytes.Buffer
	env := &Env{Stdout: &out, Stderr: io.Discard}
	if err := runBenchRoute(context.Background(), env, []string{"-json", "-duration", "100ms", "-concurrency", "2"}); err != nil {
		t.Fatal(err)
	}
	var got map[string]float64
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("output %q: %v", out.String(), err)
	}
	if len(got) != 2 || got["decisions_per_second"] <= 0 || got["p99_microseconds"] <= 0 {
		t.Errorf("bench route --json = %v", got)
	}
	if err := runBenchRoute(context.Background(), env, []string{"-concurrency", "0"}); err == nil {
		t.Error("-concurrency 0 accepted")
	}
}
