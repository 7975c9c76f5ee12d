package lab

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"image"
	"image/png"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

func TestLowerBound(t *testing.T) {
	tests := []struct {
		name string
		want float64
	}{
		// F/u_seed = 128 MiB · 8 / 50 Mbit/s dominates N·F/Σu = 16/17 of it.
		{"uniform", 21.475},
		{"hetero", 21.475},
		{"seed-leaves", 21.475},
		// Late arrivals at 10 s + F/Σu = 10 + 1.26 s: F/u_seed still wins.
		{"churn", 21.475},
		{"scale", 21.475},
		{"smoke", 2.684},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, ok := LookupScenario(tt.name)
			if !ok {
				t.Fatalf("LookupScenario(%q) not found", tt.name)
			}
			if got := s.LowerBound(); math.Abs(got-tt.want) > 0.001 {
				t.Errorf("LowerBound() = %.3f, want %.3f", got, tt.want)
			}
		})
	}
	// The aggregate term wins when the seed is fast.
	s := Scenario{FileSize: 1 << 20, SeedUp: 100 * Mbit, LeecherUp: uniform(9, 10*Mbit)}
	want := 9 * float64(8<<20) / (190 * Mbit)
	if got := s.LowerBound(); math.Abs(got-want) > 1e-9 {
		t.Errorf("fast seed: LowerBound() = %v, want %v", got, want)
	}
	// Leavers fetch LeaveAt of the file: 2 stay, 2 leave at half.
	s = Scenario{FileSize: 1 << 20, SeedUp: 100 * Mbit, LeecherUp: uniform(4, 10*Mbit), Leavers: 2, LeaveAt: 0.5}
	want = 3 * float64(8<<20) / (140 * Mbit)
	if got := s.LowerBound(); math.Abs(got-want) > 1e-9 {
		t.Errorf("leavers: LowerBound() = %v, want %v", got, want)
	}
}

func TestScenarioRoles(t *testing.T) {
	s, _ := LookupScenario("churn")
	var roles []string
	for i := range s.N() {
		roles = append(roles, s.role(i))
	}
	got := strings.Join(roles, " ")
	want := strings.Repeat("leaver ", 4) + strings.Repeat("regular ", 8) + strings.TrimSpace(strings.Repeat("late ", 4))
	if got != want {
		t.Errorf("roles = %s, want %s", got, want)
	}
	if s.Expected() != 12 {
		t.Errorf("Expected() = %d, want 12", s.Expected())
	}
	if s, ok := LookupScenario("2"); !ok || s.Name != "hetero" {
		t.Errorf(`LookupScenario("2") = %q, %v; want hetero`, s.Name, ok)
	}
	if _, ok := LookupScenario("0"); ok {
		t.Error(`LookupScenario("0") found a scenario; smoke has no number`)
	}
}

func TestDescribe(t *testing.T) {
	s, _ := LookupScenario("hetero")
	want := "16 leechers, 128 MiB, uplinks in Mbit/s: seed 50, leechers 3×150 + 13×30"
	if got := s.Describe(); got != want {
		t.Errorf("Describe() = %q, want %q", got, want)
	}
}

func TestMedianAndStats(t *testing.T) {
	tests := []struct {
		xs   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{3, 1, 2}, 2},
		{[]float64{4, 1, 2, 3}, 2.5},
		{[]float64{1, inf, inf}, inf},
		{[]float64{1, 2, inf}, 2},
	}
	for _, tt := range tests {
		if got := median(tt.xs); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.xs, got, tt.want)
		}
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil) = %v, want NaN", got)
	}
	// Two of four finished: min is the fastest, median and max never.
	r := &RunResult{Expected: 4, Times: []float64{5, 7}}
	lo, mid, hi := r.stats()
	if lo != 5 || !math.IsInf(mid, 1) || !math.IsInf(hi, 1) {
		t.Errorf("stats() = %v, %v, %v; want 5, +Inf, +Inf", lo, mid, hi)
	}
	r = &RunResult{Expected: 3, Times: []float64{5, 6, 9}}
	if lo, mid, hi := r.stats(); lo != 5 || mid != 6 || hi != 9 {
		t.Errorf("stats() = %v, %v, %v; want 5, 6, 9", lo, mid, hi)
	}
}

