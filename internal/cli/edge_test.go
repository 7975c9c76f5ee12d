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
	for i := 0; i < 100 && m == nil; i++ {
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

func TestEdgeCommandBadConfig(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "bad.json")
	os.WriteFile(cfg, []byte(`{"properties":[{"name":"p","origin":"ftp://nope"}]}`), 0o644)
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"edge", "--config", cfg}, nil, &out, &errb); code == 0 {
		t.Errorf("bad config accepted")
	}
}
