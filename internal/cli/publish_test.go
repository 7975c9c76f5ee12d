package cli

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"avalanche/internal/identity"
	"avalanche/internal/origin"
)

// testEnv is an Env over buffers with a private AVALANCHE_HOME and
// AVALANCHE_DATA and the given extra variables.
type testEnv struct {
	Env
	stdout, stderr *lockedBuffer
	vars           map[string]string
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newTestEnv(t *testing.T, vars map[string]string) *testEnv {
	t.Helper()
	te := &testEnv{stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, vars: map[string]string{
		"AVALANCHE_HOME": filepath.Join(t.TempDir(), "home"),
		"AVALANCHE_DATA": filepath.Join(t.TempDir(), "data"),
	}}
	for k, v := range vars {
		te.vars[k] = v
	}
	te.Env = Env{Stdin: strings.NewReader(""), Stdout: te.stdout, Stderr: te.stderr, Getenv: func(k string) string { return te.vars[k] }}
	return te
}

func (te *testEnv) run(args ...string) int { return run(context.Background(), &te.Env, args) }

const testToken = "publish-test-token-0123456789"

// startOrigin runs a real origin on loopback whose property "default"
// accepts testToken and the given publisher keys.
func startOrigin(t *testing.T, pubs ...ed25519.PublicKey) *httptest.Server {
	t.Helper()
	o, err := origin.New(context.Background(), origin.Config{
		DataDir:    t.TempDir(),
		Properties: []origin.Property{{Name: "default", Tokens: []origin.Token{origin.HashToken(testToken)}, Publishers: pubs}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(o.Handler())
	t.Cleanup(func() { srv.Close(); o.Close() })
	return srv
}

func writeTestFile(t *testing.T, n int) (string, []byte) {
	t.Helper()
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(i*7 + i/251)
	}
	p := filepath.Join(t.TempDir(), "release-1.0.tar")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, data
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s = %s", url, resp.Status)
	}
	b, _ := io.ReadAll(resp.Body)
	return b
}

var urlRE = regexp.MustCompile(`(?m)^url +(\S+)$`)

func TestPublishEndToEnd(t *testing.T) {
	te := newTestEnv(t, map[string]string{"AVALANCHE_TOKEN": testToken})
	priv, err := identity.Create(te.defaultPublisherKey(), false)
	if err != nil {
		t.Fatal(err)
	}
	srv := startOrigin(t, priv.Public().(ed25519.PublicKey))
	file, data := writeTestFile(t, 300<<10)

	// FILE first, flags after, as in the README.
	if code := te.run("publish", file, "--origin", srv.URL, "-k", "4", "-block", "4096"); code != 0 {
		t.Fatalf("publish exit %d: %s", code, te.stderr)
	}
	out := te.stdout.String()
	m := urlRE.FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, "published release-1.0.tar") {
		t.Fatalf("publish output:\n%s", out)
	}
	if got := get(t, m[1]); !bytes.Equal(got, data) {
		t.Fatalf("downloaded %d bytes, want the %d published", len(got), len(data))
	}

	// Publishing again is harmless.
	te.stdout.mu.Lock()
	te.stdout.b.Reset()
	te.stdout.mu.Unlock()
	if code := te.run("publish", "--origin", srv.URL, "-k", "4", "-block", "4096", file); code != 0 {
		t.Fatalf("re-publish exit %d: %s", code, te.stderr)
	}
	if !strings.Contains(te.stdout.String(), "already published") {
		t.Errorf("re-publish output:\n%s", te.stdout)
	}
}

func TestPublishFailures(t *testing.T) {
	home := t.TempDir()
	keyPath := filepath.Join(home, "publisher.key")
	priv, err := identity.Create(keyPath, false)
	if err != nil {
		t.Fatal(err)
	}
	otherKey := filepath.Join(home, "other.key")
	if _, err := identity.Create(otherKey, false); err != nil {
		t.Fatal(err)
	}
	srv := startOrigin(t, priv.Public().(ed25519.PublicKey))
	file, _ := writeTestFile(t, 10<<10)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + ln.Addr().String()
	ln.Close()

	for _, tc := range []struct {
		name     string
		token    string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"unreachable origin", testToken, []string{file, "-origin", closedURL}, exitUnreachable, "cannot reach origin"},
		{"bad token", "wrong-token-0123456789", []string{file, "-origin", srv.URL}, exitRefused, "401"},
		{"no token", "", []string{file, "-origin", srv.URL}, 2, "no token"},
		{"token for another property", testToken, []string{file, "-origin", srv.URL, "-property", "games"}, exitRefused, "403"},
		{"key not allowed", testToken, []string{file, "-origin", srv.URL, "-key", otherKey}, exitRefused, "publisher not allowed"},
		{"missing file", testToken, []string{filepath.Join(home, "nope.bin"), "-origin", srv.URL}, 1, "no such file"},
		{"missing key", testToken, []string{file, "-origin", srv.URL, "-key", filepath.Join(home, "nokey")}, 1, "avalanche keygen"},
		{"bad origin URL", testToken, []string{file, "-origin", "ftp://x"}, 2, "not an http"},
		{"two files", testToken, []string{file, file, "-origin", srv.URL}, 2, "exactly one FILE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			te := newTestEnv(t, map[string]string{"AVALANCHE_TOKEN": tc.token})
			args := append([]string{"publish", "-key", keyPath}, tc.args...)
			if code := te.run(args...); code != tc.wantCode {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.wantCode, te.stderr)
			}
			if !strings.Contains(te.stderr.String(), tc.wantErr) {
				t.Errorf("stderr lacks %q:\n%s", tc.wantErr, te.stderr)
			}
		})
	}
}

