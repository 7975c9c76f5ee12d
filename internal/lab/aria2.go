package lab

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// SystemAria2 is BitTorrent: Debian's opentracker and a seeding aria2c on
// the seed host, aria2c on every leecher; DHT, local peer discovery and
// peer exchange off, re-announce every 2 s, seed forever.
const SystemAria2 = "aria2"

type aria2System struct{}

func (aria2System) name() string { return SystemAria2 }

// Ports on every host: opentracker (seed only), BitTorrent, JSON-RPC (on
// loopback: the lab reaches it from inside the host).
const (
	otPort      = 6969
	btPort      = 6881
	aria2RPC    = 6800
	aria2RPCURL = "http://127.0.0.1:6800/jsonrpc"
)

// aria2Flags are the flags every aria2c gets.
func aria2Flags(dir string) []string {
	return []string{
		"--no-conf", "--enable-dht=false", "--enable-dht6=false", "--bt-enable-lpd=false",
		"--enable-peer-exchange=false", "--bt-tracker-interval=2", "--seed-ratio=0.0",
		"--file-allocation=none", "--console-log-level=warn", "--summary-interval=0",
		"--show-console-readout=false", "--disable-ipv6=true", "--allow-overwrite=true",
		"--dir=" + dir, "--listen-port=" + strconv.Itoa(btPort),
		"--enable-rpc=true", "--rpc-listen-port=" + strconv.Itoa(aria2RPC),
	}
}

