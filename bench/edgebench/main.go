// Command edgebench measures `avalanche edge` against nginx with
// proxy_cache, side by side in one run, with wrk as the load generator and
// one Go origin shared by both: 1 KiB hits, 1 MiB hits and misses (every
// request a new URL). It prints a table and writes JSON with the ratios
// edge/nginx, plus each server's resident memory after the run.
//
// Usage (from the repository root; scripts/bench-edge.sh installs nginx and
// wrk and builds the binary):
//
//	go run ./bench/edgebench -avalanche ./avalanche -duration 10s
//
// On a small machine wrk and the servers share cores; -pin puts the server
// under test on CPU 0 and wrk on the remaining CPUs (taskset), the same for
// both servers.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type scenario struct {
	Name  string `json:"name"`
	Path  string `json:"path"`
	Conns int    `json:"conns"`
	Lua   string `json:"-"`
}

type measurement struct {
	Server    string  `json:"server"`
	Scenario  string  `json:"scenario"`
	RPS       float64 `json:"requests_per_sec"`
	MBps      float64 `json:"mbytes_per_sec"`
	LatencyMs float64 `json:"latency_avg_ms"`
	P99Ms     float64 `json:"latency_p99_ms"`
	Errors    int     `json:"errors"`
	// CPUSec is the CPU time (user+system) the server's processes used
	// during the run; PerCPUSec = requests per CPU-second, a figure that
	// other load on the machine disturbs far less than requests/s.
	CPUSec    float64 `json:"server_cpu_seconds"`
	PerCPUSec float64 `json:"requests_per_cpu_second"`
}

type report struct {
	Time      string             `json:"time"`
	CPUs      int                `json:"cpus"`
	Pinned    bool               `json:"pinned"`
	Duration  string             `json:"duration"`
	Rounds    int                `json:"rounds"`
	Workers   int                `json:"server_workers"`
	Results   []measurement      `json:"results"`
	Ratios    map[string]float64 `json:"rps_ratio_edge_to_nginx"`
	CPURatios map[string]float64 `json:"per_cpu_second_ratio_edge_to_nginx"`
	RSSMiB    map[string]float64 `json:"rss_mib_after"`
	EdgeMem   string             `json:"edge_mem_budget"`
	NginxInfo string             `json:"nginx"`
}

func main() {
	bin := flag.String("avalanche", "./avalanche", "avalanche binary")
	dur := flag.Duration("duration", 10*time.Second, "wrk duration per measurement")
	pin := flag.Bool("pin", true, "pin servers to CPU 0 and wrk to the other CPUs")
	workers := flag.Int("workers", 0, "server worker processes/threads (0: 1 when pinned, else all CPUs)")
	out := flag.String("json", "", "write the JSON report here too")
	mem := flag.String("mem", "256MiB", "edge memory budget")
	rounds := flag.Int("rounds", 3, "alternating rounds per scenario; the median is reported")
	flag.Parse()
	if err := run(*bin, *dur, *pin, *workers, *rounds, *out, *mem); err != nil {
		fmt.Fprintln(os.Stderr, "edgebench:", err)
		os.Exit(1)
	}
}

func need(cmds ...string) error {
	for _, c := range cmds {
		if _, err := exec.LookPath(c); err != nil {
			return fmt.Errorf("%s not found (run scripts/bench-edge.sh, which installs it)", c)
		}
	}
	return nil
}

func freePort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// origin serves fixed bodies: /1k/* and /1m/* are cacheable for an hour.
func startOrigin() (string, func()) {
	k1 := make([]byte, 1024)
	m1 := make([]byte, 1<<20)
	for i := range m1 {
		m1[i] = byte(i)
	}
	copy(k1, m1)
	mux := http.NewServeMux()
	serve := func(b []byte) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "public, max-age=3600")
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Length", strconv.Itoa(len(b)))
			w.Write(b)
		}
	}
	mux.HandleFunc("/1k/", serve(k1))
	mux.HandleFunc("/1m/", serve(m1))
	mux.HandleFunc("/miss/", serve(k1))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	return "http://" + l.Addr().String(), func() { srv.Close() }
}