func TestPublishDryRun(t *testing.T) {
	te := newTestEnv(t, nil)
	if _, err := identity.Create(te.defaultPublisherKey(), false); err != nil {
		t.Fatal(err)
	}
	file, _ := writeTestFile(t, 5000)
	// No origin and no token are needed.
	if code := te.run("publish", "--dry-run", file, "--origin", "http://127.0.0.1:1"); code != 0 {
		t.Fatalf("dry run exit %d: %s", code, te.stderr)
	}
	if out := te.stdout.String(); !strings.Contains(out, "content ") || !strings.Contains(out, "dry run: nothing uploaded") {
		t.Errorf("dry run output:\n%s", out)
	}
}

var (
	listenRE = regexp.MustCompile(`listening on (http://\S+)`)
	tokenRE  = regexp.MustCompile(`publish token \(shown only now[^:]*: (\S+)`)
)

// TestOriginCommandZeroConfig runs "avalanche origin" with no
// configuration, takes the printed token and publishes with it.
func TestOriginCommandZeroConfig(t *testing.T) {
	te := newTestEnv(t, nil)
	if _, err := identity.Create(te.defaultPublisherKey(), false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- run(ctx, &te.Env, []string{"origin", "-listen", "127.0.0.1:0"}) }()
	var base, token string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		s := te.stderr.String()
		l, k := listenRE.FindStringSubmatch(s), tokenRE.FindStringSubmatch(s)
		if l != nil && k != nil {
			base, token = l[1], k[1]
			break
		}
	}
	if base == "" {
		cancel()
		t.Fatalf("origin did not start:\n%s", te.stderr)
	}
	file, data := writeTestFile(t, 70<<10)
	pub := newTestEnv(t, map[string]string{"AVALANCHE_TOKEN": token, "AVALANCHE_HOME": te.vars["AVALANCHE_HOME"]})
	if code := pub.run("publish", file, "-origin", base); code != 0 {
		t.Fatalf("publish exit %d: %s", code, pub.stderr)
	}
	m := urlRE.FindStringSubmatch(pub.stdout.String())
	if m == nil {
		t.Fatalf("publish output:\n%s", pub.stdout)
	}
	if got := get(t, m[1]); !bytes.Equal(got, data) {
		t.Error("downloaded bytes differ")
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("origin exit %d after cancel: %s", code, te.stderr)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("origin did not stop")
	}
	if strings.Count(te.stderr.String(), token) != 2 { // the token line and the example command
		t.Errorf("the token appears %d times in the origin's output, want 2 (shown once at start)", strings.Count(te.stderr.String(), token))
	}
}

func TestOriginCommandConfigErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte(`{"properties": {"x": {"tokens": ["short"]}}}`), 0o644)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing config", []string{"origin", "-config", filepath.Join(dir, "nope.json")}, "no such file"},
		{"invalid config", []string{"origin", "-config", bad}, "invalid configuration"},
		{"stray argument", []string{"origin", "extra"}, "no arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			te := newTestEnv(t, nil)
			if code := te.run(tc.args...); code == 0 || !strings.Contains(te.stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr:\n%s\nwant it to mention %q", code, te.stderr, tc.want)
			}
		})
	}
}

// TestOriginCommandWithConfig runs "avalanche origin -config" with a
// hashed token and publishes to a named property.
func TestOriginCommandWithConfig(t *testing.T) {
	te := newTestEnv(t, nil)
	priv, err := identity.Create(te.defaultPublisherKey(), false)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "origin.json")
	os.WriteFile(cfg, []byte(`{"properties": {"devtools": {
		"tokens": ["`+origin.HashToken(testToken).String()+`"],
		"publishers": ["`+identity.Self(priv).String()+`"]}}}`), 0o600)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan int, 1)
	go func() { done <- run(ctx, &te.Env, []string{"origin", "-listen", "127.0.0.1:0", "-config", cfg}) }()
	var base string
	for deadline := time.Now().Add(10 * time.Second); base == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if l := listenRE.FindStringSubmatch(te.stderr.String()); l != nil {
			base = l[1]
		}
	}
	if base == "" {
		t.Fatalf("origin did not start:\n%s", te.stderr)
	}
	if strings.Contains(te.stderr.String(), "publish token") {
		t.Error("with -config the origin must not print a token")
	}
	file, data := writeTestFile(t, 1000)
	pub := newTestEnv(t, map[string]string{"AVALANCHE_TOKEN": testToken, "AVALANCHE_HOME": te.vars["AVALANCHE_HOME"]})
	if code := pub.run("publish", file, "-origin", base, "-property", "devtools"); code != 0 {
		t.Fatalf("publish exit %d: %s", code, pub.stderr)
	}
	m := urlRE.FindStringSubmatch(pub.stdout.String())
	if m == nil || !bytes.Equal(get(t, m[1]), data) {
		t.Fatalf("publish output:\n%s", pub.stdout)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("origin exit %d: %s", code, te.stderr)
	}
}
