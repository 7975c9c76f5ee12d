package lab

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"
)

// Report is everything one Run measured.
type Report struct {
	Started   time.Time         `json:"started"`
	Host      string            `json:"host"`
	Reps      int               `json:"reps"`
	RepsHTTP  int               `json:"reps_http"`
	Dir       string            `json:"dir,omitempty"` // results folder
	Scenarios []*ScenarioReport `json:"scenarios"`
}

// ScenarioReport holds one scenario's runs and their summaries.
type ScenarioReport struct {
	Name         string       `json:"name"`
	Title        string       `json:"title"`
	Description  string       `json:"description"`
	Leechers     int          `json:"leechers"`
	Expected     int          `json:"expected"`
	FileSize     int64        `json:"file_size"`
	BoundSeconds float64      `json:"lower_bound_seconds"`
	Systems      []string     `json:"systems"`
	Summaries    []*Summary   `json:"summaries"`
	Runs         []*RunResult `json:"runs"`
}

// RunResult is one repetition of one system in one scenario. Times are in
// seconds; a leecher's completion time counts from its own start, the
// all-done time from t0, when the first leechers started.
type RunResult struct {
	System       string  `json:"system"`
	Scenario     string  `json:"scenario"`
	Rep          int     `json:"rep"`
	Leechers     int     `json:"leechers"`
	Expected     int     `json:"expected"` // leechers that should finish
	Completed    int     `json:"completed"`
	End          string  `json:"end"` // all done, stalled, timeout, interrupted, error: ...
	FileSize     int64   `json:"file_size"`
	BoundSeconds float64 `json:"lower_bound_seconds"`
	// SeedUplinkMbit is the seed host's cap (leechers' are in Leecher).
	SeedUplinkMbit float64 `json:"seed_uplink_mbit"`
	// Duration is the measured window: until all were done, or until the
	// run was stopped.
	Duration float64   `json:"duration_seconds"`
	AllDone  *float64  `json:"all_done_seconds"` // nil unless every staying leecher finished
	Times    []float64 `json:"completion_seconds"`
	// Seed egress over the window, as multiples of the file size: TCP
	// payload estimated from tc (bytes - 66 B per segment), raw wire bytes
	// from tc, and the seed program's own count where it has one (aria2's
	// uploadLength, the HTTP server's body bytes).
	SeedEgressRatio float64  `json:"seed_egress_ratio"`
	SeedWireRatio   float64  `json:"seed_wire_ratio"`
	SeedAppRatio    *float64 `json:"seed_app_ratio,omitempty"`
	SeedLeftAt      *float64 `json:"seed_left_at,omitempty"`
	SeedLeftRatio   *float64 `json:"seed_left_ratio,omitempty"` // uploaded when killed (see SeedLeavesAt)
	// Packets the uplinks' tbf queues dropped (full queue): the seed's,
	// and all leechers' together.
	SeedDrops    uint64 `json:"seed_drops"`
	LeecherDrops uint64 `json:"leecher_drops"`
	// Uplink use over the window: payload sent ÷ (nominal cap × window).
	SeedUse    float64 `json:"seed_uplink_use"`
	LeecherUse float64 `json:"leecher_uplink_use"`
	// CPU: the machine's busy cores on average, and CPU seconds by role
	// (seed, tracker, leecher; lab for the lab itself, other for every
	// other process) over the window.
	CPUBusy    float64            `json:"cpu_busy_cores"`
	CPUSeconds map[string]float64 `json:"cpu_seconds,omitempty"`
	// OtherCPU is the cores other processes used on average: anything
	// above a few hundredths means the run was disturbed.
	OtherCPU float64 `json:"other_cpu_cores"`
	// CPUs is the machine's number of CPUs.
	CPUs int `json:"cpus"`
	// LeecherCPUPerMiB is the leechers' CPU milliseconds per MiB they
	// received (each MiB received was also sent by some host).
	LeecherCPUPerMiB float64 `json:"leecher_cpu_ms_per_mib"`
	// UnfinishedProgress is the median share of the file held by the
	// staying leechers that did not finish; nil when all did.
	UnfinishedProgress *float64        `json:"unfinished_progress,omitempty"`
	Leecher            []LeecherResult `json:"leecher_results,omitempty"`
	Timeline           []Second        `json:"timeline,omitempty"`
}

// LeecherResult is one leecher in one run.
type LeecherResult struct {
	Host         string           `json:"host"`
	Role         string           `json:"role"`
	UplinkMbit   float64          `json:"uplink_mbit"`
	Start        float64          `json:"start"`
	Seconds      *float64         `json:"seconds"`  // completion time from its start
	Progress     float64          `json:"progress"` // share of the file held at the end
	LeftAt       *float64         `json:"left_at,omitempty"`
	LeftProgress *float64         `json:"left_progress,omitempty"`
	Error        string           `json:"error,omitempty"`
	Counters     map[string]int64 `json:"counters,omitempty"`
}