func TestSummarise(t *testing.T) {
	run := func(sys string, rep int, all float64, times ...float64) *RunResult {
		r := &RunResult{System: sys, Scenario: "x", Rep: rep, Expected: 2, Completed: len(times), Times: times,
			SeedEgressRatio: 1, CPUSeconds: map[string]float64{procLeecher: 2}}
		if all > 0 {
			r.AllDone = &all
		}
		return r
	}
	rep := &Report{Scenarios: []*ScenarioReport{{
		Name: "x", Expected: 2, BoundSeconds: 10, Systems: []string{SystemAvalanche, SystemAria2},
		Runs: []*RunResult{
			run(SystemAvalanche, 1, 12, 11, 12),
			run(SystemAria2, 1, 15, 14, 15),
			run(SystemAvalanche, 2, 14, 13, 14),
			run(SystemAria2, 2, 0, 14),
			run(SystemAvalanche, 3, 11, 10, 11),
			run(SystemAria2, 3, 18, 17, 18),
		},
	}}}
	rep.Summarise()
	ss := rep.Summaries()
	if len(ss) != 2 {
		t.Fatalf("got %d summaries, want 2", len(ss))
	}
	av, ar := ss[0], ss[1]
	if *av.AllDoneSeconds != 12 || *av.RatioToBound != 1.2 || *av.RatioToAvalanche != 1 {
		t.Errorf("avalanche all done %v, × bound %v, × avalanche %v; want 12, 1.2, 1", *av.AllDoneSeconds, *av.RatioToBound, *av.RatioToAvalanche)
	}
	// aria2's all-done times are 15, never, 18: the median is 18.
	if *ar.AllDoneSeconds != 18 || *ar.RatioToAvalanche != 1.5 {
		t.Errorf("aria2 all done %v, × avalanche %v; want 18, 1.5", *ar.AllDoneSeconds, *ar.RatioToAvalanche)
	}
	if ar.CompletionRate != 0.833 || ar.Completed != 2 {
		t.Errorf("aria2 completion rate %v, completed %d; want 0.833, 2", ar.CompletionRate, ar.Completed)
	}
	if ar.AllDoneRuns[1] != nil {
		t.Errorf("aria2 rep 2 all done = %v, want nil", *ar.AllDoneRuns[1])
	}
	// Records round-trip through JSON with the fields the issue asks for.
	b, err := json.Marshal(av)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.Unmarshal(b, &m)
	for _, k := range []string{"system", "scenario", "leechers", "completed", "median_seconds", "all_done_seconds", "lower_bound_seconds", "seed_egress_ratio"} {
		if _, ok := m[k]; !ok {
			t.Errorf("summary JSON lacks %q: %s", k, b)
		}
	}
	var md bytes.Buffer
	rep.WriteMarkdown(&md)
	if !strings.Contains(md.String(), "| aria2 | 2, 1, 2 of 2 |") {
		t.Errorf("Markdown lacks aria2's row:\n%s", md.String())
	}
}

