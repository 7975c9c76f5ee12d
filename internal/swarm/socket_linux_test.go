package swarm

import (
	"net"
	"testing"
	"time"
)

// TestLinkStatsIgnoresWhatTheReceiverHoldsUp: bytes written to a link
// whose reader does not read wait in our socket, not in the uplink's
// queue; the upload gate must not count them, or one stalled neighbour
// would hold up the links to everyone else.
func TestLinkStatsIgnoresWhatTheReceiverHoldsUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := <-accepted
	if r == nil {
		t.Fatal("accept failed")
	}
	defer r.Close() // never read: its window closes

	// Write until the socket is full and writes block.
	const chunk = 64 << 10
	written := 0
	buf := make([]byte, chunk)
	for written < 64<<20 {
		c.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := c.Write(buf)
		written += n
		if err != nil {
			break
		}
	}
	time.Sleep(50 * time.Millisecond) // let the last segments be acknowledged
	f, ok := linkStats(c)
	if !ok {
		t.Skip("no TCP_INFO here")
	}
	t.Logf("written %d KiB, counted in flight %d KiB", written>>10, f.inflight>>10)
	if written < 256<<10 {
		t.Fatalf("only %d bytes were written before the socket filled: the test cannot tell", written)
	}
	// What the receiver's buffer took is acknowledged; the rest (most of
	// what was written) waits for its window to open.
	if f.inflight > int64(written)/4 {
		t.Fatalf("%d of %d bytes held up by the receiver counted as in flight", f.inflight, written)
	}
}
