package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"avalanche/internal/codingbench"
)

// runBench dispatches "avalanche bench <what>".
func runBench(ctx context.Context, env *Env, args []string) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fs := newFlags(env, "bench", "coding|route [flags]", `
Measure performance. Benchmarks:

  coding   the coding core: GF(2^8) kernels, encode, recode, decode,
           per-packet verification and SHA-256, beside reference
           implementations (run "avalanche bench coding -h")
  route    the traffic manager: routing decisions per second, /v1/route
           latency under load, failover time (run "avalanche bench route -h")`)
		if err := parse(fs, args); err != nil {
			return err
		}
		fs.Usage()
		return fmt.Errorf("bench: name a benchmark: %w", errUsage)
	}
	switch args[0] {
	case "coding":
		return runBenchCoding(ctx, env, args[1:])
	case "route":
		return runBenchRoute(ctx, env, args[1:])
	}
	return fmt.Errorf("bench: unknown benchmark %q: %w", args[0], errUsage)
}

func runBenchCoding(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "bench coding", "[flags]", `
Measure the coding core on one core (one goroutine): MB/s of mul-add,
encoding one coded block, encoding a batch, recoding, decoding a generation,
verifying a block's linear checksums and SHA-256, for each generation size k
and block size B. Beside them, measured in the same run:

  reedsolomon  klauspost/reedsolomon computing one parity shard from k data
               shards with a custom matrix (the arithmetic of one coded block)
  purego       our pure-Go kernels, what a build with -tags purego runs
  logexp       a textbook pure-Go RLNC with log/exp tables, byte at a time
               (the design of github.com/itzmeanjan/kodr, which could not be
               fetched to measure it directly)

Time is the measuring thread's CPU time (on Linux), so time the scheduler
gives other processes does not count. Implementations are timed
round-robin in samples of at least 200 µs of back-to-back calls, and each
figure is the 90th percentile of its samples' rates. Compare ratios within
one run: other load that competes for the caches and memory still moves
absolute numbers.`)
	quick := fs.Bool("quick", false, "measure only k=16,64 at B=32 KiB, briefly")
	ks := fs.String("k", "16,32,64,128", "generation sizes `k`, comma-separated")
	blocks := fs.String("block", "16K,32K,64K", "block `sizes` in bytes (suffix K for KiB), comma-separated")
	dur := fs.Duration("duration", 120*time.Millisecond, "time per measurement")
	rounds := fs.Int("rounds", 3, "rounds per measurement, interleaved across implementations")
	asJSON := fs.Bool("json", false, "print a JSON array of {op, impl, k, block, mb_per_s} records")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench coding: unexpected argument %q: %w", fs.Arg(0), errUsage)
	}
	cfg := codingbench.Config{Duration: *dur, Rounds: *rounds}
	var err error
	if cfg.Ks, err = parseSizes(*ks, false); err != nil {
		return fmt.Errorf("bench coding: -k: %v: %w", err, errUsage)
	}
	if cfg.BlockSizes, err = parseSizes(*blocks, true); err != nil {
		return fmt.Errorf("bench coding: -block: %v: %w", err, errUsage)
	}
	if *quick {
		cfg.Ks, cfg.BlockSizes = []int{16, 64}, []int{32 << 10}
		cfg.Duration = min(cfg.Duration, 60*time.Millisecond)
	}
	if *dur <= 0 || *rounds <= 0 {
		return fmt.Errorf("bench coding: -duration and -rounds must be positive: %w", errUsage)
	}
	start := time.Now()
	if !*asJSON {
		fmt.Fprintf(env.Stderr, "bench coding: measuring k=%s × B=%s on one core...\n", joinInts(cfg.Ks), joinInts(cfg.BlockSizes))
	}
	rs, err := codingbench.Run(ctx, cfg, nil)
	if err != nil {
		return fmt.Errorf("bench coding: %w", err)
	}
	if *asJSON {
		return codingbench.WriteJSON(env.Stdout, rs)
	}
	fmt.Fprintf(env.Stdout, "avalanche bench coding: MB/s on one core (%s; 90th percentile of 200 µs samples, %d rounds, %v per measurement)\n\n", codingbench.ClockName, cfg.Rounds, cfg.Duration)
	if err := codingbench.WriteTable(env.Stdout, rs); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "\n(%.1f s)\n", time.Since(start).Seconds())
	return nil
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

// parseSizes parses a comma-separated list of positive integers; with
// suffixes, "32K" and "32KiB" mean 32768.
func parseSizes(s string, suffixes bool) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		mult := 1
		if suffixes {
			for _, suf := range []string{"KiB", "K", "k"} {
				if strings.HasSuffix(f, suf) {
					f, mult = strings.TrimSuffix(f, suf), 1024
					break
				}
			}
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("bad size %q", f)
		}
		out = append(out, n*mult)
	}
	return out, nil
}