// Second is one second of a run.
type Second struct {
	T  float64   `json:"t"`
	Up []float64 `json:"up_mbit"` // TCP payload sent per host, seed first, Mbit/s
	// QueueMs is each host's mean uplink queue (tbf backlog, sampled ten
	// times a second) in milliseconds at its rate, seed first: what every
	// packet it sends, acknowledgements included, waits on average.
	QueueMs []float64          `json:"queue_ms"`
	Done    []float64          `json:"done"`       // per leecher, 0..1; -1 absent
	CPU     float64            `json:"cpu_cores"`  // machine busy cores
	Roles   map[string]float64 `json:"role_cores"` // cores by role
}

// Summary is one system in one scenario, over its repetitions: medians of
// the per-run figures. This is the record "avalanche lab --json" prints.
type Summary struct {
	System            string             `json:"system"`
	Scenario          string             `json:"scenario"`
	Leechers          int                `json:"leechers"`
	Expected          int                `json:"expected"`
	Reps              int                `json:"reps"`
	Completed         int                `json:"completed"` // median over reps
	CompletedRuns     []int              `json:"completed_runs"`
	CompletionRate    float64            `json:"completion_rate"`
	MinSeconds        *float64           `json:"min_seconds"`
	MedianSeconds     *float64           `json:"median_seconds"`
	MaxSeconds        *float64           `json:"max_seconds"`
	AllDoneSeconds    *float64           `json:"all_done_seconds"`
	AllDoneRuns       []*float64         `json:"all_done_runs"`
	LowerBoundSeconds float64            `json:"lower_bound_seconds"`
	RatioToBound      *float64           `json:"ratio_to_bound"`
	RatioToAvalanche  *float64           `json:"ratio_to_avalanche"`
	SeedEgressRatio   float64            `json:"seed_egress_ratio"`
	SeedWireRatio     float64            `json:"seed_wire_ratio"`
	SeedAppRatio      *float64           `json:"seed_app_ratio"`
	SeedUse           float64            `json:"seed_uplink_use"`
	LeecherUse        float64            `json:"leecher_uplink_use"`
	CPUBusy           float64            `json:"cpu_busy_cores"`
	CPUSeconds        map[string]float64 `json:"cpu_seconds"`
	OtherCPU          float64            `json:"other_cpu_cores"`
	LeecherCPUPerMiB  float64            `json:"leecher_cpu_ms_per_mib"`
	// UnfinishedProgress is the median share held by leechers that never
	// finished, over the repetitions that had some.
	UnfinishedProgress *float64 `json:"unfinished_progress,omitempty"`
	SpreadSeconds      *float64 `json:"spread_seconds"` // max - min completion
	// Phases of the run, from the per-second timeline (medians):
	// RampSeconds until all hosts together first send at half their total
	// cap; SeedBusySeconds until the seed last sends at half its cap;
	// TailSeconds from then to all done; CPUSaturated the share of seconds
	// the machine's CPUs were at least 95% busy.
	RampSeconds     *float64 `json:"ramp_seconds"`
	SeedBusySeconds *float64 `json:"seed_busy_seconds"`
	TailSeconds     *float64 `json:"tail_seconds"`
	CPUSaturated    float64  `json:"cpu_saturated"`
	Errors          []string `json:"errors,omitempty"`
}

// inf stands for "never" in medians.
var inf = math.Inf(1)

// median returns the median of xs (the mean of the middle two for an even
// count); +Inf values sort last.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	sort.Float64s(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// finite returns &f, or nil for NaN and infinities.
func finite(f float64) *float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	f = round3(f)
	return &f
}

// stats returns min, median and max completion time of one run, counting
// leechers that did not finish as never finishing.
func (r *RunResult) stats() (lo, mid, hi float64) {
	if r.Expected == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	ts := slices.Clone(r.Times)
	for len(ts) < r.Expected {
		ts = append(ts, inf)
	}
	sort.Float64s(ts)
	return ts[0], median(ts), ts[len(ts)-1]
}