func TestPhases(t *testing.T) {
	all := 6.0
	r := &RunResult{SeedUplinkMbit: 10, Leecher: []LeecherResult{{UplinkMbit: 10}}, AllDone: &all, Duration: 6, CPUs: 2,
		Timeline: []Second{
			{T: 1, Up: []float64{8, 0}, CPU: 2},
			{T: 2, Up: []float64{10, 5}, CPU: 1.95},
			{T: 3, Up: []float64{9, 9}, CPU: 1},
			{T: 4, Up: []float64{2, 9}, CPU: 1},
			{T: 5, Up: []float64{0, 3}, CPU: 0.5},
			{T: 6, Up: []float64{0, 0}, CPU: 0.1},
			{T: 9, Up: []float64{10, 10}, CPU: 2}, // after the window
		}}
	ramp, busy, tail, sat := r.phases()
	if ramp != 2 || busy != 3 || tail != 3 || math.Abs(sat-2.0/6) > 1e-9 {
		t.Errorf("phases() = %v, %v, %v, %v; want 2, 3, 3, 0.333", ramp, busy, tail, sat)
	}
}

func TestParseProc(t *testing.T) {
	// A comm with spaces and parentheses must not shift the fields.
	stat := "1234 (we (ird) name) S 1 1234 1234 0 -1 4194304 100 0 0 0 250 75 0 0 20 0 8 0 100 0 0"
	if got, ok := parseStatTicks(stat); !ok || got != 325 {
		t.Errorf("parseStatTicks = %d, %v; want 325, true", got, ok)
	}
	ps := "cpu  100 5 50 1000 20 3 7 0 9 0\ncpu0 1 2 3 4 5 6 7 8 9 0\n"
	got := parseProcStat(ps)
	if got.busy != 165 || got.tasks != 155 {
		t.Errorf("parseProcStat = %+v, want busy 165 tasks 155", got)
	}
}

func TestPayloadOf(t *testing.T) {
	c := qdiscCounters{Bytes: 1514*1000 + 66*10, Packets: 1010}
	if got := payloadOf(c); got != 1448*1000 {
		t.Errorf("payloadOf = %d, want %d", got, 1448*1000)
	}
}

func TestReplaceBlock(t *testing.T) {
	doc := "# B\n\nnotes\n\n<!-- lab:a -->\nold\n<!-- /lab:a -->\n\ntail\n"
	got := replaceBlock(doc, "a", "<!-- lab:a -->\nnew\n<!-- /lab:a -->")
	want := "# B\n\nnotes\n\n<!-- lab:a -->\nnew\n<!-- /lab:a -->\n\ntail\n"
	if got != want {
		t.Errorf("replace = %q, want %q", got, want)
	}
	got = replaceBlock("# B\n", "b", "<!-- lab:b -->\nx\n<!-- /lab:b -->")
	want = "# B\n\n<!-- lab:b -->\nx\n<!-- /lab:b -->\n"
	if got != want {
		t.Errorf("append = %q, want %q", got, want)
	}
}

func TestTicks(t *testing.T) {
	tests := []struct {
		max  float64
		want string
	}{
		{1, "[0 0.2 0.4 0.6 0.8 1]"},
		{25.8, "[0 5 10 15 20 25]"},
		{400, "[0 100 200 300 400]"},
	}
	for _, tt := range tests {
		if got := fmtFloats(ticks(tt.max)); got != tt.want {
			t.Errorf("ticks(%v) = %s, want %s", tt.max, got, tt.want)
		}
	}
}

func fmtFloats(fs []float64) string {
	b, _ := json.Marshal(fs)
	return strings.ReplaceAll(strings.ReplaceAll(string(b), ",", " "), "\"", "")
}

func TestPlots(t *testing.T) {
	sr := &ScenarioReport{Name: "x", Title: "x", BoundSeconds: 10, Systems: []string{SystemAvalanche, SystemHTTP},
		Runs: []*RunResult{
			{System: SystemAvalanche, Expected: 2, Times: []float64{11, 12}, SeedUplinkMbit: 50,
				Leecher:  []LeecherResult{{UplinkMbit: 50}, {UplinkMbit: 50}},
				Timeline: []Second{{T: 1, Up: []float64{40, 10, 10}}, {T: 2, Up: []float64{48, 40, 45}}}},
			{System: SystemHTTP, Expected: 2, Times: []float64{30}},
		}}
	for name, img := range map[string]image.Image{"cdf": cdfPlot(sr), "upload": uploadPlot(sr)} {
		var buf bytes.Buffer
		if err := png.Encode(&buf, img); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if b := img.Bounds(); b.Dx() != plotW || b.Dy() != plotH {
			t.Errorf("%s: %v, want %dx%d", name, b, plotW, plotH)
		}
	}
}

