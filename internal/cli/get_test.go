package cli

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"avalanche/internal/manifest"
	"avalanche/internal/testnet"
	"avalanche/internal/traffic"
)

// TestMain lets a test run this package's command line as a child process
// (to kill it with SIGKILL): with AVALANCHE_CLI_CHILD=1 the test binary is
// the avalanche binary.
func TestMain(m *testing.M) {
	if os.Getenv("AVALANCHE_CLI_CHILD") == "1" {
		os.Exit(Main(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

func testData(n int, seed byte) []byte {
	b := make([]byte, n)
	rand.NewChaCha8([32]byte{seed}).Read(b)
	return b
}

func startTestnet(t *testing.T, originUpload int64) *testnet.Net {
	t.Helper()
	var log *slog.Logger
	if os.Getenv("AVALANCHE_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	n, err := testnet.Start(t.Context(), testnet.Config{Dir: t.TempDir(), OriginUpload: originUpload, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(n.Close)
	return n
}

func publishTest(t *testing.T, n *testnet.Net, data []byte, k, bs int) *manifest.Manifest {
	t.Helper()
	m, err := n.Publish(t.Context(), "payload.bin", data, k, bs)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// lastJSON returns the last JSON object with the given event in out.
func lastJSON(t *testing.T, out, event string) map[string]any {
	t.Helper()
	var found map[string]any
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) == nil && m["event"] == event {
			found = m
		}
	}
	if found == nil {
		t.Fatalf("no %q event in output:\n%s", event, out)
	}
	return found
}

func sha(path string) [32]byte {
	b, _ := os.ReadFile(path)
	return sha256.Sum256(b)
}

// stateGenerations counts the generations a resume state file records.
func stateGenerations(path string) int {
	b, err := os.ReadFile(path)
	if err != nil || len(b) < 41 {
		return 0
	}
	n := 0
	for _, c := range b[41:] {
		for ; c != 0; c &= c - 1 {
			n++
		}
	}
	return n
}

// TestGetResumesAfterKill kills a downloading process with SIGKILL and runs
// the same command again: finished generations are not fetched again, and
// the file appears under its name only once complete and verified.
func TestGetResumesAfterKill(t *testing.T) {
	net := startTestnet(t, 0)
	data := testData(6<<20, 1)
	m := publishTest(t, net, data, 16, 16<<10) // 24 generations of 256 KiB
	out := t.TempDir()
	home := t.TempDir()
	args := []string{"get", m.ID().String(), "--origin", net.OriginURL, "--tracker", net.TrackerURL,
		"-o", out, "--listen", "127.0.0.1:0", "--json"}
	cmd := exec.Command(os.Args[0], append(args, "--download-limit", "512k")...)
	cmd.Env = append(os.Environ(), "AVALANCHE_CLI_CHILD=1", "AVALANCHE_HOME="+home)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(out, m.Name+".partial.state")
	deadline := time.Now().Add(60 * time.Second)
	for stateGenerations(state) < 4 {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("child never recorded 4 generations")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	killedAt := stateGenerations(state)
	if _, err := os.Stat(filepath.Join(out, m.Name)); err == nil {
		t.Fatal("final name exists after the kill")
	}
	if _, err := os.Stat(filepath.Join(out, m.Name+".partial")); err != nil {
		t.Fatalf("no partial file after the kill: %v", err)
	}

	te := newTestEnv(t, map[string]string{"AVALANCHE_HOME": home})
	if code := te.run(args...); code != 0 {
		t.Fatalf("second run exited %d: %s", code, te.stderr.String())
	}
	done := lastJSON(t, te.stdout.String(), "done")
	if complete := lastJSON(t, te.stdout.String(), "complete"); complete["path"] != done["path"] {
		t.Errorf("complete event names %v, done names %v", complete["path"], done["path"])
	}
	resumed := int(done["resumed_generations"].(float64))
	t.Logf("killed with %d generations recorded; the second run resumed %d of %d", killedAt, resumed, m.Generations())
	if resumed < killedAt {
		t.Errorf("resumed %d generations, want at least the %d recorded", resumed, killedAt)
	}
	if sha(filepath.Join(out, m.Name)) != m.FileHash {
		t.Error("resumed download differs from the published file")
	}
	for _, leftover := range []string{m.Name + ".partial", m.Name + ".partial.state"} {
		if _, err := os.Stat(filepath.Join(out, leftover)); err == nil {
			t.Errorf("%s left behind", leftover)
		}
	}
}

// TestGetStream: --stream writes the content to standard output, in order,
// byte for byte.
func TestGetStream(t *testing.T) {
	net := startTestnet(t, 4<<20)
	data := testData(3<<20+12345, 2)
	m := publishTest(t, net, data, 16, 16<<10)
	te := newTestEnv(t, nil)
	code := te.run("get", m.ID().String(), "--origin", net.OriginURL, "--tracker", net.TrackerURL,
		"-o", t.TempDir(), "--listen", "127.0.0.1:0", "--stream", "-q")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, te.stderr.String())
	}
	if got := te.stdout.String(); got != string(data) {
		t.Fatalf("stream output: %d bytes, want the %d published bytes", len(got), len(data))
	}
}

// TestTrackerProbedBesideTheStart: get asks whether the tracker answers
// while it fetches the manifest, not before. The tracker here holds that
// question back until the origin has been asked for the manifest; a get
// that waited for the answer first would be held 5 s. It still announces
// to the tracker once it has joined the swarm.
func TestTrackerProbedBesideTheStart(t *testing.T) {
	net := startTestnet(t, 0)
	m := publishTest(t, net, testData(1<<20, 4), 16, 16<<10)
	manifestAsked := make(chan struct{})
	var once sync.Once
	var heldBack, announced atomic.Bool
	origin := proxyTo(t, net.OriginURL, func(r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/manifest/") {
			once.Do(func() { close(manifestAsked) })
		}
	})
	tracker := proxyTo(t, net.TrackerURL, func(r *http.Request) {
		switch {
		case strings.HasPrefix(r.URL.Path, "/v1/stats"):
			select {
			case <-manifestAsked:
			case <-time.After(5 * time.Second):
				heldBack.Store(true)
			}
		case strings.HasPrefix(r.URL.Path, "/v1/announce"):
			announced.Store(true)
		}
	})
	te := newTestEnv(t, nil)
	code := te.run("get", m.ID().String(), "--origin", origin, "--tracker", tracker,
		"-o", t.TempDir(), "--listen", "127.0.0.1:0", "-q")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, te.stderr.String())
	}
	if heldBack.Load() {
		t.Error("the manifest was asked for only after the tracker answered")
	}
	if !announced.Load() {
		t.Error("never announced to the tracker")
	}
}

