// Package demo runs Avalanche's one-command demonstration: a tracker, an
// origin and N peers on loopback, each peer with an upload cap; it publishes
// a generated file, lets every peer fetch it from the swarm, verifies every
// copy and reports completion times, origin egress and the distance to the
// fluid lower bound.
package demo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"avalanche/internal/client"
	"avalanche/internal/manifest"
	"avalanche/internal/testnet"
)

// Config configures a demo run. Zero fields take the documented defaults.
type Config struct {
	Peers        int     // default 16
	Size         int64   // file size in bytes; default 64 MiB
	Upload       int64   // each peer's upload cap, bytes/s; default 25 Mbit/s
	OriginUpload int64   // the origin's upload cap; default Upload
	K, BlockSize int     // coding parameters; default 64 and 32 KiB
	SeedCap      float64 // origin's per-generation cap; default 1.0
	Dir          string  // working directory; default a temporary one, removed after
	Timeout      time.Duration
	// Progress, if set, receives one line per event (peer finished, ...).
	Progress io.Writer
	Logger   *slog.Logger
}

func (c *Config) defaults() {
	if c.Peers == 0 {
		c.Peers = 16
	}
	if c.Size == 0 {
		c.Size = 64 << 20
	}
	if c.Upload == 0 {
		c.Upload = 25e6 / 8
	}
	if c.OriginUpload == 0 {
		c.OriginUpload = c.Upload
	}
	if c.K == 0 {
		c.K = 64
	}
	if c.BlockSize == 0 {
		c.BlockSize = 32 << 10
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Minute
	}
}

// PeerReport is one peer's outcome.
type PeerReport struct {
	Name       string  `json:"name"`
	Seconds    float64 `json:"seconds"`
	Verified   bool    `json:"verified"`
	FromOrigin int64   `json:"from_origin"`
	FromPeers  int64   `json:"from_peers"`
	Uploaded   int64   `json:"uploaded"`
	Error      string  `json:"error,omitempty"`
}

// Report is the outcome of a demo run.
type Report struct {
	Content           string       `json:"content"`
	Peers             int          `json:"peers"`
	Completed         int          `json:"completed"`
	Verified          int          `json:"verified"`
	SizeBytes         int64        `json:"size_bytes"`
	K                 int          `json:"k"`
	BlockSize         int          `json:"block_size"`
	UploadBytesPerSec int64        `json:"peer_upload_bytes_per_second"`
	OriginUploadBPS   int64        `json:"origin_upload_bytes_per_second"`
	MinSeconds        float64      `json:"min_seconds"`
	MedianSeconds     float64      `json:"median_seconds"`
	AllDoneSeconds    float64      `json:"all_done_seconds"`
	LowerBoundSeconds float64      `json:"lower_bound_seconds"`
	RatioToBound      float64      `json:"ratio_to_bound"`
	OriginEgressBytes int64        `json:"origin_egress_bytes"`
	OriginEgressRatio float64      `json:"origin_egress_ratio"`
	P2PBytes          int64        `json:"p2p_bytes"`
	PeerList          []PeerReport `json:"peer_reports"`
}

// LowerBound returns the fluid lower bound of the time to give n peers a
// file of f bytes from an origin uploading at u0, peers uploading at u:
// max(F/u0, N·F/(u0 + N·u)).
func LowerBound(f int64, n int, u0, u int64) float64 {
	ff := float64(f)
	return max(ff/float64(u0), float64(n)*ff/float64(u0+int64(n)*u))
}

