package swarm

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tuneSocket sets TCP_NODELAY and limits unsent data queued in the kernel
// (TCP_NOTSENT_LOWAT), so that frames written now leave soon instead of
// waiting behind megabytes of earlier blocks. It returns the connection to
// use from then on: a sockConn.
func (n *Node) tuneSocket(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	tc.SetNoDelay(true)
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	if n.cfg.SendLowWater >= 0 {
		rc.Control(func(fd uintptr) {
			const tcpNotsentLowat = 25 // linux/tcp.h
			syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpNotsentLowat, n.cfg.SendLowWater)
		})
	}
	return &sockConn{TCPConn: tc, rc: rc}
}

// sockConn is a TCP connection that reads and writes its (non-blocking)
// socket with raw system calls, and that can gather writes into one.
//
// Why raw: every ordinary system call tells the Go scheduler it may block,
// and the first one after the process was idle wakes the runtime's
// monitor thread, which then polls every 20 µs while the process is busy.
// A peer is idle between most blocks, so that cost came with nearly every
// frame: in the swarm lab the monitor's wake-ups took 15% of all CPU time.
// Reads and writes on a non-blocking socket never block, so they need no
// such notice; waiting for readiness still goes through the runtime's
// poller (syscall.RawConn), deadlines included.
//
// Why gathered: TLS writes each record (up to 16 KiB) separately. Between
// Gather and Flush the records are kept and written in one system call,
// which sends them as one large segment through the stack.
type sockConn struct {
	*net.TCPConn
	rc syscall.RawConn

	mu     sync.Mutex // guards the fields below
	gather bool
	out    []byte
}

// maxGather bounds the bytes gathered before they are written anyway: a
// few TLS records, enough for the stack to send them as one large segment.
const maxGather = 128 << 10

func (c *sockConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n uintptr
	var errno syscall.Errno
	err := c.rc.Read(func(fd uintptr) bool {
		for {
			n, _, errno = syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			if errno != syscall.EINTR {
				return errno != syscall.EAGAIN
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", errno)}
	case n == 0:
		return 0, io.EOF
	}
	return int(n), nil
}

func (c *sockConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gather && len(p) < maxGather {
		if len(c.out)+len(p) > maxGather {
			if err := c.writeOut(); err != nil {
				return 0, err
			}
		}
		if c.out == nil {
			c.out = make([]byte, 0, maxGather)
		}
		c.out = append(c.out, p...)
		return len(p), nil
	}
	if err := c.writeOut(); err != nil {
		return 0, err
	}
	n, err := c.write(p)
	return n, err
}

// write writes all of p to the socket. Caller holds c.mu.
func (c *sockConn) write(p []byte) (int, error) {
	done := 0
	var errno syscall.Errno
	err := c.rc.Write(func(fd uintptr) bool {
		for done < len(p) {
			n, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[done])), uintptr(len(p)-done))
			switch e {
			case 0:
				done += int(n)
			case syscall.EINTR:
			case syscall.EAGAIN:
				return false
			default:
				errno = e
				return true
			}
		}
		return true
	})
	if err == nil && errno != 0 {
		err = &net.OpError{Op: "write", Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("write", errno)}
	}
	return done, err
}

// writeOut writes what was gathered. Caller holds c.mu.
func (c *sockConn) writeOut() error {
	if len(c.out) == 0 {
		return nil
	}
	_, err := c.write(c.out)
	c.out = c.out[:0]
	return err
}

// Gather makes writes collect until Flush.
func (c *sockConn) Gather() {
	c.mu.Lock()
	c.gather = true
	c.mu.Unlock()
}

// Flush writes what was gathered and ends gathering.
func (c *sockConn) Flush() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gather = false
	return c.writeOut()
}

// Close writes what was gathered, then closes the connection.
func (c *sockConn) Close() error {
	c.Flush()
	return c.TCPConn.Close()
}

// unacked returns the bytes written to c that its peer has not
// acknowledged yet (still queued in the kernel, or on the way) and, when
// some are on the way, how long the peer has acknowledged nothing.
func unacked(c net.Conn) (n int64, silent time.Duration) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return 0, 0
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return 0, 0
	}
	rc.Control(func(fd uintptr) {
		// Raw, like the reads and writes (see sockConn): it never blocks.
		var info unix.TCPInfo
		size := uint32(unsafe.Sizeof(info))
		_, _, e := syscall.RawSyscall6(syscall.SYS_GETSOCKOPT, fd, unix.IPPROTO_TCP, unix.TCP_INFO,
			uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&size)), 0)
		if e == 0 {
			// Segments in flight times their size; not bytes_sent minus
			// bytes_acked, which counts retransmissions and never drains.
			n = int64(info.Notsent_bytes) + int64(info.Unacked)*int64(info.Snd_mss)
			if info.Unacked > 0 {
				silent = time.Duration(info.Last_ack_recv) * time.Millisecond
			}
		}
	})
	return n, silent
}

// haveLinkStats says whether linkStats works here.
const haveLinkStats = true

// linkFigures are a link's figures from TCP_INFO that the upload gate uses.
type linkFigures struct {
	inflight int64         // bytes sent and not acknowledged, and unsent ones the receiver's window lets out
	acked    int64         // bytes acknowledged so far
	minRTT   time.Duration // least round-trip time seen
}

// linkStats reads c's figures; false where they cannot be read.
func linkStats(c net.Conn) (linkFigures, bool) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return linkFigures{}, false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return linkFigures{}, false
	}
	var f linkFigures
	var e syscall.Errno
	rc.Control(func(fd uintptr) {
		var info unix.TCPInfo
		size := uint32(unsafe.Sizeof(info))
		_, _, e = syscall.RawSyscall6(syscall.SYS_GETSOCKOPT, fd, unix.IPPROTO_TCP, unix.TCP_INFO,
			uintptr(unsafe.Pointer(&info)), uintptr(unsafe.Pointer(&size)), 0)
		if e == 0 {
			sent := int64(info.Unacked) * int64(info.Snd_mss)
			unsent := int64(info.Notsent_bytes)
			if size >= uint32(unsafe.Offsetof(info.Snd_wnd)+unsafe.Sizeof(info.Snd_wnd)) {
				// Only what the receiver's window lets out will queue
				// behind our uplink soon; the rest waits for a reader
				// (a neighbour that just started, or is busy) and must
				// not hold up the links to everyone else.
				unsent = min(unsent, max(0, int64(info.Snd_wnd)-sent))
			}
			f.inflight = sent + unsent
			f.acked = int64(info.Bytes_acked)
			f.minRTT = time.Duration(info.Min_rtt) * time.Microsecond
		}
	})
	return f, e == 0
}
