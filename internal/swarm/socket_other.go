//go:build !linux

package swarm

import (
	"net"
	"time"
)

func (n *Node) tuneSocket(c net.Conn) net.Conn {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return c
}

// unacked is not known here: everything written counts as delivered.
func unacked(net.Conn) (int64, time.Duration) { return 0, 0 }

const haveLinkStats = false

type linkFigures struct {
	inflight int64
	acked    int64
	minRTT   time.Duration
}

// linkStats is not known here: the upload gate lets everything through.
func linkStats(net.Conn) (linkFigures, bool) { return linkFigures{}, false }