// Summarise computes every scenario's summaries from its runs.
func (rep *Report) Summarise() {
	for _, sr := range rep.Scenarios {
		sr.Summaries = nil
		var av *Summary
		for _, name := range sr.Systems {
			var runs []*RunResult
			for _, r := range sr.Runs {
				if r.System == name {
					runs = append(runs, r)
				}
			}
			if len(runs) == 0 {
				continue
			}
			s := summarise(sr, name, runs)
			if name == SystemAvalanche {
				av = s
			}
			sr.Summaries = append(sr.Summaries, s)
		}
		for _, s := range sr.Summaries {
			if av != nil && av.AllDoneSeconds != nil && s.AllDoneSeconds != nil {
				s.RatioToAvalanche = finite(*s.AllDoneSeconds / *av.AllDoneSeconds)
			}
		}
	}
}

func summarise(sr *ScenarioReport, name string, runs []*RunResult) *Summary {
	s := &Summary{System: name, Scenario: sr.Name, Leechers: sr.Leechers, Expected: sr.Expected,
		Reps: len(runs), LowerBoundSeconds: round3(sr.BoundSeconds), CPUSeconds: map[string]float64{}}
	var los, mids, his, alls, comps, egress, wire, app, seedUse, leechUse, busy, other, perMiB, stuck, spread []float64
	var ramps, seedBusy, tails, sat []float64
	cpu := map[string][]float64{}
	completed, expected := 0, 0
	for _, r := range runs {
		if strings.HasPrefix(r.End, "error") {
			s.Errors = append(s.Errors, fmt.Sprintf("rep %d: %s", r.Rep, r.End))
		}
		lo, mid, hi := r.stats()
		los, mids, his = append(los, lo), append(mids, mid), append(his, hi)
		spread = append(spread, hi-lo)
		all := inf
		if r.AllDone != nil {
			all = *r.AllDone
		}
		alls = append(alls, all)
		s.AllDoneRuns = append(s.AllDoneRuns, finite(all))
		comps = append(comps, float64(r.Completed))
		s.CompletedRuns = append(s.CompletedRuns, r.Completed)
		completed += r.Completed
		expected += r.Expected
		egress, wire = append(egress, r.SeedEgressRatio), append(wire, r.SeedWireRatio)
		if r.SeedAppRatio != nil {
			app = append(app, *r.SeedAppRatio)
		}
		seedUse, leechUse, busy = append(seedUse, r.SeedUse), append(leechUse, r.LeecherUse), append(busy, r.CPUBusy)
		other, perMiB = append(other, r.OtherCPU), append(perMiB, r.LeecherCPUPerMiB)
		ramp, sb, tail, cs := r.phases()
		ramps, seedBusy, tails, sat = append(ramps, ramp), append(seedBusy, sb), append(tails, tail), append(sat, cs)
		if r.UnfinishedProgress != nil {
			stuck = append(stuck, *r.UnfinishedProgress)
		}
		for k, v := range r.CPUSeconds {
			cpu[k] = append(cpu[k], v)
		}
	}
	s.Completed = int(median(comps))
	if expected > 0 {
		s.CompletionRate = round3(float64(completed) / float64(expected))
	}
	s.MinSeconds, s.MedianSeconds, s.MaxSeconds = finite(median(los)), finite(median(mids)), finite(median(his))
	s.AllDoneSeconds = finite(median(alls))
	if s.AllDoneSeconds != nil {
		s.RatioToBound = finite(*s.AllDoneSeconds / sr.BoundSeconds)
	}
	s.SpreadSeconds = finite(median(spread))
	s.SeedEgressRatio, s.SeedWireRatio = round3(median(egress)), round3(median(wire))
	if len(app) > 0 {
		s.SeedAppRatio = finite(median(app))
	}
	s.SeedUse, s.LeecherUse, s.CPUBusy = round3(median(seedUse)), round3(median(leechUse)), round3(median(busy))
	s.OtherCPU, s.LeecherCPUPerMiB = round3(median(other)), round3(median(perMiB))
	if len(stuck) > 0 {
		s.UnfinishedProgress = finite(median(stuck))
	}
	s.RampSeconds, s.SeedBusySeconds, s.TailSeconds = finite(median(ramps)), finite(median(seedBusy)), finite(median(tails))
	s.CPUSaturated = round3(median(sat))
	for k, v := range cpu {
		s.CPUSeconds[k] = round3(median(v))
	}
	return s
}

