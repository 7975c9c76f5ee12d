package swarm

import (
	"context"
	"sync"
	"time"
)

// upGate keeps this node's uplink queue short. Every link's TCP stack
// would otherwise fill the first bottleneck's buffer — a home router's, or
// the lab's tbf — until it drops packets: in the swarm lab the origin's
// uplink dropped hundreds to thousands of packets a run when sixteen
// links' congestion control probed it at once, the links that lost them
// sat in loss recovery for seconds, and the peers behind them finished up
// to 18 s after the others; every reject it sends queues behind the
// blocks too.
//
// Before a block is written, wait checks the bytes the node has in flight
// on all links (sent and not yet acknowledged, and written ones the
// receiver's window lets out: from TCP_INFO) against a budget: what its
// links deliver in the target queueing delay on top of each link's own
// bandwidth-delay product. Past the budget, writers wait
// their turn, first come first served, which also splits the uplink
// evenly among the neighbours asking. It is a delay-based scheme in the
// spirit of LEDBAT (RFC 6817), with the kernel's own per-link figures —
// round trips, not one-way delays, so a neighbour's slow acknowledgements
// look like a queue of ours (why peers go without it by default; see
// NodeConfig.QueueDelay).
type upGate struct {
	target time.Duration
	floor  int64 // least budget, bytes

	mu       sync.Mutex
	conns    map[*conn]*gateLink
	checked  time.Time
	inflight int64 // as of checked, plus what was let through since
	budget   int64
	waiters  []gateWaiter
	polling  bool
}

// gateLink is what the gate keeps of one link.
type gateLink struct {
	acked  int64 // bytes acknowledged, at the last refresh
	at     time.Time
	rate   float64 // acknowledged bytes per second, smoothed
	minRTT time.Duration
}

// gateWindow is the time over which link rates are smoothed.
const gateWindow = 200 * time.Millisecond

type gateWaiter struct {
	size int64
	ok   chan struct{}
}

// gateRefresh is how often the gate reads the links' figures again while
// writers wait.
const gateRefresh = 10 * time.Millisecond

// newUpGate returns a gate for the target queueing delay, or nil (no gate)
// when target is negative or links' figures cannot be read here.
func newUpGate(target time.Duration) *upGate {
	if target < 0 || !haveLinkStats {
		return nil
	}
	return &upGate{target: target, floor: 64 << 10, budget: 64 << 10, conns: map[*conn]*gateLink{}}
}

func (g *upGate) add(c *conn) {
	if g == nil {
		return
	}
	g.mu.Lock()
	g.conns[c] = &gateLink{}
	g.mu.Unlock()
}

func (g *upGate) remove(c *conn) {
	if g == nil {
		return
	}
	g.mu.Lock()
	delete(g.conns, c)
	g.mu.Unlock()
}

// refresh reads every link's bytes in flight and works out the budget.
// Rates come from the bytes each link had acknowledged, smoothed over
// gateWindow: the kernel's own delivery-rate sample jumps to gigabytes a
// second on bursts of acknowledgements. Caller holds g.mu.
func (g *upGate) refresh(now time.Time) {
	var inflight int64
	var total float64
	base := time.Duration(-1)
	for c, ls := range g.conns {
		st, ok := linkStats(c.nc.NetConn())
		if !ok {
			continue
		}
		inflight += st.inflight
		if !ls.at.IsZero() {
			if dt := now.Sub(ls.at).Seconds(); dt > 0 {
				inst := float64(st.acked-ls.acked) / dt
				a := min(1, dt/gateWindow.Seconds())
				ls.rate += a * (inst - ls.rate)
			}
		}
		ls.acked, ls.at, ls.minRTT = st.acked, now, st.minRTT
		total += ls.rate
		if st.minRTT > 0 && (base < 0 || st.minRTT < base) {
			base = st.minRTT
		}
	}
	// What the links deliver in the target delay and in two of the
	// poller's periods (between two readings the gate cannot see the queue
	// drain, and must not let it run dry), plus each link's own
	// bandwidth-delay product, which is in flight without queueing
	// anywhere. A link that opened while the queue was full never saw its
	// path empty, so its least round trip counts only up to twice the
	// node's least plus 5 ms.
	budget := total * (g.target + 2*gateRefresh).Seconds()
	for _, ls := range g.conns {
		budget += ls.rate * min(ls.minRTT, 2*max(base, 0)+5*time.Millisecond).Seconds()
	}
	g.inflight = inflight
	g.budget = max(g.floor, int64(budget))
	g.checked = now
}

// room reports whether size more bytes fit, as last counted, and takes
// them if so. Only the poller reads the links again: one TCP_INFO per
// link costs a system call, and a node serving thirty links would
// otherwise make thousands a second. Caller holds g.mu.
func (g *upGate) room(size int64) bool {
	if g.inflight+size > g.budget {
		return false
	}
	g.inflight += size
	return true
}

// ready reports whether a block of size bytes may be written now without
// waiting, and if so counts it as written.
func (g *upGate) ready(size int) bool {
	if g == nil {
		return true
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.waiters) == 0 && g.room(int64(size))
}

// wait blocks until a block of size bytes may be written.
func (g *upGate) wait(ctx context.Context, size int) error {
	if g == nil {
		return nil
	}
	g.mu.Lock()
	if len(g.waiters) == 0 && g.room(int64(size)) {
		g.mu.Unlock()
		return nil
	}
	w := gateWaiter{size: int64(size), ok: make(chan struct{})}
	g.waiters = append(g.waiters, w)
	if !g.polling {
		g.polling = true
		go g.poll()
	}
	g.mu.Unlock()
	select {
	case <-w.ok:
		return nil
	case <-ctx.Done():
		g.mu.Lock()
		for i, o := range g.waiters {
			if o.ok == w.ok {
				g.waiters = append(g.waiters[:i], g.waiters[i+1:]...)
				g.mu.Unlock()
				return ctx.Err()
			}
		}
		g.mu.Unlock()
		return nil // let through just now
	}
}

// poll lets waiters through, in order, as room appears; it ends when none
// is left.
func (g *upGate) poll() {
	t := time.NewTicker(gateRefresh)
	defer t.Stop()
	for first := true; ; first = false {
		if !first {
			<-t.C
		}
		g.mu.Lock()
		g.refresh(time.Now())
		for len(g.waiters) > 0 && g.room(g.waiters[0].size) {
			close(g.waiters[0].ok)
			g.waiters = g.waiters[1:]
		}
		if len(g.waiters) == 0 {
			g.polling = false
			g.mu.Unlock()
			return
		}
		g.mu.Unlock()
	}
}