// proxyTo returns the URL of a reverse proxy to target that calls see
// with each request before passing it on.
func proxyTo(t *testing.T, target string, see func(*http.Request)) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		see(r)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestGetErrors: clear messages and distinct exit codes.
func TestGetErrors(t *testing.T) {
	net := startTestnet(t, 0)
	m := publishTest(t, net, testData(300<<10, 3), 16, 16<<10)
	file := filepath.Join(t.TempDir(), "plain-file")
	os.WriteFile(file, []byte("x"), 0o644)
	// A server that serves the real manifest with one byte changed.
	tampered := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := append([]byte(nil), m.Encoded()...)
		b[len(b)-70] ^= 1
		w.Write(b)
	}))
	defer tampered.Close()
	unknown := sha256.Sum256([]byte("nothing"))

	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown content", []string{manifest.ID(unknown).String(), "--origin", net.OriginURL}, exitNotFound, "not found"},
		{"unreachable origin", []string{m.ID().String(), "--origin", "http://127.0.0.1:1"}, exitUnreachable, "no source reachable"},
		{"unreachable tracker", []string{m.ID().String(), "--origin", net.OriginURL, "--tracker", "http://127.0.0.1:1"}, exitUnreachable, "tracker"},
		{"bad signature", []string{m.ID().String(), "--origin", tampered.URL}, exitIntegrity, "verification"},
		{"unwritable output", []string{m.ID().String(), "--origin", net.OriginURL, "-o", filepath.Join(file, "sub", "out.bin")}, exitDisk, "cannot write"},
		{"not an ID", []string{"hello"}, 2, "neither a content ID"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			te := newTestEnv(t, nil)
			code := te.run(append([]string{"get", "--listen", "127.0.0.1:0", "-q"}, tc.args...)...)
			t.Logf("exit %d: %s", code, strings.TrimSpace(te.stderr.String()))
			if code != tc.code || !strings.Contains(te.stderr.String(), tc.msg) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, te.stderr.String(), tc.code, tc.msg)
			}
		})
	}
}

