package swarm

import (
	"net"
	"syscall"
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