type proc struct {
	cmd  *exec.Cmd
	name string
}

func startProc(name string, pinCPU string, args ...string) (*proc, error) {
	if pinCPU != "" {
		args = append([]string{"taskset", "-c", pinCPU}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &proc{cmd: cmd, name: name}, nil
}

func (p *proc) stop() {
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	done := make(chan struct{})
	go func() { p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// cpuSeconds sums user+system CPU time over the process group.
func cpuSeconds(pgid int) float64 {
	total := 0.0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if g, err := syscall.Getpgid(pid); err != nil || g != pgid {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// fields after the ")" that ends the command name: state is 3rd field overall
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 13 {
			u, _ := strconv.ParseFloat(f[11], 64)
			st, _ := strconv.ParseFloat(f[12], 64)
			total += (u + st) / 100 // USER_HZ
		}
	}
	return total
}

// rssMiB sums VmRSS over the process group (nginx master + workers).
func rssMiB(pgid int) float64 {
	total := 0.0
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if g, err := syscall.Getpgid(pid); err != nil || g != pgid {
			continue
		}
		f, err := os.Open(filepath.Join("/proc", e.Name(), "status"))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
				kb, _ := strconv.ParseFloat(strings.Fields(v)[0], 64)
				total += kb / 1024
			}
		}
		f.Close()
	}
	return total
}

func waitHTTP(url string) error {
	for i := 0; i < 100; i++ {
		resp, err := http.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s did not come up", url)
}

var (
	reRPS  = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	reXfer = regexp.MustCompile(`Transfer/sec:\s+([\d.]+)(\w+)`)
	reLat  = regexp.MustCompile(`Latency\s+([\d.]+)(\w+)`)
	reP99  = regexp.MustCompile(`99%\s+([\d.]+)(\w+)`)
	reErr  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	reSock = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

func toMs(v, unit string) float64 {
	f, _ := strconv.ParseFloat(v, 64)
	switch unit {
	case "us":
		return f / 1000
	case "s":
		return f * 1000
	}
	return f
}

func toMB(v, unit string) float64 {
	f, _ := strconv.ParseFloat(v, 64)
	switch unit {
	case "KB":
		return f / 1024
	case "GB":
		return f * 1024
	case "B":
		return f / (1 << 20)
	}
	return f
}

func wrk(pin string, base string, sc scenario, dur time.Duration, dir string) (measurement, error) {
	args := []string{"wrk", "--latency", "-t", "1", "-c", strconv.Itoa(sc.Conns), "-d", dur.String()}
	if pin != "" {
		args = append([]string{"taskset", "-c", pin}, args...)
	}
	if sc.Lua != "" {
		p := filepath.Join(dir, sc.Name+".lua")
		os.WriteFile(p, []byte(sc.Lua), 0o644)
		args = append(args, "-s", p)
	}
	args = append(args, base+sc.Path)
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return measurement{}, fmt.Errorf("wrk: %v: %s", err, out)
	}
	s := string(out)
	m := measurement{Scenario: sc.Name}
	if x := reRPS.FindStringSubmatch(s); x != nil {
		m.RPS, _ = strconv.ParseFloat(x[1], 64)
	}
	if x := reXfer.FindStringSubmatch(s); x != nil {
		m.MBps = toMB(x[1], x[2])
	}
	if x := reLat.FindStringSubmatch(s); x != nil {
		m.LatencyMs = toMs(x[1], x[2])
	}
	if x := reP99.FindStringSubmatch(s); x != nil {
		m.P99Ms = toMs(x[1], x[2])
	}
	if x := reErr.FindStringSubmatch(s); x != nil {
		m.Errors, _ = strconv.Atoi(x[1])
	}
	if x := reSock.FindStringSubmatch(s); x != nil {
		for _, v := range x[1:] {
			n, _ := strconv.Atoi(v)
			m.Errors += n
		}
	}
	return m, nil
}

func run(bin string, dur time.Duration, pin bool, workers, rounds int, out, mem string) error {
	if err := need("nginx", "wrk", "taskset"); err != nil {
		fmt.Println("edgebench: skipped:", err)
		return nil
	}
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("avalanche binary %s: %w", bin, err)
	}
	abs, _ := filepath.Abs(bin)
	cpus := runtime.NumCPU()
	serverCPU, wrkCPU := "", ""
	if pin && cpus >= 2 {
		serverCPU, wrkCPU = "0", fmt.Sprintf("1-%d", cpus-1)
	} else {
		pin = false
	}
	if workers == 0 {
		workers = cpus
		if pin {
			workers = 1
		}
	}
	dir, err := os.MkdirTemp("", "edgebench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	originURL, stopOrigin := startOrigin()
	defer stopOrigin()
	originHost := strings.TrimPrefix(originURL, "http://")

	// nginx with proxy_cache, the reference
	nport := freePort()
	ndir := filepath.Join(dir, "nginx")
	os.MkdirAll(filepath.Join(ndir, "cache"), 0o777)
	conf := fmt.Sprintf(`worker_processes %d;
daemon off;
user root;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log warn;
events { worker_connections 8192; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_body_temp_path %[2]s/body; proxy_temp_path %[2]s/proxy; fastcgi_temp_path %[2]s/fcgi;
  uwsgi_temp_path %[2]s/uwsgi; scgi_temp_path %[2]s/scgi;
  proxy_cache_path %[2]s/cache levels=1:2 keys_zone=bench:64m max_size=2g inactive=60m use_temp_path=off;
  upstream origin { server %[3]s; keepalive 64; }
  server {
    listen 127.0.0.1:%[4]d reuseport;
    location / {
      proxy_pass http://origin;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_cache bench;
      proxy_cache_lock on;
      proxy_cache_revalidate on;
    }
  }
}
`, workers, ndir, originHost, nport)
	os.WriteFile(filepath.Join(ndir, "nginx.conf"), []byte(conf), 0o644)

	eport, aport := freePort(), freePort()
	edir := filepath.Join(dir, "edge")
	os.MkdirAll(edir, 0o755)
	econf := fmt.Sprintf(`{"listen":"127.0.0.1:%d","admin":"127.0.0.1:%d","cache_dir":%q,"mem":%q,"disk":"2GiB",
"limits":{"disabled":true},"properties":[{"name":"bench","origin":%q}]}`, eport, aport, filepath.Join(edir, "cache"), mem, originURL)
	os.WriteFile(filepath.Join(edir, "edge.json"), []byte(econf), 0o644)

	scenarios := []scenario{
		{Name: "hit-1KiB", Path: "/1k/obj", Conns: 64},
		{Name: "hit-1MiB", Path: "/1m/obj", Conns: 16},
		{Name: "miss-1KiB", Path: "/miss/", Conns: 64, Lua: `
local n = 0
local id = tostring(math.random(1, 1e9))
request = function()
  n = n + 1
  return wrk.format(nil, "/miss/" .. id .. "/" .. n)
end`},
	}
	rep := report{Time: time.Now().UTC().Format(time.RFC3339), CPUs: cpus, Pinned: pin, Duration: dur.String(), Rounds: rounds, Workers: workers,
		Ratios: map[string]float64{}, CPURatios: map[string]float64{}, RSSMiB: map[string]float64{}, EdgeMem: mem}
	if v, err := exec.Command("nginx", "-v").CombinedOutput(); err == nil {
		rep.NginxInfo = strings.TrimSpace(string(v))
	}
	type server struct {
		name string
		base string
		args []string
		env  []string
	}
	servers := []server{
		{"nginx", fmt.Sprintf("http://127.0.0.1:%d", nport), []string{"nginx", "-p", ndir, "-c", filepath.Join(ndir, "nginx.conf")}, nil},
		{"edge", fmt.Sprintf("http://127.0.0.1:%d", eport), []string{abs, "edge", "--config", filepath.Join(edir, "edge.json")},
			[]string{fmt.Sprintf("GOMAXPROCS=%d", workers)}},
	}
	// both servers run for the whole measurement; scenarios alternate
	// between them round by round so load from elsewhere on the machine
	// hits both alike, and the median round is reported
	procs := map[string]*proc{}
	defer func() {
		for _, p := range procs {
			p.stop()
		}
	}()
	for _, sv := range servers {
		os.Setenv("GOMAXPROCS", strconv.Itoa(workers))
		p, err := startProc(sv.name, serverCPU, sv.args...)
		os.Unsetenv("GOMAXPROCS")
		if err != nil {
			return err
		}
		procs[sv.name] = p
		if err := waitHTTP(sv.base + "/1k/obj"); err != nil {
			return err
		}
		for _, path := range []string{"/1k/obj", "/1m/obj"} { // warm: store, then hit
			for i := 0; i < 3; i++ {
				if resp, err := http.Get(sv.base + path); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}
	}
	for _, sc := range scenarios {
		runs := map[string][]measurement{}
		for round := 0; round < rounds; round++ {
			for _, sv := range servers {
				pgid := procs[sv.name].cmd.Process.Pid
				c0 := cpuSeconds(pgid)
				m, err := wrk(wrkCPU, sv.base, sc, dur, dir)
				if err != nil {
					return err
				}
				m.CPUSec = cpuSeconds(pgid) - c0
				if m.CPUSec > 0 {
					m.PerCPUSec = m.RPS * dur.Seconds() / m.CPUSec
				}
				m.Server = sv.name
				runs[sv.name] = append(runs[sv.name], m)
				fmt.Fprintf(os.Stderr, "round %d %-6s %-10s %10.0f req/s %10.0f req/CPU-s\n", round+1, sv.name, sc.Name, m.RPS, m.PerCPUSec)
			}
		}
		for _, sv := range servers {
			rs := runs[sv.name]
			sort.Slice(rs, func(i, j int) bool { return rs[i].RPS < rs[j].RPS })
			rep.Results = append(rep.Results, rs[len(rs)/2])
		}
	}
	for _, sv := range servers {
		rep.RSSMiB[sv.name] = rssMiB(procs[sv.name].cmd.Process.Pid)
	}
	byKey := map[string]measurement{}
	for _, m := range rep.Results {
		byKey[m.Server+"/"+m.Scenario] = m
	}
	fmt.Printf("\n%-10s | %11s %11s %6s | %12s %12s %6s | %9s %9s | %8s %8s\n", "scenario", "edge req/s", "nginx req/s", "ratio",
		"edge req/cpu", "nginx req/cpu", "ratio", "edge MB/s", "ngx MB/s", "edge p99", "ngx p99")
	fmt.Println(strings.Repeat("-", 124))
	for _, sc := range scenarios {
		e, n := byKey["edge/"+sc.Name], byKey["nginx/"+sc.Name]
		ratio, cratio := 0.0, 0.0
		if n.RPS > 0 {
			ratio = e.RPS / n.RPS
		}
		if n.PerCPUSec > 0 {
			cratio = e.PerCPUSec / n.PerCPUSec
		}
		rep.Ratios[sc.Name] = round2(ratio)
		rep.CPURatios[sc.Name] = round2(cratio)
		fmt.Printf("%-10s | %11.0f %11.0f %5.2fx | %12.0f %12.0f %5.2fx | %9.1f %9.1f | %6.1fms %6.1fms\n", sc.Name, e.RPS, n.RPS, ratio,
			e.PerCPUSec, n.PerCPUSec, cratio, e.MBps, n.MBps, e.P99Ms, n.P99Ms)
	}
	fmt.Printf("RSS after run: edge %.1f MiB (memory budget %s), nginx %.1f MiB (all processes)\n", rep.RSSMiB["edge"], mem, rep.RSSMiB["nginx"])
	fmt.Printf("%d CPUs; servers pinned: %v (server on CPU 0, %d worker(s); wrk 1 thread on the others); median of %d alternating rounds of %s\n",
		cpus, pin, workers, rounds, dur)
	b, _ := json.Marshal(rep)
	if out != "" {
		if err := os.WriteFile(out, b, 0o644); err != nil {
			return err
		}
	}
	fmt.Println(string(b))
	return nil
}

func round2(f float64) float64 { return float64(int(f*100+0.5)) / 100 }