// phases reads the run's timeline: seconds until all hosts together first
// sent at half their total cap, until the seed last sent at half its cap,
// from then until all done, and the share of seconds (until the end of the
// window) with the CPUs at least 95% busy. Missing values are +Inf.
func (r *RunResult) phases() (ramp, seedBusy, tail, cpuSat float64) {
	ramp, seedBusy, tail = inf, inf, inf
	total := r.SeedUplinkMbit
	for _, l := range r.Leecher {
		total += l.UplinkMbit
	}
	cpus := r.CPUs
	if cpus == 0 {
		cpus = runtime.NumCPU()
	}
	n, saturated := 0, 0
	for _, s := range r.Timeline {
		if s.T > r.Duration+0.5 {
			break
		}
		var sum float64
		for _, u := range s.Up {
			sum += u
		}
		if math.IsInf(ramp, 1) && total > 0 && sum >= total/2 {
			ramp = s.T
		}
		if len(s.Up) > 0 && r.SeedUplinkMbit > 0 && s.Up[0] >= r.SeedUplinkMbit/2 {
			seedBusy = s.T
		}
		n++
		if s.CPU >= 0.95*float64(cpus) {
			saturated++
		}
	}
	if r.AllDone != nil && !math.IsInf(seedBusy, 1) {
		tail = max(0, *r.AllDone-seedBusy)
	}
	if n > 0 {
		cpuSat = float64(saturated) / float64(n)
	}
	return ramp, seedBusy, tail, cpuSat
}

// line is a one-line account of a run for the log.
func (r *RunResult) line() string {
	if strings.HasPrefix(r.End, "error") {
		return fmt.Sprintf("  %-9s rep %d: %s", r.System, r.Rep, r.End)
	}
	lo, mid, hi := r.stats()
	all := "-"
	if r.AllDone != nil {
		all = fmt.Sprintf("%.1fs (%.2f× bound)", *r.AllDone, *r.AllDone/r.BoundSeconds)
	}
	return fmt.Sprintf("  %-9s rep %d: %s; %d/%d done, min/median/max %s/%s/%s s, all done %s, seed egress %.3f× (wire %.3f×), uplink use seed %.0f%% leechers %.0f%%, tbf drops seed %d leechers %d, CPU %.2f cores (other processes %.2f)",
		r.System, r.Rep, r.End, r.Completed, r.Expected, secs(lo), secs(mid), secs(hi), all,
		r.SeedEgressRatio, r.SeedWireRatio, 100*r.SeedUse, 100*r.LeecherUse, r.SeedDrops, r.LeecherDrops, r.CPUBusy, r.OtherCPU)
}

func secs(f float64) string {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return "never"
	}
	return fmt.Sprintf("%.1f", f)
}

func fmtp(p *float64, format string) string {
	if p == nil {
		return "–"
	}
	return fmt.Sprintf(format, *p)
}

// WriteMarkdown writes the report's tables.
func (rep *Report) WriteMarkdown(w io.Writer) {
	fmt.Fprintf(w, "Run of %s on %s; %d repetitions per system (plain HTTP: %d); medians over repetitions.\n",
		rep.Started.Format("2006-01-02 15:04 UTC"), rep.Host, rep.Reps, rep.RepsHTTP)
	for _, sr := range rep.Scenarios {
		fmt.Fprintf(w, "\n### %s\n\n%s. Lower bound %.1f s.\n\n", sr.Title, sr.Description, sr.BoundSeconds)
		fmt.Fprintln(w, "| system | completed | min s | median s | max s | all done s | × bound | × Avalanche | seed egress × file (wire) |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|")
		for _, s := range sr.Summaries {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s | %.3f (%.3f) |\n",
				s.System, completedCell(s), fmtp(s.MinSeconds, "%.1f"), fmtp(s.MedianSeconds, "%.1f"),
				fmtp(s.MaxSeconds, "%.1f"), fmtp(s.AllDoneSeconds, "%.1f"), fmtp(s.RatioToBound, "%.2f"),
				fmtp(s.RatioToAvalanche, "%.2f"), s.SeedEgressRatio, s.SeedWireRatio)
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| system | all done per rep s | spread s | seed uplink use | leecher uplink use | CPU busy (cores) | CPU s: seed / tracker / leechers | leecher CPU ms/MiB | other processes (cores) | seed's own count × file | unfinished stuck at |")
		fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
		for _, s := range sr.Summaries {
			var per []string
			for _, a := range s.AllDoneRuns {
				per = append(per, fmtp(a, "%.1f"))
			}
			stuck := "–"
			if s.UnfinishedProgress != nil {
				stuck = fmt.Sprintf("%.1f%%", 100**s.UnfinishedProgress)
			}
			fmt.Fprintf(w, "| %s | %s | %s | %.0f%% | %.0f%% | %.2f | %.1f / %.1f / %.1f | %.1f | %.2f | %s | %s |\n",
				s.System, strings.Join(per, ", "), fmtp(s.SpreadSeconds, "%.1f"), 100*s.SeedUse, 100*s.LeecherUse,
				s.CPUBusy, s.CPUSeconds[procSeed], s.CPUSeconds[procTracker], s.CPUSeconds[procLeecher], s.LeecherCPUPerMiB,
				s.OtherCPU, fmtp(s.SeedAppRatio, "%.3f"), stuck)
		}
		fmt.Fprintln(w)
		fmt.Fprintln(w, "| system | ramp to ½ of all caps s | seed busy until s | tail after seed s | CPU-saturated seconds |")
		fmt.Fprintln(w, "|---|---|---|---|---|")
		for _, s := range sr.Summaries {
			fmt.Fprintf(w, "| %s | %s | %s | %s | %.0f%% |\n", s.System, fmtp(s.RampSeconds, "%.1f"),
				fmtp(s.SeedBusySeconds, "%.1f"), fmtp(s.TailSeconds, "%.1f"), 100*s.CPUSaturated)
		}
		for _, s := range sr.Summaries {
			for _, e := range s.Errors {
				fmt.Fprintf(w, "\n%s: %s\n", s.System, e)
			}
		}
		if rep.Dir != "" {
			fmt.Fprintf(w, "\nPlots: `%s`, `%s`.\n", filepath.Join(rep.Dir, sr.Name+"-cdf.png"), filepath.Join(rep.Dir, sr.Name+"-upload.png"))
		}
	}
}