func TestServeAndFetch(t *testing.T) {
	dir := t.TempDir()
	body := bytes.Repeat([]byte("avalanche"), 100_000)
	src := filepath.Join(dir, "payload.bin")
	if err := os.WriteFile(src, body, 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- ServeFile(ctx, ln, src) }()
	defer func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("ServeFile: %v", err)
		}
	}()
	sum := sha256.Sum256(body)
	url := "http://" + ln.Addr().String() + "/payload.bin"
	var progress bytes.Buffer
	out := filepath.Join(dir, "out.bin")
	if err := Fetch(ctx, FetchConfig{URL: url, Output: out, SHA256: hex.EncodeToString(sum[:]), Progress: &progress}); err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, body) {
		t.Errorf("fetched %d bytes that differ from the %d served", len(got), len(body))
	}
	lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
	var last clientLine
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.Event != "complete" || last.DoneBytes != int64(len(body)) {
		t.Errorf("last progress line = %q (%v), want a complete event with %d bytes", lines[len(lines)-1], err, len(body))
	}
	// A wrong hash fails.
	err = Fetch(ctx, FetchConfig{URL: url, Output: out, SHA256: strings.Repeat("0", 64)})
	if !errors.Is(err, ErrMismatch) {
		t.Errorf("Fetch with a wrong hash: %v, want ErrMismatch", err)
	}
	var st ServerStats
	if err := getJSON(ctx, http.DefaultClient, "http://"+ln.Addr().String()+"/stats", &st); err != nil {
		t.Fatal(err)
	}
	if st.BytesSent != 2*int64(len(body)) || st.Requests != 2 {
		t.Errorf("stats = %+v, want %d bytes in 2 requests", st, 2*len(body))
	}
}

func TestJSONLines(t *testing.T) {
	start := time.Now()
	l := &leecher{}
	feed := jsonLines(l, func() time.Duration { return time.Since(start) })
	feed([]byte(`{"event":"progress","done_bytes":100,"size":400,"from_peers":90,"from_origin":10}`))
	feed([]byte(`not json`))
	if l.done != 100 || l.size != 400 || l.complete {
		t.Fatalf("after a progress line: done %d size %d complete %v; want 100 400 false", l.done, l.size, l.complete)
	}
	feed([]byte(`{"event":"complete","size":400,"from_peers":380,"from_origin":20}`))
	if !l.complete || l.done != 400 || l.counters["from_origin"] != 20 {
		t.Errorf("after complete: complete %v done %d counters %v", l.complete, l.done, l.counters)
	}
	at := l.completeAt
	feed([]byte(`{"event":"progress","done_bytes":400,"size":400,"seeding":true}`))
	if l.completeAt != at {
		t.Errorf("a later line moved the completion time from %v to %v", at, l.completeAt)
	}
}

// TestDynamic tells the system shell (dynamically linked on every Linux
// distribution) from a Go program built with CGO_ENABLED=0, and a file
// that is no program at all from either.
func TestDynamic(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err == nil && !dynamic("/bin/sh") {
		t.Error("/bin/sh: not dynamic")
	}
	dir := t.TempDir()
	src, bin := filepath.Join(dir, "main.go"), filepath.Join(dir, "static")
	if err := os.WriteFile(src, []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, src)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GO111MODULE=off")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if dynamic(bin) {
		t.Error("a CGO_ENABLED=0 build: dynamic")
	}
	if dynamic(src) {
		t.Error("a source file: dynamic")
	}
}
