// Package lab runs Avalanche side by side with BitTorrent (aria2c and
// opentracker) and plain HTTP on emulated hosts, and reports how each did
// against the fluid lower bound.
//
// Every host is a Linux network namespace with one veth link to a bridge and
// an uplink capped with tc tbf; all of it lives inside a private network and
// mount namespace made for the run (see Isolate), so nothing is left behind
// when the lab exits, even by SIGKILL, and two labs cannot see each other.
// One host seeds (origin and tracker), N hosts leech. For each scenario,
// system and repetition the lab builds fresh hosts, starts the seed, starts
// the leechers together (t0), and watches ten times a second: the hosts' tbf
// counters over netlink, each client's progress, CPU use from /proc. It makes
// the seed leave, leechers leave or arrive late as the scenario says, and
// stops when every staying leecher is done, when nothing moved for a while,
// or at a time limit.
//
// Run needs root, iproute2, and the programs of the systems it runs (see
// Missing). Results come as a Report; WriteResults writes Markdown tables,
// JSON and PNG plots.
package lab

import (
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// Config configures Run. The zero value of every field but Binary and
// Scenarios works.
type Config struct {
	// Binary is the avalanche binary the hosts run (origin, control, get,
	// and the lab's own HTTP server and client). Required.
	Binary string
	// Scenarios to run, in order. Required.
	Scenarios []Scenario
	// Systems to run; nil means each scenario's default (all three, or
	// Avalanche and aria2 for smoke).
	Systems []string
	// Reps is the number of repetitions per system (default 3); RepsHTTP
	// overrides it for plain HTTP, which is slow and nearly deterministic
	// (default 1).
	Reps, RepsHTTP int
	// WorkDir holds payloads and the hosts' files. Empty: a tmpfs mounted
	// at /run/avalanche-lab, visible only inside the lab's namespaces
	// (needs Isolated).
	WorkDir string
	// OutDir receives the results: logs, JSON, plots, Markdown. Empty: none
	// are written (logs go to WorkDir and are deleted).
	OutDir string
	// Stall ends a run when no leecher progressed for this long (default
	// 30 s); for Avalanche, progress counts blocks, not only generations.
	// Timeout caps a run (default 1 min + 10 × the bound for swarms, 1 min
	// + 3 × the time one server needs to send everyone a copy for HTTP).
	Stall, Timeout time.Duration
	// IdleWait is how long a run waits, before it starts, for other
	// processes to use less than a fifth of a core (default 5 min; then it
	// runs anyway, and its "other" CPU figure shows the disturbance).
	// Negative: do not wait.
	IdleWait time.Duration
	// Retries is how many times a run is repeated when other processes
	// used more than a quarter of a core on average during it (default 2;
	// negative: never). The last attempt is kept either way.
	Retries int
	// PieceSize is the BitTorrent piece size (default 64 KiB: on scenario
	// 1 aria2 finished in 36.5 s with 1 MiB pieces, 31 s with 256 KiB, 29 s
	// with 128 KiB, 64 KiB or 32 KiB).
	PieceSize int64
	// GetArgs are extra arguments for every "avalanche get" (engine tuning
	// or -v for its event log, which lands in the run's logs).
	GetArgs []string
	// GetEnv is extra environment (NAME=value) for every "avalanche get":
	// GOMAXPROCS, GODEBUG and the like, for experiments.
	GetEnv []string
	// Perf, when set, samples all CPUs with "perf record" during each run
	// and writes perf.txt (hottest symbols by command) beside its logs.
	// The sampling costs a few percent of CPU.
	Perf bool
	// Isolated says the process runs in its own network and mount
	// namespaces (Isolate's child), so it may mount and create links freely.
	Isolated bool
	// Log receives one line per run and setup messages; nil discards.
	Log io.Writer
}

// Lab is a running lab: its configuration, work directory and payloads.
type Lab struct {
	cfg      Config
	work     string
	logRoot  string
	payloads map[int64]*payload
}

// payload is a generated file to distribute.
type payload struct {
	path     string
	size     int64
	sha256   string
	torrent  string
	infoHash string
}

// systems lists every system in table order.
var systems = []string{SystemAvalanche, SystemAria2, SystemHTTP}

// Systems returns the names of the systems the lab knows.
func Systems() []string { return slices.Clone(systems) }

func newSystem(name string) (system, error) {
	switch name {
	case SystemAvalanche:
		return &avalancheSystem{}, nil
	case SystemAria2:
		return aria2System{}, nil
	case SystemHTTP:
		return httpSystem{}, nil
	}
	return nil, fmt.Errorf("lab: unknown system %q (have %v)", name, systems)
}

// Missing returns the programs the systems need that are not installed,
// each with its Debian package: "aria2c (aria2)".
func Missing(systemNames []string) []Requirement {
	need := []Requirement{{"ip", "iproute2"}, {"tc", "iproute2"}}
	for _, s := range systemNames {
		if s == SystemAria2 {
			need = append(need, Requirement{"aria2c", "aria2"}, Requirement{"opentracker", "opentracker"}, Requirement{"mktorrent", "mktorrent"})
		}
	}
	var miss []Requirement
	for _, r := range need {
		if _, err := exec.LookPath(r.Program); err != nil && !slices.Contains(miss, r) {
			miss = append(miss, r)
		}
	}
	return miss
}

// Requirement is a program and the Debian package that provides it.
type Requirement struct {
	Program, Package string
}

func (r Requirement) String() string { return r.Program + " (Debian package " + r.Package + ")" }

// Packages lists the Debian packages the lab can use, for --install.
func Packages() []string { return []string{"iproute2", "aria2", "opentracker", "mktorrent"} }

// ErrMissing is returned by Run when programs are missing.
var ErrMissing = errors.New("lab: missing programs")

// Run runs every scenario, system and repetition in cfg and returns what
// it measured, writing results to cfg.OutDir as it goes. Runs that fail are
// recorded with their error and the lab moves on; Run returns an error only
// when it cannot run at all, or ctx's error after an interruption (with
// what was measured so far).
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Binary == "" || len(cfg.Scenarios) == 0 {
		return nil, errors.New("lab: Binary and Scenarios are required")
	}
	if cfg.Reps <= 0 {
		cfg.Reps = 3
	}
	if cfg.RepsHTTP <= 0 {
		cfg.RepsHTTP = 1
	}
	if cfg.Stall <= 0 {
		cfg.Stall = 30 * time.Second
	}
	if cfg.IdleWait == 0 {
		cfg.IdleWait = 5 * time.Minute
	}
	if cfg.PieceSize <= 0 {
		cfg.PieceSize = 64 << 10
	}
	if cfg.Retries == 0 {
		cfg.Retries = 2
	}
	if os.Geteuid() != 0 {
		return nil, errNotRoot
	}
	var all []string
	for i := range cfg.Scenarios {
		all = append(all, systemsFor(&cfg, &cfg.Scenarios[i])...)
	}
	if miss := Missing(all); len(miss) > 0 {
		return nil, fmt.Errorf("%w: %v", ErrMissing, miss)
	}
	unlock, err := lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	l := &Lab{cfg: cfg, payloads: map[int64]*payload{}}
	if dynamic(cfg.Binary) {
		l.logf("note: %s is dynamically linked; each avalanche get then spends about 5 ms more CPU starting, which sixteen at once on two cores turn into a later start. Build it with CGO_ENABLED=0 for the figures in docs/benchmarks.md.", cfg.Binary)
	}
	if l.work, err = l.workDir(); err != nil {
		return nil, err
	}
	defer l.removeWork()
	if err := newBridge(ctx); err != nil {
		return nil, err
	}
	defer removeBridge()

	rep := &Report{Started: time.Now().UTC(), Reps: cfg.Reps, RepsHTTP: cfg.RepsHTTP, Host: hostInfo()}
	if cfg.OutDir != "" {
		rep.Dir = filepath.Join(cfg.OutDir, rep.Started.Format("20060102-150405"))
		l.logRoot = filepath.Join(rep.Dir, "logs")
	} else {
		l.logRoot = filepath.Join(l.work, "logs")
	}
	for i := range cfg.Scenarios {
		sc := &cfg.Scenarios[i]
		sr, err := l.scenario(ctx, sc)
		if sr != nil {
			rep.Scenarios = append(rep.Scenarios, sr)
			rep.Summarise()
			if rep.Dir != "" {
				if werr := WriteResults(rep); werr != nil {
					l.logf("cannot write results: %v", werr)
				}
			}
		}
		if err != nil {
			return rep, err
		}
	}
	return rep, nil
}

