package swarm

import (
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// tuneSocket limits unsent data queued in the kernel (TCP_NOTSENT_LOWAT),
// so that frames written now leave soon instead of waiting behind
// megabytes of earlier blocks.
func (n *Node) tuneSocket(c net.Conn) {
	tc, ok := c.(*net.TCPConn)
	if !ok || n.cfg.SendLowWater < 0 {
		return
	}
	tc.SetNoDelay(true)
	rc, err := tc.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		const tcpNotsentLowat = 25 // linux/tcp.h
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpNotsentLowat, n.cfg.SendLowWater)
	})
}

// unacked returns the bytes written to c that its peer has not
// acknowledged yet (still queued in the kernel, or on the way) and, when
// some are on the way, how long the peer has acknowledged nothing.
func unacked(c net.Conn) (n int64, silent time.Duration) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return 0, 0
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return 0, 0
	}
	rc.Control(func(fd uintptr) {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if err == nil {
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
