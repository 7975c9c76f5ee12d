package lab

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// system is one distribution system the lab can run.
type system interface {
	// name is the system's name in tables ("avalanche", "aria2", "http").
	name() string
	// startSeed starts the seed host's processes and returns once they
	// serve the payload. Processes that leave with the seed are started
	// with role procSeed; those that stay (trackers) with procTracker.
	startSeed(ctx context.Context, r *run) error
	// startLeecher starts the client on one leecher host, feeding its
	// progress into l.
	startLeecher(ctx context.Context, r *run, l *leecher) (*proc, error)
	// seedUploaded returns the seed application's own count of bytes it
	// has uploaded, if it has one the lab can read.
	seedUploaded(ctx context.Context, r *run) (int64, bool)
}

// run is one repetition of one system in one scenario.
type run struct {
	lab    *Lab
	sc     *Scenario
	sys    system
	rep    int
	pl     *payload
	dir    string
	logDir string
	tb     *testbed
	t0     time.Time

	mu       sync.Mutex
	procs    []*proc
	leechers []*leecher
	clients  map[*host]*http.Client

	// Counters: baseline at t0, latest sample, and one snapshot a second.
	base   []qdiscCounters
	latest []qdiscCounters
	queued []uint64 // per host: backlog bytes summed over the samples since the last snapshot
	nqueue int      // samples in queued
	snaps  []snapshot
	cpu    cpuMeter
	diag   *netlinkConn // the seed's socket diagnostics

	seedLeft     bool
	seedLeftAt   time.Duration
	seedAtLeave  int64
	seedAppFinal int64
	seedAppOK    bool
}

// snapshot is the state of the run at one instant.
type snapshot struct {
	at       time.Duration
	counters []qdiscCounters // per host, since t0
	frac     []float64       // per leecher; -1 before start, after leaving
	queueMs  []float64       // per host: mean tbf backlog since the previous snapshot, ms at the host's rate
	busy     float64         // machine CPU busy (cores) since the previous snapshot
	roles    map[string]float64
}

// headerBytes is what one TCP/IPv4 segment with timestamps adds on
// Ethernet: 14 + 20 + 32 bytes. tc counts segments even for GSO packets,
// so bytes - 66·packets estimates the TCP payload put on the wire.
const headerBytes = 66

func payloadOf(c qdiscCounters) int64 {
	return max(0, int64(c.Bytes)-headerBytes*int64(c.Packets))
}

func sub(a, b qdiscCounters) qdiscCounters {
	return qdiscCounters{Bytes: a.Bytes - b.Bytes, Packets: a.Packets - b.Packets, Backlog: a.Backlog, Drops: a.Drops - b.Drops}
}

// now returns the offset from t0.
func (r *run) now() time.Duration { return time.Since(r.t0) }

// hostDir returns the working directory of a host.
func (r *run) hostDir(h *host) string { return filepath.Join(r.dir, h.name) }

// httpClient returns an HTTP client whose connections start inside h.
func (r *run) httpClient(h *host) *http.Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c := r.clients[h]; c != nil {
		return c
	}
	if r.clients == nil {
		r.clients = map[*host]*http.Client{}
	}
	c := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{DialContext: h.dial, MaxIdleConnsPerHost: 4},
	}
	r.clients[h] = c
	return c
}