// systemsFor returns the systems to run for a scenario, in table order.
func systemsFor(cfg *Config, sc *Scenario) []string {
	want := systems
	switch {
	case cfg.Systems != nil:
		want = cfg.Systems
	case sc.Systems != nil:
		want = sc.Systems
	}
	var out []string
	for _, s := range systems {
		if slices.Contains(want, s) {
			out = append(out, s)
		}
	}
	for _, s := range want {
		if !slices.Contains(out, s) {
			out = append(out, s) // unknown: newSystem reports it
		}
	}
	return out
}

// scenario runs every system and repetition of one scenario; repetitions
// are interleaved (A B C A B C ...) so that slow drift hits every system
// alike.
func (l *Lab) scenario(ctx context.Context, sc *Scenario) (*ScenarioReport, error) {
	sr := &ScenarioReport{Name: sc.Name, Title: sc.Title, Description: sc.Describe(), Leechers: sc.N(),
		Expected: sc.Expected(), FileSize: sc.FileSize, BoundSeconds: sc.LowerBound()}
	names := systemsFor(&l.cfg, sc)
	sr.Systems = slices.Clone(names)
	l.logf("== %s: %s (bound %.1f s)", sc.Name, sc.Describe(), sc.LowerBound())
	pl, err := l.payload(sc.FileSize)
	if err != nil {
		return nil, err
	}
	reps := max(l.cfg.Reps, l.cfg.RepsHTTP)
	for rep := 1; rep <= reps; rep++ {
		for _, name := range names {
			if rep > l.reps(name) {
				continue
			}
			sys, err := newSystem(name)
			if err != nil {
				return sr, err
			}
			var res *RunResult
			for attempt := 0; ; attempt++ {
				l.waitIdle(ctx)
				r := &run{lab: l, sc: sc, sys: sys, rep: rep, pl: pl, dir: filepath.Join(l.work, "run")}
				res, err = r.execute(ctx)
				if err != nil {
					res = &RunResult{System: name, Scenario: sc.Name, Rep: rep, Leechers: sc.N(), Expected: sc.Expected(),
						End: "error: " + err.Error(), BoundSeconds: sc.LowerBound(), FileSize: sc.FileSize}
				}
				l.logf("%s", res.line())
				if res.OtherCPU <= disturbedLoad || attempt >= l.cfg.Retries || ctx.Err() != nil {
					break
				}
				l.logf("  other processes used %.2f cores during that run: running it again", res.OtherCPU)
				if sys, err = newSystem(name); err != nil {
					return sr, err
				}
			}
			sr.Runs = append(sr.Runs, res)
			if ctx.Err() != nil {
				return sr, ctx.Err()
			}
		}
	}
	return sr, nil
}

