package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"avalanche/internal/lab"
)

// labIsolatedEnv marks the lab's own child, already in its namespaces.
const labIsolatedEnv = "AVALANCHE_LAB_ISOLATED"

func runLab(ctx context.Context, env *Env, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "serve-http":
			return runLabServe(ctx, env, args[1:])
		case "fetch":
			return runLabFetch(ctx, env, args[1:])
		}
	}
	fs := newFlags(env, "lab", "[flags]", `
Run Avalanche side by side with BitTorrent (aria2c + opentracker) and plain
HTTP on emulated hosts: one network namespace per host, veth links on a
bridge, each host's uplink capped with tc tbf, all inside a private network
namespace that disappears with the run. One seed host, N leecher hosts;
fresh hosts for every run. Prints Markdown tables (or JSON with --json) and
writes JSON, plots and logs to a results folder. Needs root.

Scenarios: smoke (N=4, 16 MiB, Avalanche and aria2: the CI test), and the
five of issue 4: uniform (1), hetero (2), seed-leaves (3), churn (4),
scale (5); "all" runs those five. Plain HTTP needs N×F/u_seed per run (6 to
12 minutes for 128 MiB), hence its own repetition count. A full run (all,
3 repetitions, HTTP once) took 65 minutes on a 2-core machine.

Hidden helpers run inside the hosts: "lab serve-http" and "lab fetch".`)
	scenarios := fs.String("scenario", "all", "comma-separated scenarios (or numbers 1-5, or all)")
	systemsFlag := fs.String("systems", "", "comma-separated systems: "+strings.Join(lab.Systems(), ",")+" (default: the scenario's)")
	reps := fs.Int("reps", 3, "repetitions per system")
	repsHTTP := fs.Int("reps-http", 1, "repetitions for plain HTTP")
	jsonOut := fs.Bool("json", false, "print one JSON record per system and scenario instead of tables")
	out := fs.String("out", "bench/results", `results folder (a subfolder per run; "" writes none)`)
	doc := fs.String("doc", "", "also update this Markdown file's tables (e.g. docs/benchmarks.md)")
	work := fs.String("workdir", "", "work directory on disk (default: a tmpfs private to the run)")
	stall := fs.Duration("stall", 30*time.Second, "end a run when no leecher progressed for this long")
	timeout := fs.Duration("timeout", 0, "time limit per run (default: 1 min + 10 × the bound; plain HTTP 1 min + 3·N·F/u_seed)")
	idleWait := fs.Duration("idle-wait", 5*time.Minute, "before each run, wait this long at most for other processes to leave the CPUs alone (negative: never wait)")
	piece := fs.String("piece", "64k", "BitTorrent piece size (64k: best of a sweep from 32k to 1M on scenario 1, see docs/benchmarks.md)")
	retries := fs.Int("retries", 2, "run again, at most this many times, a run during which other processes used over a quarter of a core")
	rateScale := fs.Float64("rate-scale", 1, "multiply every uplink by this (0.5: half the rates, to take the CPUs out of the way)")
	getFlags := fs.String("get-flags", "", `extra flags for every "avalanche get", space-separated (e.g. "-v -slots 16")`)
	getEnv := fs.String("get-env", "", `extra environment for every "avalanche get", space-separated (e.g. "GOMAXPROCS=1")`)
	perf := fs.Bool("perf", false, `profile every run with "perf record -a" (Debian package linux-perf); perf.txt lands beside the run's logs`)
	binary := fs.String("binary", "", "avalanche binary to run on the hosts (default: this one)")
	install := fs.Bool("install", false, "install the Debian packages the lab needs (apt-get) and exit")
	list := fs.Bool("list", false, "list the scenarios and exit")
	from := fs.String("from", "", "run nothing: redo the tables, plots and --doc from this results folder")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("lab takes no arguments: %w", errUsage)
	}
	if *list {
		for _, s := range lab.Scenarios() {
			fmt.Fprintf(env.Stdout, "%-12s %s\n             %s; bound %.1f s\n", s.Name, s.Title, s.Describe(), s.LowerBound())
		}
		return nil
	}
	if *install {
		return labInstall(ctx, env)
	}
	if *from != "" {
		rep, err := lab.LoadResults(*from)
		if err != nil {
			return err
		}
		if err := lab.WriteResults(rep); err != nil {
			return err
		}
		return printLab(env, rep, *jsonOut, *doc)
	}
	cfg := lab.Config{Reps: *reps, RepsHTTP: *repsHTTP, OutDir: *out, WorkDir: *work, Stall: *stall, Timeout: *timeout, IdleWait: *idleWait, Retries: *retries, Log: env.Stderr}
	if *retries == 0 {
		cfg.Retries = -1
	}
	for _, name := range splitComma(*scenarios) {
		if name == "all" {
			cfg.Scenarios = append(cfg.Scenarios, lab.Scenarios()[1:]...)
			continue
		}
		s, ok := lab.LookupScenario(name)
		if !ok {
			return fmt.Errorf("lab: unknown scenario %q (have %s, all): %w", name, strings.Join(lab.ScenarioNames(), ", "), errUsage)
		}
		cfg.Scenarios = append(cfg.Scenarios, s)
	}
	if len(cfg.Scenarios) == 0 {
		return fmt.Errorf("lab: no scenario: %w", errUsage)
	}
	if *rateScale <= 0 || *rateScale > 10 {
		return fmt.Errorf("lab: --rate-scale must be in (0, 10]: %w", errUsage)
	}
	for i := range cfg.Scenarios {
		cfg.Scenarios[i] = cfg.Scenarios[i].Scaled(*rateScale)
	}
	if *systemsFlag != "" {
		for _, s := range splitComma(*systemsFlag) {
			if !slices.Contains(lab.Systems(), s) {
				return fmt.Errorf("lab: unknown system %q (have %s): %w", s, strings.Join(lab.Systems(), ", "), errUsage)
			}
			cfg.Systems = append(cfg.Systems, s)
		}
	}
	if *reps < 1 || *repsHTTP < 1 {
		return fmt.Errorf("lab: --reps and --reps-http must be at least 1: %w", errUsage)
	}
	ps, err := parseSize(*piece)
	if err != nil || ps < 16<<10 || ps&(ps-1) != 0 {
		return fmt.Errorf("lab: --piece must be a power of two of at least 16k: %w", errUsage)
	}
	cfg.PieceSize = ps
	cfg.GetArgs = strings.Fields(*getFlags)
	cfg.GetEnv = strings.Fields(*getEnv)
	cfg.Perf = *perf

	if os.Geteuid() != 0 {
		return errors.New("lab: needs root (network namespaces, veth links and tc); run it with sudo")
	}
	var all []string
	for _, s := range cfg.Scenarios {
		if cfg.Systems != nil {
			all = append(all, cfg.Systems...)
		} else if s.Systems != nil {
			all = append(all, s.Systems...)
		} else {
			all = append(all, lab.Systems()...)
		}
	}
	if miss := lab.Missing(all); len(miss) > 0 {
		var names, pkgs []string
		for _, m := range miss {
			names = append(names, m.String())
			if !slices.Contains(pkgs, m.Package) {
				pkgs = append(pkgs, m.Package)
			}
		}
		return fmt.Errorf("lab: missing %s; run \"avalanche lab --install\" or \"apt-get install %s\"",
			strings.Join(names, ", "), strings.Join(pkgs, " "))
	}

	if env.getenv(labIsolatedEnv) != "1" {
		// Re-run this command in a private network and mount namespace.
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("lab: %w", err)
		}
		code, err := lab.Isolate(ctx, exe, append([]string{"lab"}, args...), []string{labIsolatedEnv + "=1"}, env.Stdin, env.Stdout, env.Stderr)
		if err != nil {
			return err
		}
		if code != 0 {
			return withCode(code, errors.New("lab failed"))
		}
		return nil
	}
	if err := lab.EnterIsolation(); err != nil {
		return err
	}
	cfg.Isolated = true
	if cfg.Binary = *binary; cfg.Binary == "" {
		if cfg.Binary, err = os.Executable(); err != nil {
			return fmt.Errorf("lab: %w", err)
		}
	}
	rep, runErr := lab.Run(ctx, cfg)
	if rep != nil {
		if err := printLab(env, rep, *jsonOut, *doc); err != nil {
			return err
		}
	}
	return runErr
}