func completedCell(s *Summary) string {
	per := make([]string, len(s.CompletedRuns))
	for i, c := range s.CompletedRuns {
		per[i] = fmt.Sprint(c)
	}
	return fmt.Sprintf("%s of %d", strings.Join(per, ", "), s.Expected)
}

// Summaries returns every summary of the report, scenario by scenario.
func (rep *Report) Summaries() []*Summary {
	var out []*Summary
	for _, sr := range rep.Scenarios {
		out = append(out, sr.Summaries...)
	}
	return out
}

// WriteResults writes the report into rep.Dir: summary.md, summary.json,
// one JSON file with every run per scenario, and two plots per scenario.
func WriteResults(rep *Report) error {
	if err := os.MkdirAll(rep.Dir, 0o755); err != nil {
		return err
	}
	var md strings.Builder
	rep.WriteMarkdown(&md)
	if err := os.WriteFile(filepath.Join(rep.Dir, "summary.md"), []byte(md.String()), 0o644); err != nil {
		return err
	}
	if err := writeJSON(filepath.Join(rep.Dir, "summary.json"), rep.Summaries()); err != nil {
		return err
	}
	head := *rep
	head.Scenarios = nil
	if err := writeJSON(filepath.Join(rep.Dir, "report.json"), head); err != nil {
		return err
	}
	for _, sr := range rep.Scenarios {
		if err := writeJSON(filepath.Join(rep.Dir, sr.Name+".json"), sr); err != nil {
			return err
		}
		if err := writePNG(filepath.Join(rep.Dir, sr.Name+"-cdf.png"), cdfPlot(sr)); err != nil {
			return err
		}
		if err := writePNG(filepath.Join(rep.Dir, sr.Name+"-upload.png"), uploadPlot(sr)); err != nil {
			return err
		}
	}
	return nil
}

// LoadResults reads back a results folder WriteResults wrote (each
// scenario's JSON file, in the built-in scenarios' order), recomputes the
// summaries, and returns the report: tables, plots and docs can be redone
// without running again.
func LoadResults(dir string) (*Report, error) {
	rep := &Report{Dir: dir}
	if b, err := os.ReadFile(filepath.Join(dir, "report.json")); err == nil {
		if err := json.Unmarshal(b, rep); err != nil {
			return nil, fmt.Errorf("lab: %s/report.json: %w", dir, err)
		}
		rep.Dir, rep.Scenarios = dir, nil
	} else if t, err := time.Parse("20060102-150405", filepath.Base(dir)); err == nil {
		rep.Started, rep.Host = t, hostInfo()
	}
	for _, sc := range Scenarios() {
		b, err := os.ReadFile(filepath.Join(dir, sc.Name+".json"))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		var sr ScenarioReport
		if err := json.Unmarshal(b, &sr); err != nil {
			return nil, fmt.Errorf("lab: %s: %w", sc.Name, err)
		}
		for _, r := range sr.Runs {
			if r.System == SystemHTTP {
				rep.RepsHTTP = max(rep.RepsHTTP, r.Rep)
			} else {
				rep.Reps = max(rep.Reps, r.Rep)
			}
		}
		rep.Scenarios = append(rep.Scenarios, &sr)
	}
	if len(rep.Scenarios) == 0 {
		return nil, fmt.Errorf("lab: no scenario results in %s", dir)
	}
	rep.Summarise()
	return rep, nil
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