// disturbedLoad is the most CPU other processes may use on average during
// a run for it to count as undisturbed.
const disturbedLoad = 0.25

// idleLoad is the most CPU other processes may use for a run to start
// without waiting.
const idleLoad = 0.2

// waitIdle waits until other processes leave the CPUs alone (two quiet
// seconds in a row), for at most IdleWait.
func (l *Lab) waitIdle(ctx context.Context) {
	if l.cfg.IdleWait < 0 {
		return
	}
	deadline := time.Now().Add(l.cfg.IdleWait)
	quiet, said := 0, false
	for quiet < 2 && ctx.Err() == nil {
		load := otherLoad(ctx)
		if load < idleLoad {
			quiet++
			continue
		}
		quiet = 0
		if time.Now().After(deadline) {
			l.logf("  other processes still use %.1f cores after %s; running anyway", load, l.cfg.IdleWait)
			return
		}
		if !said {
			l.logf("  waiting for other processes to leave the CPUs alone (they use %.1f cores)", load)
			said = true
		}
	}
}

// reps returns the number of repetitions for a system.
func (l *Lab) reps(name string) int {
	if name == SystemHTTP {
		return l.cfg.RepsHTTP
	}
	return l.cfg.Reps
}

// timeout returns a run's time limit: 1 min + 3 × what one server needs to
// send everyone a copy for plain HTTP, 1 min + 10 × the bound for swarms.
func (l *Lab) timeout(sc *Scenario, system string) time.Duration {
	if l.cfg.Timeout > 0 {
		return l.cfg.Timeout
	}
	limit := 10 * sc.LowerBound()
	if system == SystemHTTP {
		limit = 3 * float64(sc.N()) * float64(sc.FileSize) * 8 / float64(sc.SeedUp)
	}
	return time.Minute + time.Duration(limit*float64(time.Second))
}