// execute runs the repetition: testbed, seed, leechers, monitoring,
// teardown.
func (r *run) execute(ctx context.Context) (res *RunResult, err error) {
	sc := r.sc
	r.logDir = filepath.Join(r.lab.logRoot, fmt.Sprintf("%s-%s-%d", sc.Name, r.sys.name(), r.rep))
	if err := os.MkdirAll(r.logDir, 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(r.dir)
	tb, err := newTestbed(ctx, sc)
	if err != nil {
		return nil, err
	}
	r.tb = tb
	defer func() {
		r.stopAll()
		for _, c := range r.clients {
			c.CloseIdleConnections()
		}
		tb.close()
	}()
	if r.diag, err = openNetlink(tb.seed.ns, unix.NETLINK_SOCK_DIAG); err != nil {
		return nil, err
	}
	defer r.diag.close()
	for i, h := range tb.leechers {
		r.leechers = append(r.leechers, &leecher{idx: i, host: h, role: sc.role(i), dir: r.hostDir(h)})
	}

	sctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	err = r.sys.startSeed(sctx, r)
	cancel()
	if err != nil {
		return nil, err
	}

	// t0: leechers start.
	r.base = r.readCounters()
	r.latest = make([]qdiscCounters, len(tb.all))
	r.queued = make([]uint64, len(tb.all))
	r.cpu.start(r)
	var prof *exec.Cmd
	if r.lab.cfg.Perf {
		prof = startPerf(r.logDir)
	}
	r.t0 = time.Now()
	r.snapshot(0)
	for _, l := range r.leechers {
		if l.role != roleLate {
			if err := r.launch(ctx, l); err != nil {
				return nil, err
			}
		}
	}
	end, endAt := r.monitor(ctx)
	if prof != nil {
		stopPerf(prof, r.logDir)
	}
	res = r.result(end, endAt)
	return res, nil
}

// startPerf samples every CPU with perf until stopPerf, for a report of
// where the CPU time of the run went (perf.txt beside the logs).
func startPerf(dir string) *exec.Cmd {
	cmd := exec.Command("perf", "record", "-F", "499", "-a", "-g", "-o", filepath.Join(dir, "perf.data"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil
	}
	return cmd
}

// stopPerf stops perf record and writes perf.txt: the hottest symbols by
// command, self time, without call graphs.
func stopPerf(cmd *exec.Cmd, dir string) {
	cmd.Process.Signal(os.Interrupt)
	cmd.Wait()
	out, err := exec.Command("perf", "report", "-i", filepath.Join(dir, "perf.data"), "--no-children",
		"--sort", "comm,dso,symbol", "--stdio", "-g", "none", "--percent-limit", "0.3").Output()
	if err == nil {
		os.WriteFile(filepath.Join(dir, "perf.txt"), out, 0o644)
	}
}

// launch starts one leecher.
func (r *run) launch(ctx context.Context, l *leecher) error {
	l.mu.Lock()
	l.launched, l.startAt, l.size = true, r.now(), r.pl.size
	l.mu.Unlock()
	p, err := r.sys.startLeecher(ctx, r, l)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.proc = p
	l.mu.Unlock()
	return nil
}

// Why a run ended.
const (
	endAllDone     = "all done"
	endStalled     = "stalled"
	endTimeout     = "timeout"
	endInterrupted = "interrupted"
	endExited      = "clients exited" // every unfinished client has exited
)

// monitor watches the run ten times a second until every staying leecher
// is done, every unfinished one has exited, nothing moves for Stall, the time limit passes or ctx ends. It
// starts late leechers, stops leavers, and makes the seed leave.
func (r *run) monitor(ctx context.Context) (string, time.Duration) {
	sc := r.sc
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	limit := r.lab.timeout(sc, r.sys.name())
	lateStarted := sc.Late == 0
	var lastTotal int64 = -1
	var lastChange time.Duration
	for {
		select {
		case <-ctx.Done():
			return endInterrupted, r.now()
		case <-tick.C:
		}
		t := r.now()
		cur := r.readCounters()
		for i := range cur {
			cur[i] = sub(cur[i], r.base[i])
		}
		r.mu.Lock()
		r.latest = cur
		for i := range cur {
			r.queued[i] += uint64(cur[i].Backlog)
		}
		r.nqueue++
		r.mu.Unlock()
		if int(t/time.Second) >= len(r.snaps) {
			r.snapshot(t)
		}
		if !lateStarted && t >= sc.LateDelay {
			lateStarted = true
			for _, l := range r.leechers {
				if l.role == roleLate {
					if err := r.launch(ctx, l); err != nil {
						r.lab.logf("  %s: cannot start late leecher %s: %v", r.sys.name(), l.host.name, err)
					}
				}
			}
		}
		if sc.SeedLeavesAt > 0 && !r.seedLeft {
			r.maybeSeedLeaves(ctx, cur[0], t)
		}
		var total int64
		allDone, last := true, time.Duration(0)
		canMove := !lateStarted
		for _, l := range r.leechers {
			l.mu.Lock()
			total += l.done + l.rank
			if l.complete {
				total++ // completion counts as progress
			}
			if l.role == roleLeaver && !l.left && l.launched && float64(l.done) >= sc.LeaveAt*float64(r.pl.size) {
				l.left, l.leftAt, l.leftFrac = true, t, float64(l.done)/float64(r.pl.size)
				go l.proc.stop(5 * time.Second)
			}
			if l.role != roleLeaver {
				if l.complete {
					last = max(last, l.completeAt)
				} else {
					allDone = false
					if l.proc == nil || l.proc.running() {
						canMove = true
					}
				}
			}
			l.mu.Unlock()
		}
		if allDone {
			return endAllDone, last
		}
		if !canMove {
			return endExited, t
		}
		if total != lastTotal {
			lastTotal, lastChange = total, t
		}
		if t-lastChange > r.lab.cfg.Stall && lateStarted {
			return endStalled, t
		}
		if t > limit {
			return endTimeout, t
		}
	}
}

// maybeSeedLeaves kills the seed's processes once it has uploaded
// SeedLeavesAt × the file. "Uploaded" is the seed application's own count
// of content bytes sent where it has one (aria2's uploadLength, the HTTP
// server's body bytes, the Avalanche origin's coded block payload), as the
// research baselines counted it; protocol overhead comes on top and shows
// in the wire figures. Without one, it is what the seed's programs handed
// to the kernel: TCP payload past the shaper plus the shaper's queue and
// the sockets' unsent bytes. Either way the kernel then drains exactly
// that much.
func (r *run) maybeSeedLeaves(ctx context.Context, seed qdiscCounters, t time.Duration) {
	est, ok := r.sys.seedUploaded(ctx, r)
	if ok {
		r.seedAppFinal, r.seedAppOK = est, true
	} else {
		est = payloadOf(seed) + int64(seed.Backlog)
		if ns, err := r.diag.tcpNotsent(); err == nil {
			est += ns
		}
	}
	if float64(est) < r.sc.SeedLeavesAt*float64(r.pl.size) {
		return
	}
	r.seedLeft, r.seedLeftAt, r.seedAtLeave = true, t, est
	r.mu.Lock()
	procs := append([]*proc(nil), r.procs...)
	r.mu.Unlock()
	for _, p := range procs {
		if p.role == procSeed {
			p.signal(syscall.SIGKILL)
		}
	}
	basis := "as counted by the seed program"
	if !ok {
		basis = "handed to the kernel"
	}
	r.lab.logf("  %s: seed left at %.1fs after sending %.3f× the file (%s)", r.sys.name(), t.Seconds(), float64(est)/float64(r.pl.size), basis)
}

// readCounters reads every host's tbf counters (absolute).
func (r *run) readCounters() []qdiscCounters {
	out := make([]qdiscCounters, len(r.tb.all))
	for i, h := range r.tb.all {
		c, err := h.tc.tbfCounters()
		if err == nil {
			out[i] = c
		}
	}
	return out
}

// snapshot records the state at t.
func (r *run) snapshot(t time.Duration) {
	r.mu.Lock()
	cur := append([]qdiscCounters(nil), r.latest...)
	s := snapshot{at: t, counters: cur, frac: make([]float64, len(r.leechers)), queueMs: make([]float64, len(cur))}
	for i, h := range r.tb.all {
		if r.nqueue > 0 && h.up > 0 {
			s.queueMs[i] = float64(r.queued[i]) / float64(r.nqueue) * 8 / float64(h.up) * 1000
		}
		r.queued[i] = 0
	}
	r.nqueue = 0
	r.mu.Unlock()
	for i, l := range r.leechers {
		l.mu.Lock()
		switch {
		case !l.launched || l.left:
			s.frac[i] = -1
		case l.complete:
			s.frac[i] = 1
		default:
			s.frac[i] = float64(l.done) / float64(r.pl.size)
		}
		l.mu.Unlock()
	}
	s.busy, s.roles = r.cpu.sample(r)
	r.snaps = append(r.snaps, s)
}

// stopAll ends every process of the run and waits for them: SIGTERM
// first, so that they can write what they write on exit (profiles, for
// one), and SIGKILL to whatever is left after a few seconds.
func (r *run) stopAll() {
	r.mu.Lock()
	procs := append([]*proc(nil), r.procs...)
	r.mu.Unlock()
	for _, p := range procs {
		p.signal(syscall.SIGTERM)
	}
	grace := time.After(3 * time.Second)
	for _, p := range procs {
		select {
		case <-p.exited:
		case <-grace:
		}
	}
	for _, p := range procs {
		p.signal(syscall.SIGKILL)
	}
	for _, p := range procs {
		<-p.exited
	}
}

// cpuMeter turns /proc counters into CPU use by role. "Kernel" is kernel
// threads (network softirqs among them); "other" is the CPU time charged to
// processes that are not the lab's (user + nice + system from /proc/stat,
// less the lab's processes, itself and kernel threads): on a shared machine
// it says how much a run was disturbed.
type cpuMeter struct {
	last     cpuTimes
	lastSelf int64
	lastKern int64
	lastProc map[*proc]int64
	lastAt   time.Time
}

func (m *cpuMeter) start(r *run) {
	m.last, m.lastSelf, m.lastKern = machineCPU(), selfTicks(), kernelTicks()
	m.lastProc = map[*proc]int64{}
	m.lastAt = time.Now()
	m.sample(r)
}

// sample returns the machine's busy cores and each role's cores (with
// "lab" for the lab itself and "other" for everything else) since the
// previous sample.
func (m *cpuMeter) sample(r *run) (float64, map[string]float64) {
	cur, self, kern := machineCPU(), selfTicks(), kernelTicks()
	now := time.Now()
	dt := now.Sub(m.lastAt).Seconds()
	roles := map[string]float64{}
	if dt <= 0 {
		return 0, roles
	}
	cores := func(ticks int64) float64 { return float64(ticks) / clockTick / dt }
	busy := cores(cur.busy - m.last.busy)
	var ours int64
	r.mu.Lock()
	procs := append([]*proc(nil), r.procs...)
	r.mu.Unlock()
	for _, p := range procs {
		ticks, ok := p.cpuTicks()
		if !ok {
			continue
		}
		last, seen := m.lastProc[p]
		m.lastProc[p] = ticks
		if seen {
			roles[p.role] += cores(ticks - last)
			ours += ticks - last
		}
	}
	roles[cpuLab] = cores(self - m.lastSelf)
	roles[cpuKernel] = cores(kern - m.lastKern)
	roles[cpuOther] = max(0, cores(cur.tasks-m.last.tasks-ours-(self-m.lastSelf)-(kern-m.lastKern)))
	m.last, m.lastSelf, m.lastKern, m.lastAt = cur, self, kern, now
	return busy, roles
}

// CPU accounting names beside the process roles.
const (
	cpuLab    = "lab"
	cpuKernel = "kernel"
	cpuOther  = "other"
)

// otherLoad measures, over one second, the cores used by processes that
// are not the lab's (with none of the lab's running).
func otherLoad(ctx context.Context) float64 {
	a, sa, ka := machineCPU(), selfTicks(), kernelTicks()
	t := time.Now()
	select {
	case <-ctx.Done():
	case <-time.After(time.Second):
	}
	b, sb, kb := machineCPU(), selfTicks(), kernelTicks()
	dt := time.Since(t).Seconds()
	return max(0, float64(b.tasks-a.tasks-(sb-sa)-(kb-ka))/clockTick/dt)
}

// result turns the run's records into a RunResult.
func (r *run) result(end string, endAt time.Duration) *RunResult {
	sc := r.sc
	r.snapshot(r.now())
	res := &RunResult{
		System: r.sys.name(), Scenario: sc.Name, Rep: r.rep, Leechers: sc.N(), Expected: sc.Expected(),
		End: end, Duration: endAt.Seconds(), BoundSeconds: sc.LowerBound(), FileSize: r.pl.size,
		SeedUplinkMbit: float64(sc.SeedUp) / Mbit, CPUs: runtime.NumCPU(),
	}
	var received float64
	var stuck []float64
	for _, l := range r.leechers {
		l.mu.Lock()
		lr := LeecherResult{Host: l.host.name, Role: l.role, UplinkMbit: float64(l.host.up) / Mbit, Start: l.startAt.Seconds(), Counters: l.counters}
		if l.complete {
			s := (l.completeAt - l.startAt).Seconds()
			lr.Seconds = &s
			if l.role != roleLeaver {
				res.Completed++
				res.Times = append(res.Times, s)
			}
		}
		if l.left {
			lr.LeftAt, lr.LeftProgress = ptr(l.leftAt.Seconds()), ptr(l.leftFrac)
		}
		if l.proc != nil && !l.proc.running() && !l.complete && !l.left {
			lr.Error = fmt.Sprintf("exited: %v", l.proc.waitErr)
		}
		lr.Progress = round3(float64(l.done) / float64(r.pl.size))
		if l.complete {
			lr.Progress = 1
		}
		received += lr.Progress * float64(r.pl.size)
		if l.role != roleLeaver && !l.complete {
			stuck = append(stuck, lr.Progress)
		}
		l.mu.Unlock()
		res.Leecher = append(res.Leecher, lr)
	}
	sort.Float64s(res.Times)
	if len(stuck) > 0 {
		res.UnfinishedProgress = ptr(round3(median(stuck)))
	}
	if end == endAllDone {
		res.AllDone = ptr(endAt.Seconds())
	}
	// Seed egress at the end of the measured window (the latest sample,
	// at most 100 ms after it).
	r.mu.Lock()
	seed := r.latest[0]
	res.SeedDrops = uint64(seed.Drops)
	for _, c := range r.latest[1:] {
		res.LeecherDrops += uint64(c.Drops)
	}
	r.mu.Unlock()
	f := float64(r.pl.size)
	res.SeedWireRatio = float64(seed.Bytes) / f
	res.SeedEgressRatio = float64(payloadOf(seed)) / f
	if app, ok := r.sys.seedUploaded(context.Background(), r); ok {
		res.SeedAppRatio = ptr(float64(app) / f)
	} else if r.seedAppOK {
		res.SeedAppRatio = ptr(float64(r.seedAppFinal) / f)
	}
	if r.seedLeft {
		res.SeedLeftAt = ptr(r.seedLeftAt.Seconds())
		res.SeedLeftRatio = ptr(float64(r.seedAtLeave) / f)
	}
	r.fillTimeline(res, endAt)
	if received > 0 {
		res.LeecherCPUPerMiB = round3(1000 * res.CPUSeconds[procLeecher] / (received / (1 << 20)))
	}
	return res
}

// fillTimeline derives the per-second series and the utilisation and CPU
// figures over [0, endAt].
func (r *run) fillTimeline(res *RunResult, endAt time.Duration) {
	hosts := r.tb.all
	for i := 1; i < len(r.snaps); i++ {
		a, b := r.snaps[i-1], r.snaps[i]
		dt := (b.at - a.at).Seconds()
		if dt <= 0 {
			continue
		}
		sec := Second{T: round3(b.at.Seconds()), Up: make([]float64, len(hosts)), QueueMs: make([]float64, len(hosts)), Done: b.frac, CPU: round3(b.busy), Roles: map[string]float64{}}
		for h := range hosts {
			sec.Up[h] = round3(float64(payloadOf(b.counters[h])-payloadOf(a.counters[h])) * 8 / Mbit / dt)
			sec.QueueMs[h] = round3(b.queueMs[h])
		}
		for k, v := range b.roles {
			sec.Roles[k] = round3(v)
		}
		res.Timeline = append(res.Timeline, sec)
	}
	// Utilisation and CPU over the measured window.
	T := endAt.Seconds()
	if T <= 0 {
		return
	}
	// The last snapshot was taken when the end was detected, at most
	// 100 ms after endAt.
	last := r.snaps[len(r.snaps)-1]
	T = max(T, last.at.Seconds())
	var leechBytes, leechCap float64
	seedBytes := float64(payloadOf(last.counters[0]))
	for h := 1; h < len(hosts); h++ {
		leechBytes += float64(payloadOf(last.counters[h]))
		leechCap += float64(hosts[h].up) / 8 * T
	}
	res.SeedUse = seedBytes / (float64(hosts[0].up) / 8 * T)
	if leechCap > 0 {
		res.LeecherUse = leechBytes / leechCap
	}
	res.CPUSeconds = map[string]float64{}
	var busy, tsum float64
	prev := time.Duration(0)
	for _, s := range r.snaps[1:] {
		if s.at > endAt+time.Second {
			break
		}
		dt := (s.at - prev).Seconds()
		prev = s.at
		busy += s.busy * dt
		tsum += dt
		for k, v := range s.roles {
			res.CPUSeconds[k] += v * dt
		}
	}
	if tsum > 0 {
		res.CPUBusy = round3(busy / tsum)
		res.OtherCPU = round3(res.CPUSeconds[cpuOther] / tsum)
	}
	for k, v := range res.CPUSeconds {
		res.CPUSeconds[k] = round3(v)
	}
}

func ptr[T any](v T) *T { return &v }

func round3(f float64) float64 {
	if f < 0 {
		return -round3(-f)
	}
	return float64(int64(f*1000+0.5)) / 1000
}
