package lab

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process roles, for CPU accounting.
const (
	procSeed    = "seed"    // origin, seeding aria2, HTTP server
	procTracker = "tracker" // avalanche control, opentracker
	procLeecher = "leecher"
)

// proc is one program running in a host's namespace, in its own process
// group, killed with SIGKILL if the lab dies (Pdeathsig).
type proc struct {
	name string
	role string
	host *host
	cmd  *exec.Cmd
	log  *os.File

	exited  chan struct{}
	waitErr error
}

// procSpec says how to start a proc.
type procSpec struct {
	name, role string
	host       *host
	dir        string   // working directory (created)
	env        []string // on top of PATH, HOME=dir, LANG=C
	args       []string
	// onLine, if set, receives stdout line by line. Stdout goes to the
	// log file with stderr either way.
	onLine func(line []byte)
}

// start starts a program in a host with "ip netns exec", which execs it:
// the PID is the program's.
func (r *run) start(sp procSpec) (*proc, error) {
	if err := os.MkdirAll(sp.dir, 0o755); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(r.logDir, sp.name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("ip", append([]string{"netns", "exec", sp.host.name}, sp.args...)...)
	cmd.Dir = sp.dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + sp.dir, "LANG=C"}, sp.env...)
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	var stdout io.ReadCloser
	if sp.onLine != nil {
		if stdout, err = cmd.StdoutPipe(); err != nil {
			logf.Close()
			return nil, err
		}
	} else {
		cmd.Stdout = logf
	}
	fmt.Fprintf(logf, "# %s\n", strings.Join(cmd.Args, " "))
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("lab: start %s: %w", sp.name, err)
	}
	p := &proc{name: sp.name, role: sp.role, host: sp.host, cmd: cmd, log: logf, exited: make(chan struct{})}
	r.mu.Lock()
	r.procs = append(r.procs, p)
	r.mu.Unlock()
	var readers sync.WaitGroup
	if stdout != nil {
		readers.Add(1)
		go func() {
			defer readers.Done()
			sc := bufio.NewScanner(stdout)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				logf.Write(append(sc.Bytes(), '\n'))
				sp.onLine(sc.Bytes())
			}
			io.Copy(io.Discard, stdout)
		}()
	}
	go func() {
		readers.Wait()
		p.waitErr = cmd.Wait()
		logf.Close()
		close(p.exited)
	}()
	return p, nil
}

// running reports whether the process has not exited.
func (p *proc) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// signal sends sig to the process group.
func (p *proc) signal(sig syscall.Signal) {
	if p.running() {
		syscall.Kill(-p.cmd.Process.Pid, sig)
	}
}

// stop sends SIGTERM, then SIGKILL after grace, and waits for the exit.
func (p *proc) stop(grace time.Duration) {
	if grace > 0 {
		p.signal(syscall.SIGTERM)
		select {
		case <-p.exited:
			return
		case <-time.After(grace):
		}
	}
	p.signal(syscall.SIGKILL)
	<-p.exited
}

// cpuTicks returns the process's user+system CPU time in clock ticks, or
// false once it is gone.
func (p *proc) cpuTicks() (int64, bool) {
	if !p.running() {
		return 0, false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0, false
	}
	return parseStatTicks(string(b))
}

// parseStatTicks reads utime+stime from a /proc/PID/stat line.
func parseStatTicks(s string) (int64, bool) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	// f[0] is the state (field 3); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	return u + st, true
}

// cpuTimes are the machine's CPU counters from /proc/stat, in jiffies.
type cpuTimes struct {
	busy  int64 // everything but idle and iowait
	tasks int64 // user + nice + system: time charged to processes
}

// machineCPU reads /proc/stat.
func machineCPU() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	return parseProcStat(string(b))
}

func parseProcStat(s string) cpuTimes {
	var t cpuTimes
	line, _, _ := strings.Cut(s, "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return t
	}
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i >= 8 { // guest time is already in user
			break
		}
		if i != 3 && i != 4 { // idle, iowait
			t.busy += n
		}
		if i <= 2 {
			t.tasks += n
		}
	}
	return t
}

// kernelTicks returns the CPU time of every kernel thread (the children of
// kthreadd, PID 2: ksoftirqd, kworkers), which also carry the emulated
// network's packet processing.
func kernelTicks() int64 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	var total int64
	for _, e := range ents {
		name := e.Name()
		if name[0] < '0' || name[0] > '9' {
			continue
		}
		b, err := os.ReadFile("/proc/" + name + "/stat")
		if err != nil {
			continue
		}
		if ppid, ticks, ok := parseStatPPID(string(b)); ok && (ppid == 2 || name == "2") {
			total += ticks
		}
	}
	return total
}

// parseStatPPID reads the parent PID and utime+stime of a /proc/PID/stat
// line.
func parseStatPPID(s string) (ppid int, ticks int64, ok bool) {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return 0, 0, false
	}
	ticks, ok = parseStatTicks(s)
	return ppid, ticks, ok
}

// selfTicks returns the lab process's own CPU time in clock ticks.
func selfTicks() int64 {
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0
	}
	n, _ := parseStatTicks(string(b))
	return n
}

// clockTick is USER_HZ, the unit of /proc CPU times on Linux.
const clockTick = 100

// waitFor polls ok every 100 ms until it returns true, ctx ends or timeout
// passes; a proc that exits meanwhile fails the wait with its log's tail.
func waitFor(ctx context.Context, what string, timeout time.Duration, p *proc, ok func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if ok() {
			return nil
		}
		if p != nil && !p.running() {
			return fmt.Errorf("lab: %s exited while waiting for %s: %v%s", p.name, what, p.waitErr, logTail(p))
		}
		select {
		case <-ctx.Done():
			if p != nil {
				return fmt.Errorf("lab: waiting for %s: %w%s", what, ctx.Err(), logTail(p))
			}
			return fmt.Errorf("lab: waiting for %s: %w", what, ctx.Err())
		case <-t.C:
		}
	}
}

// logTail returns the end of a proc's log for error messages.
func logTail(p *proc) string {
	b, err := os.ReadFile(p.log.Name())
	if err != nil || len(b) == 0 {
		return ""
	}
	if len(b) > 1500 {
		b = b[len(b)-1500:]
	}
	return "\n--- " + p.log.Name() + " ---\n" + strings.TrimSpace(string(b))
}
