package lab

import (
	"encoding/json"
	"maps"
	"sync"
	"time"
)

// leecher is the lab's view of one leecher host: its role in the scenario
// and what its client reported.
type leecher struct {
	idx  int // 0-based
	host *host
	role string
	dir  string

	mu         sync.Mutex
	proc       *proc
	launched   bool
	startAt    time.Duration // offset from t0
	done, size int64
	// rank is progress at the finest grain the client reports (Avalanche:
	// innovative blocks held, in thousandths); it tells a slow swarm from
	// a stalled one when done moves a whole generation at a time.
	rank       int64
	complete   bool
	completeAt time.Duration // offset from t0
	left       bool
	leftAt     time.Duration
	leftFrac   float64
	counters   map[string]int64 // the client's own final counters
}

// update records progress.
func (l *leecher) update(done, size int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if done > l.done {
		l.done = done
	}
	if size > 0 {
		l.size = size
	}
}

// setComplete records completion at the given offset from t0, once.
func (l *leecher) setComplete(at time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.complete || l.left {
		return
	}
	l.complete, l.completeAt = true, at
	if l.size > 0 {
		l.done = l.size
	}
}

// setCounters stores the client's own counters (bytes by source, uploaded,
// and what only its "complete" line reports), keeping those not given again.
func (l *leecher) setCounters(c map[string]int64) {
	l.mu.Lock()
	if l.counters == nil {
		l.counters = map[string]int64{}
	}
	maps.Copy(l.counters, c)
	l.mu.Unlock()
}

// fraction returns the share of the file held (0..1).
func (l *leecher) fraction(fileSize int64) float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.complete {
		return 1
	}
	return float64(l.done) / float64(fileSize)
}

// clientLine is what the lab reads from "avalanche get --json" and
// "avalanche lab fetch --json": progress lines, a "complete" line as soon as
// the file is verified and in place, and a final "done" line.
type clientLine struct {
	Event      string  `json:"event"`
	Percent    float64 `json:"percent"`
	DoneBytes  int64   `json:"done_bytes"`
	Size       int64   `json:"size"`
	Seeding    bool    `json:"seeding"`
	Seconds    float64 `json:"seconds"`
	FromPeers  int64   `json:"from_peers"`
	FromOrigin int64   `json:"from_origin"`
	FromEdge   int64   `json:"from_edge"`
	FromHTTP   int64   `json:"from_http"`
	Uploaded   int64   `json:"uploaded"`
	Peers      int     `json:"peers"`

	// Only in Avalanche's "complete" line: the engine's counters and what
	// the download cost the process.
	BlocksIn      int64   `json:"blocks_in"`
	UnitsIn       int64   `json:"units_in"`
	NonInnovative int64   `json:"non_innovative"`
	Wasted        int64   `json:"wasted"`
	UserSeconds   float64 `json:"cpu_user_seconds"`
	SysSeconds    float64 `json:"cpu_sys_seconds"`
	MinorFaults   int64   `json:"minor_faults"`
	Voluntary     int64   `json:"voluntary_switches"`
	Involuntary   int64   `json:"involuntary_switches"`
}

// jsonLines returns an onLine callback that feeds a leecher from the JSON
// lines of an avalanche client. now returns the current offset from t0.
func jsonLines(l *leecher, now func() time.Duration) func([]byte) {
	return func(b []byte) {
		var m clientLine
		if json.Unmarshal(b, &m) != nil {
			return
		}
		counters := map[string]int64{
			"from_peers": m.FromPeers, "from_origin": m.FromOrigin, "from_edge": m.FromEdge,
			"from_http": m.FromHTTP, "uploaded": m.Uploaded,
		}
		switch m.Event {
		case "progress":
			l.update(m.DoneBytes, m.Size)
			l.mu.Lock()
			l.rank = max(l.rank, int64(m.Percent*10))
			l.mu.Unlock()
			if m.Seeding {
				l.setComplete(now())
			}
			l.setCounters(counters)
		case "complete", "done":
			l.setComplete(now())
			if m.Event == "complete" && m.BlocksIn > 0 {
				counters["blocks_in"], counters["units_in"] = m.BlocksIn, m.UnitsIn
				counters["non_innovative"], counters["wasted"] = m.NonInnovative, m.Wasted
				counters["cpu_user_ms"] = int64(m.UserSeconds * 1000)
				counters["cpu_sys_ms"] = int64(m.SysSeconds * 1000)
				counters["minor_faults"] = m.MinorFaults
				counters["voluntary_switches"], counters["involuntary_switches"] = m.Voluntary, m.Involuntary
			}
			l.setCounters(counters)
		}
	}
}
