package cli

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"avalanche/internal/identity"
	"avalanche/internal/manifest"
	"avalanche/internal/redistest"
	"avalanche/internal/tracker"
)

// startTracker runs "avalanche tracker args..." in-process and returns its
// base URL and a function that stops it and returns the exit code.
func startTracker(t *testing.T, args ...string) (string, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	env := &Env{Stdin: strings.NewReader(""), Stdout: pw, Stderr: &stderr, Getenv: func(string) string { return "" }}
	done := make(chan int, 1)
	go func() {
		code := run(ctx, env, append([]string{"tracker", "-listen", "127.0.0.1:0"}, args...))
		pw.Close()
		done <- code
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		cancel()
		t.Fatalf("tracker printed nothing (exit %d): %s", <-done, stderr.String())
	}
	go io.Copy(io.Discard, pr)
	i := strings.Index(line, "http://")
	if i < 0 {
		t.Fatalf("no URL in %q", line)
	}
	url := strings.Fields(line[i:])[0]
	stop := func() int {
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(10 * time.Second):
			t.Fatal("tracker did not stop")
			return -1
		}
	}
	return url, stop
}

func TestTrackerCommand(t *testing.T) {
	dir := t.TempDir()
	mapFile := filepath.Join(dir, "map.csv")
	if err := os.WriteFile(mapFile, []byte("prefix,isp,asn,region\n127.0.0.0/8,Home,64512,lab\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"memory", []string{"-netmap", mapFile, "-interval", "2s"}},
		{"redis", []string{"-netmap", mapFile, "-interval", "2s", "-redis", "REDIS"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i, a := range tc.args {
				if a == "REDIS" {
					tc.args[i] = redistest.Start(t)
				}
			}
			url, stop := startTracker(t, tc.args...)
			resp, err := http.Get(url + "/healthz")
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("GET /healthz = %v, %v", resp, err)
			}
			resp.Body.Close()
			var content manifest.ID
			content[0] = 1
			var got tracker.AnnounceResponse
			for range 2 {
				c, err := tracker.NewClient(tracker.ClientConfig{URL: url, Key: identity.Generate()})
				if err != nil {
					t.Fatal(err)
				}
				if got, err = c.Announce(t.Context(), tracker.AnnounceRequest{Content: content, Port: 9000, Left: 1}); err != nil {
					t.Fatalf("Announce = %v", err)
				}
			}
			if got.Interval != 2*time.Second || len(got.Peers) != 1 || got.Peers[0].ISP != "Home" || got.Peers[0].Region != "lab" {
				t.Fatalf("Announce = %+v, want interval 2s and one peer in Home/lab", got)
			}
			if code := stop(); code != 0 {
				t.Fatalf("exit code %d, want 0", code)
			}
		})
	}
}

func TestTrackerCommandErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"missing map", []string{"-netmap", "/nonexistent/map.csv"}, 1},
		{"bad infra ID", []string{"-infra", "xyz"}, 2},
		{"bad proxy", []string{"-trusted-proxy", "10.0.0.0/99"}, 2},
		{"argument", []string{"extra"}, 2},
		{"unreachable redis", []string{"-redis", "127.0.0.1:1"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			env := &Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb}
			if code := run(t.Context(), env, append([]string{"tracker", "-listen", "127.0.0.1:0"}, tc.args...)); code != tc.code {
				t.Fatalf("exit code %d, want %d; stderr %s", code, tc.code, errb.String())
			}
			if errb.Len() == 0 {
				t.Fatalf("no message on stderr")
			}
		})
	}
}
