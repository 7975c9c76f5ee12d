package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestEdgeCommand starts `avalanche edge` in-process with a config file
// and a disk tier, fetches through it and checks the admin listener.
func TestEdgeCommand(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		fmt.Fprint(w, "from origin")
	}))
	defer origin.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "edge.json")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`{"node_id":"t1","properties":[{"name":"p","origin":%q}]}`, origin.URL)), 0o644)
	var stderr lockedBuf
	var stdout bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- Main(ctx, []string{"edge", "--config", cfg, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
			"--cache-dir", filepath.Join(dir, "cache"), "--mem", "8MiB"}, strings.NewReader(""), &stdout, &stderr)
	}()
	re := regexp.MustCompile(`addr=(\S+) admin=(\S+)`)
	var m []string
	for i := 0; i < 500 && m == nil; i++ {
		time.Sleep(20 * time.Millisecond)
		m = re.FindStringSubmatch(stderr.String())
	}
	if m == nil {
		cancel()
		t.Fatalf("edge did not start: %s", stderr.String())
	}
	for i := 0; i < 2; i++ {
		resp, err := http.Get("http://" + m[1] + "/x")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "from origin" {
			t.Errorf("body = %q", b)
		}
		if i == 1 && !strings.Contains(resp.Header.Get("Cache-Status"), "t1; hit") {
			t.Errorf("second fetch Cache-Status = %q, want a hit from node t1", resp.Header.Get("Cache-Status"))
		}
	}
	resp, err := http.Get("http://" + m[2] + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("/healthz: %v %v", resp, err)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit code %d: %s", code, stderr.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("edge did not stop")
	}
}

// TestEdgeReloadOnSIGHUP rewrites the configuration, sends SIGHUP to the
// test process (the command has claimed the signal) and checks that the
// new property is served over a connection opened before the reload.
func TestEdgeReloadOnSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("signals the test process")
	}
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer origin.Close()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "edge.json")
	write := func(hosts string) {
		os.WriteFile(cfg, []byte(fmt.Sprintf(`{"properties":[{"name":"p","hosts":[%s],"origin":%q}]}`, hosts, origin.URL)), 0o644)
	}
	write(`"one.test"`)
	var stderr lockedBuf
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int)
	go func() {
		done <- Main(ctx, []string{"edge", "--config", cfg, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"},
			strings.NewReader(""), io.Discard, &stderr)
	}()
	re := regexp.MustCompile(`addr=(\S+) admin=`)
	var m []string
	for i := 0; i < 500 && m == nil; i++ {
		time.Sleep(20 * time.Millisecond)
		m = re.FindStringSubmatch(stderr.String())
	}
	if m == nil {
		t.Fatalf("edge did not start: %s", stderr.String())
	}
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	status := func(host string) int {
		req, _ := http.NewRequest("GET", "http://"+m[1]+"/", nil)
		req.Host = host
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if status("one.test") != 200 || status("two.test") != 404 {
		t.Fatal("unexpected routing before reload")
	}
	write(`"one.test", "two.test"`)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	for i := 0; i < 500 && !strings.Contains(stderr.String(), "configuration reloaded"); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if status("two.test") != 200 || status("one.test") != 200 {
		t.Errorf("after SIGHUP the new host is not served: %s", stderr.String())
	}
	cancel()
	<-done
}

func TestEdgeCommandBadConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(cfg, []byte(`{"properties":[{"name":"p","origin":"ftp://nope"}]}`), 0o644)
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"edge", "--config", cfg}, nil, &out, &errb); code == 0 {
		t.Errorf("bad config accepted")
	}
}