// printLab prints a lab report as tables or JSON records and updates doc.
func printLab(env *Env, rep *lab.Report, jsonOut bool, doc string) error {
	if jsonOut {
		enc := json.NewEncoder(env.Stdout)
		for _, s := range rep.Summaries() {
			enc.Encode(s)
		}
	} else {
		rep.WriteMarkdown(env.Stdout)
	}
	if rep.Dir != "" {
		fmt.Fprintf(env.Stderr, "results in %s\n", rep.Dir)
	}
	if doc != "" {
		if err := lab.UpdateDoc(doc, rep); err != nil {
			return err
		}
		fmt.Fprintf(env.Stderr, "updated %s\n", doc)
	}
	return nil
}

// labInstall installs the lab's Debian prerequisites.
func labInstall(ctx context.Context, env *Env) error {
	if os.Geteuid() != 0 {
		return errors.New("lab: --install needs root")
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return fmt.Errorf("lab: --install needs apt-get; install %s by hand", strings.Join(lab.Packages(), " "))
	}
	steps := [][]string{
		{"apt-get", "update"},
		append([]string{"apt-get", "install", "-y", "--no-install-recommends"}, lab.Packages()...),
	}
	for _, st := range steps {
		cmd := exec.CommandContext(ctx, st[0], st[1:]...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		cmd.Stdout, cmd.Stderr = env.Stderr, env.Stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("lab: %s: %w", strings.Join(st, " "), err)
		}
	}
	if miss := lab.Missing(lab.Systems()); len(miss) > 0 {
		return fmt.Errorf("lab: still missing %v", miss)
	}
	fmt.Fprintln(env.Stderr, "lab prerequisites installed")
	return nil
}

