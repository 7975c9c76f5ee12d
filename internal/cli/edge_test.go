package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"avalanche/internal/identity"
	"avalanche/internal/seeder"
	"avalanche/internal/tracker"
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
// test process (the command has claimed the signal) and checks that a
// download in flight across the reload completes, and that the new
// property is served over the connection opened before the reload.
func TestEdgeReloadOnSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("signals the test process")
	}
	slowStarted, release := make(chan struct{}), make(chan struct{})
	slowBody := strings.Repeat("s", 256<<10)
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			w.Header().Set("Cache-Control", "no-store")
			close(slowStarted)
			<-release
			fmt.Fprint(w, slowBody)
			return
		}
		fmt.Fprint(w, "ok")
	}))
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
	var conns []string // local address of the connection each request used
	status := func(host string) int {
		req, _ := http.NewRequest("GET", "http://"+m[1]+"/", nil)
		req.Host = host
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(ci httptrace.GotConnInfo) { conns = append(conns, ci.Conn.LocalAddr().String()) },
		}))
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
	// a download in flight across the reload, on its own connection
	type slowResult struct {
		code int
		body string
		err  error
	}
	slow := make(chan slowResult, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+m[1]+"/slow", nil)
		req.Host = "one.test"
		resp, err := (&http.Client{Transport: &http.Transport{}}).Do(req)
		if err != nil {
			slow <- slowResult{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		slow <- slowResult{resp.StatusCode, string(b), err}
	}()
	select {
	case <-slowStarted:
	case <-time.After(10 * time.Second):
		t.Fatal("slow request did not reach the origin")
	}
	write(`"one.test", "two.test"`)
	syscall.Kill(os.Getpid(), syscall.SIGHUP)
	for i := 0; i < 500 && !strings.Contains(stderr.String(), "configuration reloaded"); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(stderr.String(), "configuration reloaded") {
		t.Fatalf("no reload logged: %s", stderr.String())
	}
	if status("two.test") != 200 || status("one.test") != 200 {
		t.Errorf("after SIGHUP the new host is not served: %s", stderr.String())
	}
	for i, c := range conns {
		if c != conns[0] {
			t.Errorf("request %d used connection %s, want the one opened before the reload (%s)", i+1, c, conns[0])
		}
	}
	close(release)
	select {
	case r := <-slow:
		if r.err != nil || r.code != 200 || r.body != slowBody {
			t.Errorf("download across the reload = %d, %d bytes, %v; want 200 and the whole body", r.code, len(r.body), r.err)
		}
	case <-time.After(10 * time.Second):
		t.Error("download across the reload did not finish")
	}
	cancel()
	<-done
}

// TestEdgeSuperSeedCommand runs `avalanche edge --peer-listen --tracker`
// in front of a real origin and tracker: asked for a content's seeds, the
// edge joins its swarm and names itself first; the tracker then hands the
// edge out as a seed; `avalanche get` (knowing only the origin and the
// tracker) takes bytes from the edge; the origin sends about one copy over
// HTTP in all, as ranges the edge also serves to HTTP clients from cache.
func TestEdgeSuperSeedCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	tn := startTestnet(t, 256<<10) // the origin's own peer uplink is slow
	data := testData(4<<20, 11)
	m := publishTest(t, tn, data, 64, 16<<10) // 1 MiB generations
	before := tn.OriginHTTPBytes.Load()

	te := newTestEnv(t, nil)
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, &te.Env, []string{"edge", "--origin", tn.OriginURL, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0",
			"--peer-listen", "127.0.0.1:0", "--tracker", tn.TrackerURL})
	}()
	defer func() { cancel(); <-done }()
	re := regexp.MustCompile(`addr=(\S+) admin=`)
	var addr []string
	for i := 0; i < 500 && addr == nil; i++ {
		time.Sleep(20 * time.Millisecond)
		addr = re.FindStringSubmatch(te.stderr.String())
	}
	if addr == nil {
		t.Fatalf("edge did not start: %s", te.stderr.String())
	}
	edgeURL := "http://" + addr[1]

	resp, err := http.Get(edgeURL + "/v1/swarm/" + m.ID().String())
	if err != nil {
		t.Fatal(err)
	}
	var info seeder.SeedInfo
	err = json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || len(info.Seeds) < 2 || info.Seeds[0].Role != "edge" {
		t.Fatalf("GET /v1/swarm = %d %+v %v, want the edge first, then the origin", resp.StatusCode, info, err)
	}
	edgePeer, err := netip.ParseAddrPort(info.Seeds[0].Addr)
	if err != nil {
		t.Fatal(err)
	}

	// the tracker hands the edge out as a seed
	tc, err := tracker.NewClient(tracker.ClientConfig{URL: tn.TrackerURL, Key: identity.Generate()})
	if err != nil {
		t.Fatal(err)
	}
	handed := false
	for deadline := time.Now().Add(20 * time.Second); !handed && time.Now().Before(deadline); {
		ar, err := tc.Announce(ctx, tracker.AnnounceRequest{Content: m.ID(), Left: uint64(m.Size)})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ar.Peers {
			if p.Role == tracker.RoleEdge && p.Addr.Port() == edgePeer.Port() {
				handed = true
			}
		}
		if !handed {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if !handed {
		t.Fatal("the tracker never handed out the edge as a seed")
	}

	gt := newTestEnv(t, nil)
	out := t.TempDir()
	if code := gt.run("get", m.ID().String(), "--origin", tn.OriginURL, "--tracker", tn.TrackerURL, "-o", out,
		"--listen", "127.0.0.1:0", "--json"); code != 0 {
		t.Fatalf("get exit %d: %s", code, gt.stderr.String())
	}
	res := lastJSON(t, gt.stdout.String(), "done")
	if res["from_edge"].(float64) == 0 {
		t.Errorf("nothing came from the edge: %v", res)
	}
	if sha(filepath.Join(out, m.Name)) != m.FileHash {
		t.Error("copy differs")
	}
	httpOut := tn.OriginHTTPBytes.Load() - before
	t.Logf("origin sent %.2f× the file over HTTP; get: %v", float64(httpOut)/float64(m.Size), res)
	if httpOut > m.Size*11/10 {
		t.Errorf("origin sent %d bytes over HTTP, want about one copy (%d)", httpOut, m.Size)
	}

	// HTTP clients get the same generations from the edge's cache
	req, _ := http.NewRequest("GET", edgeURL+"/v1/content/"+m.ID().String(), nil)
	req.Host = "avalanche-content"
	req.Header.Set("Range", "bytes=1048576-1049575")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(b, data[1<<20:1<<20+1000]) ||
		!strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
		t.Errorf("range of generation 1 from the edge = %d, %d bytes, Cache-Status %q; want 206 from cache",
			resp.StatusCode, len(b), resp.Header.Get("Cache-Status"))
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
