package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"time"

	"avalanche/internal/demo"
)

func runDemo(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "demo", "[flags]", `
Run a whole Avalanche network on this machine and watch it work: a tracker,
an origin and N peers on loopback, each peer with an upload cap. The demo
publishes a generated file, every peer fetches it from the swarm (blocks are
network-coded, verified with per-peer checksums, generations checked against
the signed manifest), every copy is verified again, and a report shows the
completion times, how much the origin sent, how much the peers exchanged, and
the distance to the fluid lower bound max(F/u_origin, N·F/(u_origin + Σ u_peers)).`)
	peers := fs.Int("peers", 16, "number of peers")
	size := fs.String("size", "64M", "file size (k, M, G suffixes)")
	upload := fs.String("upload", "25mbit", "each peer's upload cap (e.g. 25mbit, 3M)")
	originUp := fs.String("origin-upload", "", "the origin's upload cap (default: same as peers)")
	k := fs.Int("k", 64, "blocks per generation")
	block := fs.Int("block", 32<<10, "block size in bytes")
	seedCap := fs.Float64("seed-cap", 1.0, "origin's per-generation cap, in generation sizes (0 = none)")
	jsonOut := fs.Bool("json", false, "print the report as one JSON object")
	dir := fs.String("dir", "", "keep files in this directory (default: a temporary one, removed)")
	timeout := fs.Duration("timeout", 10*time.Minute, "give up after this long")
	verbose := fs.Bool("v", false, "log every component's events to stderr")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("demo takes no arguments: %w", errUsage)
	}
	cfg := demo.Config{Peers: *peers, K: *k, BlockSize: *block, Dir: *dir, Timeout: *timeout, SeedCap: *seedCap}
	if *seedCap == 0 {
		cfg.SeedCap = -1
	}
	var err error
	if cfg.Size, err = parseSize(*size); err != nil {
		return fmt.Errorf("--size: %v: %w", err, errUsage)
	}
	if cfg.Upload, err = parseRate(*upload); err != nil || cfg.Upload <= 0 {
		return fmt.Errorf("--upload must be a positive rate: %w", errUsage)
	}
	if *originUp != "" {
		if cfg.OriginUpload, err = parseRate(*originUp); err != nil || cfg.OriginUpload <= 0 {
			return fmt.Errorf("--origin-upload must be a positive rate: %w", errUsage)
		}
	}
	if *peers < 1 || *peers > 256 {
		return fmt.Errorf("--peers must be 1..256: %w", errUsage)
	}
	if !*jsonOut {
		cfg.Progress = env.Stderr
	}
	if *verbose {
		cfg.Logger = slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	rep, err := demo.Run(ctx, cfg)
	if rep != nil {
		if *jsonOut {
			enc := json.NewEncoder(env.Stdout)
			enc.SetIndent("", "  ")
			enc.Encode(rep)
		} else {
			printDemoReport(env.Stdout, rep)
		}
	}
	if err != nil {
		return err
	}
	if rep.Verified < rep.Peers {
		return fmt.Errorf("demo: only %d of %d copies verified", rep.Verified, rep.Peers)
	}
	return nil
}

func printDemoReport(w io.Writer, r *demo.Report) {
	fmt.Fprintf(w, "\nAvalanche demo: %d peers, %s file (k=%d, %d KiB blocks), peers upload %s/s, origin %s/s\n\n",
		r.Peers, humanBytes(float64(r.SizeBytes)), r.K, r.BlockSize>>10, humanBytes(float64(r.UploadBytesPerSec)), humanBytes(float64(r.OriginUploadBPS)))
	fmt.Fprintf(w, "%-8s %9s %9s %12s %12s %12s\n", "peer", "seconds", "verified", "from origin", "from peers", "uploaded")
	for _, p := range r.PeerList {
		v := "yes"
		if !p.Verified {
			v = "NO"
		}
		if p.Error != "" {
			fmt.Fprintf(w, "%-8s  failed: %s\n", p.Name, p.Error)
			continue
		}
		fmt.Fprintf(w, "%-8s %9.2f %9s %12s %12s %12s\n", p.Name, p.Seconds, v, humanBytes(float64(p.FromOrigin)),
			humanBytes(float64(p.FromPeers)), humanBytes(float64(p.Uploaded)))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "completed            %d of %d (%d copies re-hashed and matching the signed manifest)\n", r.Completed, r.Peers, r.Verified)
	fmt.Fprintf(w, "completion time      min %.2fs, median %.2fs, all done %.2fs\n", r.MinSeconds, r.MedianSeconds, r.AllDoneSeconds)
	fmt.Fprintf(w, "fluid lower bound    %.2fs  (all done = %.2f× the bound)\n", r.LowerBoundSeconds, r.RatioToBound)
	fmt.Fprintf(w, "origin egress        %s = %.3f× the file\n", humanBytes(float64(r.OriginEgressBytes)), r.OriginEgressRatio)
	fmt.Fprintf(w, "peer-to-peer bytes   %s = %.1f× the file\n", humanBytes(float64(r.P2PBytes)), float64(r.P2PBytes)/max(1, float64(r.SizeBytes)))
}