// runLabServe is "avalanche lab serve-http": the plain-HTTP system's file
// server, run by the lab on the seed host.
func runLabServe(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "lab serve-http", "--listen ADDR --file PATH", `
Serve one file over HTTP at /NAME, with Range support, and its byte
counters at /stats. The lab runs it on the seed host for plain HTTP.`)
	listen := fs.String("listen", "127.0.0.1:8080", "listen address")
	file := fs.String("file", "", "the file to serve")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *file == "" {
		return fmt.Errorf("lab serve-http: --file is required: %w", errUsage)
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("lab serve-http: %w", err)
	}
	return lab.ServeFile(ctx, ln, *file)
}

// runLabFetch is "avalanche lab fetch": the plain-HTTP system's client.
func runLabFetch(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "lab fetch", "[--json] [--sha256 HEX] -o FILE URL", `
Download URL to FILE with one GET and check its SHA-256; with --json print
progress lines like "avalanche get --json" does. The lab runs it on every
leecher host for plain HTTP.`)
	out := fs.String("o", "", "output file")
	sum := fs.String("sha256", "", "expected SHA-256 in hex")
	jsonOut := fs.Bool("json", false, "print JSON progress lines")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *out == "" {
		return fmt.Errorf("lab fetch needs -o FILE and one URL: %w", errUsage)
	}
	cfg := lab.FetchConfig{URL: fs.Arg(0), Output: *out, SHA256: strings.ToLower(*sum)}
	if *jsonOut {
		cfg.Progress = env.Stdout
	}
	err := lab.Fetch(ctx, cfg)
	if errors.Is(err, lab.ErrMismatch) {
		return withCode(exitIntegrity, err)
	}
	return err
}