// TestGetDiskFull: a full disk is reported as such (exit 6), and nothing
// appears under the final name.
func TestGetDiskFull(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to mount a small tmpfs")
	}
	dir := t.TempDir()
	if err := exec.Command("mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", dir).Run(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v", err)
	}
	defer exec.Command("umount", dir).Run()
	net := startTestnet(t, 0)
	m := publishTest(t, net, testData(3<<20, 4), 16, 16<<10)
	te := newTestEnv(t, nil)
	code := te.run("get", m.ID().String(), "--origin", net.OriginURL, "--listen", "127.0.0.1:0", "-q", "-o", dir)
	t.Logf("exit %d: %s", code, strings.TrimSpace(te.stderr.String()))
	if code != exitDisk || !strings.Contains(te.stderr.String(), "cannot write") {
		t.Errorf("exit %d, stderr %q; want %d", code, te.stderr.String(), exitDisk)
	}
	if _, err := os.Stat(filepath.Join(dir, m.Name)); err == nil {
		t.Error("final name exists")
	}
}

// TestGetViaControl: with --control and --property the traffic manager
// picks the edge, the edge's super-seed and the origin serve the swarm, and
// the control node's tracker introduces peers.
func TestGetViaControl(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	net := startTestnet(t, 1<<20)
	e, err := net.StartEdge(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	m := publishTest(t, net, testData(4<<20, 7), 64, 16<<10)

	dir := t.TempDir()
	pol := filepath.Join(dir, "policies.json")
	os.WriteFile(pol, []byte(`[{"name":"demo","origin":"`+net.OriginURL+`"}]`), 0o644)
	httpAddr := freeAddr(t)
	env := &Env{Stdout: io.Discard, Stderr: io.Discard, Getenv: func(k string) string {
		if k == "AVALANCHE_EDGE_TOKEN" {
			return "edge-secret"
		}
		return ""
	}}
	go runControl(ctx, env, []string{"-http", httpAddr, "-dns", "", "-policies", pol, "-probe-interval", "1h"})
	control := "http://" + httpAddr
	c := &traffic.Client{BaseURL: control, Token: "edge-secret"}
	for deadline := time.Now().Add(10 * time.Second); ; {
		if _, err = c.Heartbeat(ctx, traffic.Edge{ID: "edge-1", URL: e.URL, Region: "local"}); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var sources []string
	for deadline := time.Now().Add(5 * time.Second); len(sources) == 0 || sources[0] != e.URL; {
		if sources, err = routeSources(ctx, control, "demo", m.ID()); err != nil || time.Now().After(deadline) {
			t.Fatalf("route: %v %v", sources, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	te := newTestEnv(t, nil)
	out := t.TempDir()
	code := te.run("get", m.ID().String(), "--control", control, "--property", "demo", "-o", out, "--listen", "127.0.0.1:0", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, te.stderr.String())
	}
	done := lastJSON(t, te.stdout.String(), "done")
	if done["from_edge"].(float64) == 0 {
		t.Errorf("nothing came from the edge: %v", done)
	}
	if sha(filepath.Join(out, m.Name)) != m.FileHash {
		t.Error("copy differs")
	}
}
