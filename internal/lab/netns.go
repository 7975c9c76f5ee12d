package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The emulated network: hosts on one bridge in 10.77.0.0/24. The seed is
// 10.77.0.2, leecher i (from 1) is 10.77.0.(10+i). These addresses exist
// only inside the hosts' namespaces, which live inside the lab's own private
// network namespace (see Isolate).
const (
	bridgeName = "labbr0"
	subnet     = "10.77.0.%d/24"
	seedOctet  = 2
	// tbfLatency bounds the tbf queue, as in the research recipes.
	tbfLatency = "100ms"
	// minBurst is the smallest tbf burst: below 64 KiB tbf splits large
	// segments into single frames and pins the CPU.
	minBurst = 128 << 10
)

// host is one emulated machine: a network namespace with one veth link
// (eth0) to the bridge, capped in its upload direction by tbf.
type host struct {
	name string // namespace name: "seed", "h01", ...
	ip   netip.Addr
	up   int64 // uplink cap, bits/s
	veth string
	ns   string // /run/netns/NAME
	tc   *netlinkConn
}

// testbed is a set of hosts on one bridge.
type testbed struct {
	seed     *host
	leechers []*host
	all      []*host
}

// hostSpec describes a host to create.
type hostSpec struct {
	name  string
	octet int
	up    int64
}

// newTestbed creates the bridge and one namespace per host. On error it
// removes what it created.
func newTestbed(ctx context.Context, s *Scenario) (tb *testbed, err error) {
	specs := []hostSpec{{"seed", seedOctet, s.SeedUp}}
	for i, u := range s.LeecherUp {
		specs = append(specs, hostSpec{fmt.Sprintf("h%02d", i+1), 10 + i + 1, u})
	}
	tb = &testbed{}
	defer func() {
		if err != nil {
			tb.close()
			tb = nil
		}
	}()
	for _, sp := range specs {
		h, herr := newHost(ctx, sp)
		if h != nil {
			tb.all = append(tb.all, h)
		}
		if err = herr; err != nil {
			return tb, err
		}
	}
	tb.seed, tb.leechers = tb.all[0], tb.all[1:]
	return tb, nil
}

func newHost(ctx context.Context, sp hostSpec) (*host, error) {
	h := &host{
		name: sp.name,
		ip:   netip.MustParsePrefix(fmt.Sprintf(subnet, sp.octet)).Addr(),
		up:   sp.up,
		veth: "v" + sp.name,
		ns:   filepath.Join("/run/netns", sp.name),
	}
	if _, err := net.InterfaceByName(h.veth); err == nil {
		ipCmd(ctx, "link", "del", h.veth)
	}
	if err := ipCmd(ctx, "netns", "add", h.name); err != nil {
		return nil, err
	}
	steps := [][]string{
		{"link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.name},
		{"link", "set", h.veth, "master", bridgeName, "up"},
		{"-n", h.name, "addr", "add", fmt.Sprintf(subnet, sp.octet), "dev", "eth0"},
		{"-n", h.name, "link", "set", "eth0", "up"},
		{"-n", h.name, "link", "set", "lo", "up"},
	}
	for _, st := range steps {
		if err := ipCmd(ctx, st...); err != nil {
			return h, err
		}
	}
	if h.up > 0 {
		burst := max(minBurst, h.up/8/200) // at least 5 ms of traffic
		out, err := exec.CommandContext(ctx, "tc", "-n", h.name, "qdisc", "add", "dev", "eth0", "root", "tbf",
			"rate", strconv.FormatInt(h.up, 10)+"bit", "burst", strconv.FormatInt(burst, 10),
			"latency", tbfLatency).CombinedOutput()
		if err != nil {
			return h, fmt.Errorf("lab: tc on %s: %v: %s", h.name, err, bytesTrim(out))
		}
	}
	c, err := openNetlink(h.ns, unix.NETLINK_ROUTE)
	if err != nil {
		return h, err
	}
	h.tc = c
	return h, nil
}

// close deletes every host: its veth pair first (the kernel destroys a
// deleted namespace's links asynchronously, so the names could still be
// taken when the next run starts), then its namespace. Processes must have
// been stopped first.
func (tb *testbed) close() {
	ctx := context.Background()
	for _, h := range tb.all {
		if h.tc != nil {
			h.tc.close()
		}
		ipCmd(ctx, "link", "del", h.veth)
		ipCmd(ctx, "netns", "del", h.name)
	}
	tb.all = nil
}

// newBridge creates the bridge every host's veth joins, after removing
// whatever a previous run in this same network namespace left behind (only
// possible after a panic: namespaces die with the lab).
func newBridge(ctx context.Context) error {
	ents, _ := os.ReadDir("/run/netns")
	for _, e := range ents {
		ipCmd(ctx, "netns", "del", e.Name())
	}
	if _, err := net.InterfaceByName(bridgeName); err == nil {
		ipCmd(ctx, "link", "del", bridgeName)
	}
	if err := ipCmd(ctx, "link", "add", bridgeName, "type", "bridge"); err != nil {
		return err
	}
	return ipCmd(ctx, "link", "set", bridgeName, "up")
}

// removeBridge deletes the bridge.
func removeBridge() { ipCmd(context.Background(), "link", "del", bridgeName) }

func ipCmd(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("lab: ip %s: %v: %s", strings.Join(args, " "), err, bytesTrim(out))
	}
	return nil
}

func bytesTrim(b []byte) string { return strings.TrimSpace(string(b)) }

// inNetns runs f on a thread that is in the network namespace at path.
// Sockets f creates belong to that namespace for their whole life, and may
// be used from any thread afterwards.
func inNetns(path string, f func() error) error {
	target, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("lab: open %s: %w", path, err)
	}
	defer unix.Close(target)
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("lab: own netns: %w", err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("lab: setns %s: %w", path, err)
	}
	ferr := f()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: it dies with this goroutine instead of
		// running other goroutines in the wrong namespace.
		return fmt.Errorf("lab: setns back: %w", err)
	}
	runtime.UnlockOSThread()
	return ferr
}

// dial opens a TCP connection from inside the host's namespace, so that the
// lab can reach services on the host's loopback without touching the
// emulated links (and their counters).
func (h *host) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return nil, fmt.Errorf("lab: dial %s: %w", addr, err)
	}
	if !ap.Addr().Is4() {
		return nil, fmt.Errorf("lab: dial %s: IPv4 only", addr)
	}
	fd := -1
	err = inNetns(h.ns, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("lab: socket in %s: %w", h.name, err)
	}
	// The addresses the lab dials are on the host itself, so a blocking
	// connect returns at once.
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: int(ap.Port()), Addr: ap.Addr().As4()}); err != nil {
		unix.Close(fd)
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: err}
	}
	f := os.NewFile(uintptr(fd), "lab-conn")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("lab: dial %s: %w", addr, err)
	}
	return c, nil
}

// errNotRoot is returned when the lab cannot create namespaces.
var errNotRoot = errors.New("lab: needs root (network namespaces, veth links and tc)")