// dynamic reports whether the program at path is a dynamically linked ELF
// file (it names an interpreter, the dynamic loader).
func dynamic(path string) bool {
	f, err := elf.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return true
		}
	}
	return false
}

func (l *Lab) logf(format string, args ...any) {
	if l.cfg.Log != nil {
		fmt.Fprintf(l.cfg.Log, format+"\n", args...)
	}
}

// payload returns the file of the given size, generating it once:
// pseudo-random (incompressible) bytes from a fixed seed, so that every run
// distributes the same file.
func (l *Lab) payload(size int64) (*payload, error) {
	if p := l.payloads[size]; p != nil {
		return p, nil
	}
	dir := filepath.Join(l.work, fmt.Sprintf("payload-%d", size))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "payload.bin")
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rng := rand.NewChaCha8([32]byte{'a', 'v', 'a', 'l', 'a', 'n', 'c', 'h', 'e'})
	h := sha256.New()
	buf := make([]byte, 1<<20)
	for left := size; left > 0; {
		n := min(left, int64(len(buf)))
		rng.Read(buf[:n])
		h.Write(buf[:n])
		if _, err := f.Write(buf[:n]); err != nil {
			return nil, err
		}
		left -= n
	}
	if err := f.Close(); err != nil {
		return nil, err
	}
	p := &payload{path: path, size: size, sha256: hex.EncodeToString(h.Sum(nil))}
	l.payloads[size] = p
	return p, nil
}

// tmpfsDir is where the work tmpfs is mounted inside the lab's private
// mount namespace.
const tmpfsDir = "/run/avalanche-lab"

// workDir prepares the work directory: a fresh tmpfs when isolated and no
// directory was given.
func (l *Lab) workDir() (string, error) {
	if l.cfg.WorkDir != "" {
		d := filepath.Join(l.cfg.WorkDir, "avalanche-lab")
		os.RemoveAll(d) // a crashed earlier run's files
		return d, os.MkdirAll(d, 0o755)
	}
	if !l.cfg.Isolated {
		return "", errors.New("lab: a tmpfs work directory needs isolation (or set WorkDir)")
	}
	if err := os.MkdirAll(tmpfsDir, 0o755); err != nil {
		return "", err
	}
	if err := unix.Mount("tmpfs", tmpfsDir, "tmpfs", 0, "mode=0755"); err != nil {
		return "", fmt.Errorf("lab: mount tmpfs on %s: %w", tmpfsDir, err)
	}
	return tmpfsDir, nil
}

func (l *Lab) removeWork() {
	if l.work == tmpfsDir {
		unix.Unmount(tmpfsDir, unix.MNT_DETACH)
		return
	}
	os.RemoveAll(l.work)
}

// lockPath serialises labs on one machine: they would share its CPUs.
const lockPath = "/run/avalanche-lab.lock"

// ErrBusy is returned by Run when another lab is running.
var ErrBusy = errors.New("lab: another lab run holds " + lockPath)

func lock() (func(), error) {
	f, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lab: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		b, _ := os.ReadFile(lockPath)
		f.Close()
		return nil, fmt.Errorf("%w (pid %s)", ErrBusy, bytesTrim(b))
	}
	f.Truncate(0)
	fmt.Fprintf(f, "%d\n", os.Getpid())
	return func() { f.Close() }, nil
}

// hostInfo describes the machine for the report.
func hostInfo() string {
	var u unix.Utsname
	unix.Uname(&u)
	return fmt.Sprintf("%s %s, %d CPUs", cString(u.Sysname[:]), cString(u.Release[:]), runtime.NumCPU())
}

// copyFile copies src to dst, creating dst's directory.
func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