var infoHashLine = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?m)^Info Hash:\s*([0-9a-fA-F]{40})`) })

// torrent makes (once per payload) a torrent whose tracker is the seed
// host's opentracker, with mktorrent, and reads its info-hash with aria2c.
func (l *Lab) torrent(ctx context.Context, pl *payload) error {
	if pl.torrent != "" {
		return nil
	}
	t := filepath.Join(filepath.Dir(pl.path), "payload.torrent")
	os.Remove(t)
	exp := 0
	for 1<<exp < l.cfg.PieceSize {
		exp++
	}
	announce := fmt.Sprintf("http://10.77.0.%d:%d/announce", seedOctet, otPort)
	out, err := exec.CommandContext(ctx, "mktorrent", "-a", announce, "-l", strconv.Itoa(exp), "-o", t, pl.path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("lab: mktorrent: %v: %s", err, bytesTrim(out))
	}
	out, err = exec.CommandContext(ctx, "aria2c", "-S", t).CombinedOutput()
	m := infoHashLine().FindSubmatch(out)
	if err != nil || m == nil {
		return fmt.Errorf("lab: aria2c -S: %v: %s", err, bytesTrim(out))
	}
	pl.torrent, pl.infoHash = t, string(bytes.ToLower(m[1]))
	return nil
}

func (s aria2System) startSeed(ctx context.Context, r *run) error {
	if err := r.lab.torrent(ctx, r.pl); err != nil {
		return err
	}
	h := r.tb.seed
	dir := r.hostDir(h)
	// Debian's opentracker only serves whitelisted info-hashes, and reads
	// the whitelist after dropping to user nobody: everything on the path
	// must be readable by others.
	otDir := filepath.Join(dir, "opentracker")
	if err := os.MkdirAll(otDir, 0o755); err != nil {
		return err
	}
	wl := filepath.Join(otDir, "whitelist")
	conf := filepath.Join(otDir, "opentracker.conf")
	if err := os.WriteFile(wl, []byte(r.pl.infoHash+"\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(conf, []byte("access.whitelist "+wl+"\n"), 0o644); err != nil {
		return err
	}
	port := strconv.Itoa(otPort)
	ot, err := r.start(procSpec{name: "seed-opentracker", role: procTracker, host: h, dir: otDir,
		args: []string{"opentracker", "-i", h.ip.String(), "-p", port, "-P", port, "-f", conf}})
	if err != nil {
		return err
	}
	if err := waitFor(ctx, "opentracker", 15*time.Second, ot, func() bool {
		c, err := h.dial(ctx, "tcp", h.ip.String()+":"+port)
		if err == nil {
			c.Close()
		}
		return err == nil
	}); err != nil {
		return err
	}
	// The seeder verifies the file (-V) before it seeds.
	seedDir := filepath.Join(dir, "data")
	if err := copyFile(r.pl.path, filepath.Join(seedDir, filepath.Base(r.pl.path))); err != nil {
		return err
	}
	sd, err := r.start(procSpec{name: "seed-aria2", role: procSeed, host: h, dir: dir,
		args: append(append([]string{"aria2c"}, aria2Flags(seedDir)...), "--check-integrity=true", r.pl.torrent)})
	if err != nil {
		return err
	}
	hc := r.httpClient(h)
	return waitFor(ctx, "the aria2 seeder", 60*time.Second, sd, func() bool {
		st, err := aria2Status(ctx, hc)
		return err == nil && st.Seeder == "true" && st.Completed == st.Total && st.Total > 0
	})
}

func (s aria2System) startLeecher(ctx context.Context, r *run, l *leecher) (*proc, error) {
	hook := filepath.Join(r.dir, "aria2-done.sh")
	if _, err := os.Stat(hook); err != nil {
		// aria2 runs the hook with GID, number of files and the first
		// file's path; its mtime is the completion time.
		if err := os.WriteFile(hook, []byte("#!/bin/sh\n: > \"$3.lab-done\"\n"), 0o755); err != nil {
			return nil, err
		}
	}
	data := filepath.Join(l.dir, "data")
	p, err := r.start(procSpec{name: l.host.name + "-aria2", role: procLeecher, host: l.host, dir: l.dir,
		args: append(append([]string{"aria2c"}, aria2Flags(data)...), "--on-bt-download-complete="+hook, r.pl.torrent)})
	if err != nil {
		return nil, err
	}
	go s.watch(r, l, p, filepath.Join(data, filepath.Base(r.pl.path))+".lab-done")
	return p, nil
}

// watch follows one aria2 leecher: the hook's file every 100 ms, the RPC
// every 500 ms.
func (aria2System) watch(r *run, l *leecher, p *proc, doneFile string) {
	hc := r.httpClient(l.host)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-p.exited
		cancel()
	}()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if st, err := os.Stat(doneFile); err == nil {
			l.setComplete(st.ModTime().Sub(r.t0))
		}
		if i%5 == 0 {
			if st, err := aria2Status(ctx, hc); err == nil {
				l.update(st.Completed, st.Total)
				l.setCounters(map[string]int64{"uploaded": st.Uploaded, "from_peers": st.Completed})
			}
		}
	}
}

func (aria2System) seedUploaded(ctx context.Context, r *run) (int64, bool) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	st, err := aria2Status(ctx, r.httpClient(r.tb.seed))
	if err != nil {
		return 0, false
	}
	return st.Uploaded, true
}

// aria2State is the part of aria2.tellActive the lab reads.
type aria2State struct {
	Completed, Total, Uploaded int64
	Seeder                     string
}

// aria2Status asks the aria2c on the client's host for its one download.
func aria2Status(ctx context.Context, c *http.Client) (aria2State, error) {
	body := `{"jsonrpc":"2.0","id":"lab","method":"aria2.tellActive","params":[["completedLength","totalLength","uploadLength","seeder"]]}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, aria2RPCURL, bytes.NewBufferString(body))
	if err != nil {
		return aria2State{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return aria2State{}, err
	}
	defer resp.Body.Close()
	var out struct {
		Result []struct {
			Completed string `json:"completedLength"`
			Total     string `json:"totalLength"`
			Uploaded  string `json:"uploadLength"`
			Seeder    string `json:"seeder"`
		} `json:"result"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return aria2State{}, err
	}
	if len(out.Result) == 0 {
		return aria2State{}, fmt.Errorf("lab: aria2 has no active download")
	}
	d := out.Result[0]
	st := aria2State{Seeder: d.Seeder}
	st.Completed, _ = strconv.ParseInt(d.Completed, 10, 64)
	st.Total, _ = strconv.ParseInt(d.Total, 10, 64)
	st.Uploaded, _ = strconv.ParseInt(d.Uploaded, 10, 64)
	return st, nil
}
