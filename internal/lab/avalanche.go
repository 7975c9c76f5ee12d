package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"sync"
	"time"

	"avalanche/internal/identity"
)

// SystemAvalanche is Avalanche as shipped: origin and control (tracker) on
// the seed host, "avalanche get" on every leecher, which keeps seeding
// until the lab stops it.
const SystemAvalanche = "avalanche"

// avalancheSystem runs the avalanche binary.
type avalancheSystem struct {
	content string // content ID of the published payload, per run
}

func (*avalancheSystem) name() string { return SystemAvalanche }

// Ports on the seed host.
const (
	avOriginPort  = 7070
	avTrackerPort = 7071
	avPeerPort    = 7072
)

// contentLine is compiled when first used (see edge's nameRE).
var contentLine = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?m)^content\s+([0-9a-f]{64})\s*$`) })

func (a *avalancheSystem) startSeed(ctx context.Context, r *run) error {
	h := r.tb.seed
	dir := r.hostDir(h)
	home := filepath.Join(dir, "home")
	data := filepath.Join(dir, "origin")
	// The origin's node key lives in DATA-keys/node.key; creating it here
	// gives its ID for the tracker's -infra list.
	nodeKey, err := identity.Create(data+"-keys/node.key", false)
	if err != nil {
		return fmt.Errorf("lab: origin node key: %w", err)
	}
	originID := identity.Self(nodeKey).String()
	if _, err := identity.Create(filepath.Join(home, "publisher.key"), false); err != nil {
		return fmt.Errorf("lab: publisher key: %w", err)
	}
	tok := make([]byte, 16)
	rand.Read(tok)
	token := "avt_lab" + hex.EncodeToString(tok)
	env := []string{"AVALANCHE_HOME=" + home, "AVALANCHE_DATA=" + filepath.Join(dir, "data"), "AVALANCHE_TOKEN=" + token}
	bin := r.lab.cfg.Binary
	ip := h.ip.String()
	originURL := fmt.Sprintf("http://%s:%d", ip, avOriginPort)
	trackerURL := fmt.Sprintf("http://%s:%d", ip, avTrackerPort)
	hc := r.httpClient(h)

	ctl, err := r.start(procSpec{name: "seed-control", role: procTracker, host: h, dir: dir, env: env,
		args: []string{bin, "control", "--http", fmt.Sprintf("%s:%d", ip, avTrackerPort), "--dns", "", "--infra", originID}})
	if err != nil {
		return err
	}
	if err := waitFor(ctx, "avalanche control", 30*time.Second, ctl, func() bool { return httpOK(ctx, hc, trackerURL+"/healthz") }); err != nil {
		return err
	}
	org, err := r.start(procSpec{name: "seed-origin", role: procSeed, host: h, dir: dir, env: env,
		args: []string{bin, "origin", "--listen", fmt.Sprintf("%s:%d", ip, avOriginPort),
			"--peer-listen", fmt.Sprintf("%s:%d", ip, avPeerPort), "--data", data,
			"--tracker", trackerURL, "--seed-cap", "1.0"}})
	if err != nil {
		return err
	}
	if err := waitFor(ctx, "avalanche origin", 30*time.Second, org, func() bool { return httpOK(ctx, hc, originURL+"/healthz") }); err != nil {
		return err
	}
	// Publishing goes over the seed host's loopback, not its uplink.
	var out []byte
	pub, err := r.start(procSpec{name: "seed-publish", role: procTracker, host: h, dir: dir, env: env,
		args:   []string{bin, "publish", r.pl.path, "--origin", originURL},
		onLine: func(b []byte) { out = append(append(out, b...), '\n') }})
	if err != nil {
		return err
	}
	<-pub.exited
	m := contentLine().FindSubmatch(out)
	if pub.waitErr != nil || m == nil {
		return fmt.Errorf("lab: avalanche publish failed (%v): %s%s", pub.waitErr, out, logTail(pub))
	}
	a.content = string(m[1])
	// Ready once the origin has announced the content to the tracker.
	return waitFor(ctx, "the origin's first announce", 30*time.Second, org, func() bool {
		var st struct {
			Swarms []struct {
				Origins int `json:"origins"`
			} `json:"swarms"`
		}
		if err := getJSON(ctx, hc, trackerURL+"/v1/stats?content="+a.content, &st); err != nil {
			return false
		}
		return len(st.Swarms) == 1 && st.Swarms[0].Origins > 0
	})
}

func (a *avalancheSystem) startLeecher(ctx context.Context, r *run, l *leecher) (*proc, error) {
	seed := r.tb.seed.ip.String()
	home := filepath.Join(l.dir, "home")
	return r.start(procSpec{name: l.host.name + "-get", role: procLeecher, host: l.host, dir: l.dir,
		env: append([]string{"AVALANCHE_HOME=" + home, "AVALANCHE_DATA=" + filepath.Join(l.dir, "data")}, r.lab.cfg.GetEnv...),
		args: append([]string{r.lab.cfg.Binary, "get", a.content,
			"--origin", fmt.Sprintf("http://%s:%d", seed, avOriginPort),
			"--tracker", fmt.Sprintf("http://%s:%d", seed, avTrackerPort),
			"-o", l.dir, "--listen", fmt.Sprintf("%s:%d", l.host.ip, avPeerPort),
			"--json", "--seed-time", "24h"}, r.lab.cfg.GetArgs...),
		onLine: jsonLines(l, r.now)})
}

// seedUploaded reads the origin's live count of coded block payload sent
// (GET /v1/seeding): like aria2's uploadLength it leaves out protocol
// overhead (coefficients, frames, TLS, checksums and manifests over HTTP).
// It is the payload the peers have acknowledged ("delivered"), not what
// was written to sockets: a seed killed at 1.0× of the latter takes the
// blocks still in its socket buffers with it, and one copy less those is
// less than one copy, which no code can make up for.
func (a *avalancheSystem) seedUploaded(ctx context.Context, r *run) (int64, bool) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	h := r.tb.seed
	var st struct {
		Contents []struct {
			Content   string `json:"content"`
			Sent      int64  `json:"sent"`
			Delivered *int64 `json:"delivered"`
		} `json:"contents"`
	}
	if err := getJSON(ctx, r.httpClient(h), fmt.Sprintf("http://%s:%d/v1/seeding", h.ip, avOriginPort), &st); err != nil {
		return 0, false
	}
	for _, c := range st.Contents {
		if c.Content == a.content {
			if c.Delivered != nil {
				return *c.Delivered, true
			}
			return c.Sent, true
		}
	}
	return 0, false
}

// httpOK reports whether GET url answers 200.
func httpOK(ctx context.Context, c *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// getJSON decodes the JSON answer of GET url into v.
func getJSON(ctx context.Context, c *http.Client, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
