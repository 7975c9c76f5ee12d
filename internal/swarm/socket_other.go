//go:build !linux

package swarm

import "net"

func (n *Node) tuneSocket(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
}