// Run runs the demo.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	if cfg.Peers < 1 || cfg.Size < 0 {
		return nil, errors.New("demo: need at least one peer and a non-negative size")
	}
	dir := cfg.Dir
	if dir == "" {
		d, err := os.MkdirTemp("", "avalanche-demo-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	say := func(format string, a ...any) {
		if cfg.Progress != nil {
			fmt.Fprintf(cfg.Progress, format+"\n", a...)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	net, err := testnet.Start(ctx, testnet.Config{Dir: dir, OriginUpload: cfg.OriginUpload, SeedCap: cfg.SeedCap, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	defer net.Close()
	say("tracker %s, origin %s", net.TrackerURL, net.OriginURL)

	data := make([]byte, cfg.Size)
	rand.NewChaCha8([32]byte{'a', 'v', 'a', 'l', 'a', 'n', 'c', 'h', 'e'}).Read(data)
	m, err := net.Publish(ctx, "demo.bin", data, cfg.K, cfg.BlockSize)
	if err != nil {
		return nil, err
	}
	data = nil
	say("published demo.bin: %d bytes, %d generations, content %s", m.Size, m.Generations(), m.ID().Short())

	rep := &Report{
		Content: m.ID().String(), Peers: cfg.Peers, SizeBytes: m.Size, K: cfg.K, BlockSize: cfg.BlockSize,
		UploadBytesPerSec: cfg.Upload, OriginUploadBPS: cfg.OriginUpload,
		LowerBoundSeconds: LowerBound(m.Size, cfg.Peers, cfg.OriginUpload, cfg.Upload),
	}
	peers := make([]PeerReport, cfg.Peers)
	cfgs := make([]client.Config, cfg.Peers)
	for i := range cfgs {
		name := fmt.Sprintf("peer%02d", i+1)
		c, err := net.ClientConfig(m.ID(), name, cfg.Upload)
		if err != nil {
			return nil, err
		}
		cfgs[i], peers[i].Name = c, name
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	start := time.Now()
	done := make(chan struct{})
	for i := range cfgs {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := cfgs[i]
			// Stay in the swarm until every peer is done, serving the others.
			finished := make(chan struct{})
			c.Completed = func(*client.Result) { close(finished) }
			c.SeedTime = 24 * time.Hour
			cctx, ccancel := context.WithCancel(ctx)
			defer ccancel()
			var res *client.Result
			var err error
			resCh := make(chan struct{})
			go func() {
				res, err = client.Get(cctx, c)
				close(resCh)
			}()
			pr := &peers[i]
			select {
			case <-finished:
				pr.Seconds = time.Since(start).Seconds()
				mu.Lock()
				rep.Completed++
				n := rep.Completed
				mu.Unlock()
				say("%s done in %.2fs (%d/%d)", pr.Name, pr.Seconds, n, cfg.Peers)
			case <-resCh:
			case <-ctx.Done():
			}
			select {
			case <-done:
			case <-resCh:
			case <-ctx.Done():
			}
			ccancel()
			<-resCh
			if err != nil && !errors.Is(err, context.Canceled) && pr.Seconds == 0 {
				mu.Lock() // the watcher below reads it
				pr.Error = err.Error()
				mu.Unlock()
				return
			}
			if res != nil {
				pr.FromOrigin, pr.FromPeers, pr.Uploaded = res.Progress.FromOrigin, res.Progress.FromPeers, res.Progress.Uploaded
			}
			if pr.Seconds > 0 {
				pr.Verified = verifyCopy(filepath.Join(c.Output, m.Name), m)
			}
		}(i)
	}
	// Wait for every peer to finish (or fail), then release them.
	go func() {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			mu.Lock()
			n := rep.Completed
			failed := 0
			for i := range peers {
				if peers[i].Error != "" {
					failed++
				}
			}
			mu.Unlock()
			if n+failed >= cfg.Peers || ctx.Err() != nil {
				close(done)
				return
			}
			<-t.C
		}
	}()
	wg.Wait()
	rep.PeerList = peers

	var times []float64
	for _, p := range peers {
		if p.Seconds > 0 {
			times = append(times, p.Seconds)
		}
		if p.Verified {
			rep.Verified++
		}
		rep.P2PBytes += p.FromPeers
	}
	sort.Float64s(times)
	if len(times) > 0 {
		rep.MinSeconds = times[0]
		rep.MedianSeconds = times[len(times)/2]
		rep.AllDoneSeconds = times[len(times)-1]
		rep.RatioToBound = rep.AllDoneSeconds / rep.LowerBoundSeconds
	}
	if sw := net.Seeder.Swarm(m.ID()); sw != nil {
		rep.OriginEgressBytes = sw.Stats().Sent
	}
	if m.Size > 0 {
		rep.OriginEgressRatio = float64(rep.OriginEgressBytes) / float64(m.Size)
	}
	if ctx.Err() != nil && rep.Completed < cfg.Peers {
		return rep, fmt.Errorf("demo: timed out after %v with %d of %d peers done", cfg.Timeout, rep.Completed, cfg.Peers)
	}
	return rep, nil
}

// verifyCopy re-reads a downloaded file and checks it against the manifest,
// independently of the client's own checks.
func verifyCopy(path string, m *manifest.Manifest) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return err == nil && n == m.Size && [32]byte(h.Sum(nil)) == m.FileHash
}
