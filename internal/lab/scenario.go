package lab

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Mbit is one megabit per second, the unit of every rate in a Scenario.
const Mbit = 1_000_000

// Scenario describes one experiment: the hosts, their uplinks, the file and
// who comes and goes. Rates are in bits per second, as tc counts them.
// Downlinks are not capped.
type Scenario struct {
	Name  string // short name used on the command line
	Title string // one line for tables

	FileSize  int64   // bytes
	SeedUp    int64   // the seed host's uplink, bits/s
	LeecherUp []int64 // one uplink per leecher host, bits/s; len is N

	// SeedLeavesAt, when positive, makes the seed leave (its processes are
	// killed; the tracker stays) once it has put this multiple of the file
	// on the wire.
	SeedLeavesAt float64

	// Leavers leechers (the first ones) leave, gracefully (SIGTERM), as soon
	// as their own progress reaches LeaveAt (0..1).
	Leavers int
	LeaveAt float64

	// Late leechers (the last ones) start LateDelay after the others.
	Late      int
	LateDelay time.Duration

	// Systems run by default; nil means every system.
	Systems []string
}

// N returns the number of leecher hosts.
func (s *Scenario) N() int { return len(s.LeecherUp) }

// Expected returns how many leechers should finish: all but the leavers.
func (s *Scenario) Expected() int { return s.N() - s.Leavers }

// role returns what leecher i does in the scenario.
func (s *Scenario) role(i int) string {
	switch {
	case i < s.Leavers:
		return roleLeaver
	case i >= s.N()-s.Late:
		return roleLate
	}
	return roleRegular
}

// Leecher roles.
const (
	roleRegular = "regular"
	roleLeaver  = "leaver"
	roleLate    = "late"
)

// LowerBound returns the fluid lower bound, in seconds, on the time until
// every staying leecher is done:
//
//	max(F/u_seed, F/d_min, D/(u_seed + Σ u_i))
//
// where D is the data the leechers must receive in total (N·F, less what
// leavers never fetch) and F/d_min is 0 because downlinks are uncapped.
// Late arrivals add max(.., delay + F/(u_seed + Σ u_i)). The rates are the
// nominal tbf rates; tbf passes about 95.6% of them as IP payload, so a
// perfect system lands about 4.5% above this bound.
func (s *Scenario) LowerBound() float64 {
	f := float64(s.FileSize) * 8
	total := float64(s.SeedUp)
	for _, u := range s.LeecherUp {
		total += float64(u)
	}
	data := float64(s.Expected())*f + float64(s.Leavers)*s.LeaveAt*f
	b := max(f/float64(s.SeedUp), data/total)
	if s.Late > 0 {
		b = max(b, s.LateDelay.Seconds()+f/total)
	}
	return b
}

// Describe returns the hosts in words: "16 leechers, 128 MiB, seed 50,
// leechers 3×150 + 13×30 Mbit/s".
func (s *Scenario) Describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d leechers, %s, uplinks in Mbit/s: seed %s, leechers %s",
		s.N(), sizeString(s.FileSize), mbit(s.SeedUp), rateGroups(s.LeecherUp))
	if s.SeedLeavesAt > 0 {
		fmt.Fprintf(&b, "; the seed leaves after sending %.2g× the file", s.SeedLeavesAt)
	}
	if s.Leavers > 0 {
		fmt.Fprintf(&b, "; %d leechers leave at %.0f%% of their own download", s.Leavers, 100*s.LeaveAt)
	}
	if s.Late > 0 {
		fmt.Fprintf(&b, "; %d leechers start %s late", s.Late, s.LateDelay)
	}
	return b.String()
}

// rateGroups writes consecutive equal rates as "3×150 + 13×30".
func rateGroups(rates []int64) string {
	var parts []string
	for i := 0; i < len(rates); {
		j := i
		for j < len(rates) && rates[j] == rates[i] {
			j++
		}
		parts = append(parts, fmt.Sprintf("%d×%s", j-i, mbit(rates[i])))
		i = j
	}
	return strings.Join(parts, " + ")
}

func mbit(r int64) string { return fmt.Sprintf("%g", float64(r)/Mbit) }

func sizeString(n int64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d B", n)
}

func uniform(n int, r int64) []int64 {
	rs := make([]int64, n)
	for i := range rs {
		rs[i] = r
	}
	return rs
}

// Scenarios returns the built-in scenarios: smoke (the CI test) and the
// five of issue 4, in order.
func Scenarios() []Scenario {
	const mib = 1 << 20
	return []Scenario{
		{
			Name: "smoke", Title: "smoke: N=4, 16 MiB, all 50 Mbit/s",
			FileSize: 16 * mib, SeedUp: 50 * Mbit, LeecherUp: uniform(4, 50*Mbit),
			Systems: []string{SystemAvalanche, SystemAria2},
		},
		{
			Name: "uniform", Title: "1. N=16, 128 MiB, every host 50 Mbit/s",
			FileSize: 128 * mib, SeedUp: 50 * Mbit, LeecherUp: uniform(16, 50*Mbit),
		},
		{
			Name: "hetero", Title: "2. heterogeneous uplinks: seed 50, 3×150 + 13×30 Mbit/s",
			FileSize: 128 * mib, SeedUp: 50 * Mbit,
			LeecherUp: append(uniform(3, 150*Mbit), uniform(13, 30*Mbit)...),
		},
		{
			Name: "seed-leaves", Title: "3. the seed leaves after sending 1.0× the file",
			FileSize: 128 * mib, SeedUp: 50 * Mbit, LeecherUp: uniform(16, 50*Mbit),
			SeedLeavesAt: 1.0,
		},
		{
			Name: "churn", Title: "4. 4 of 16 leave at 50%, 4 start 10 s late",
			FileSize: 128 * mib, SeedUp: 50 * Mbit, LeecherUp: uniform(16, 50*Mbit),
			Leavers: 4, LeaveAt: 0.5, Late: 4, LateDelay: 10 * time.Second,
		},
		{
			Name: "scale", Title: "5. N=32, seed uplink = one leecher's (50 Mbit/s)",
			FileSize: 128 * mib, SeedUp: 50 * Mbit, LeecherUp: uniform(32, 50*Mbit),
		},
	}
}

// Scaled returns the scenario with every uplink multiplied by f (and the
// title saying so): at half the rates the CPUs of a small machine stop
// being the bottleneck, which separates protocol behaviour from CPU cost.
func (s Scenario) Scaled(f float64) Scenario {
	if f == 1 || f <= 0 {
		return s
	}
	s.SeedUp = int64(float64(s.SeedUp) * f)
	s.LeecherUp = slices.Clone(s.LeecherUp)
	for i := range s.LeecherUp {
		s.LeecherUp[i] = int64(float64(s.LeecherUp[i]) * f)
	}
	s.Title += fmt.Sprintf(" — rates ×%g", f)
	return s
}

// LookupScenario returns the built-in scenario called name; "1" to "5" name
// the scenarios by number.
func LookupScenario(name string) (Scenario, bool) {
	all := Scenarios()
	for i, s := range all {
		if s.Name == name || (i > 0 && name == fmt.Sprint(i)) {
			return s, true
		}
	}
	return Scenario{}, false
}

// ScenarioNames lists the built-in scenarios' names.
func ScenarioNames() []string {
	var names []string
	for _, s := range Scenarios() {
		names = append(names, s.Name)
	}
	return names
}
