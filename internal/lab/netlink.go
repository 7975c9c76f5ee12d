package lab

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// netlinkConn is a netlink socket opened inside one host's namespace. The
// lab reads each host's tbf counters through it ten times a second without
// starting a process, and the seed's unsent socket bytes.
type netlinkConn struct {
	mu  sync.Mutex
	fd  int
	seq uint32
	buf []byte
}

func openNetlink(nsPath string, proto int) (*netlinkConn, error) {
	fd := -1
	err := inNetns(nsPath, func() error {
		var err error
		fd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, proto)
		return err
	})
	if err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, fmt.Errorf("lab: netlink socket in %s: %w", nsPath, err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("lab: netlink bind: %w", err)
	}
	return &netlinkConn{fd: fd, buf: make([]byte, 1<<16)}, nil
}

func (c *netlinkConn) close() error { return unix.Close(c.fd) }

// dump sends a dump request and calls f with the payload of every answer.
func (c *netlinkConn) dump(typ uint16, req []byte, f func(msg []byte)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	msg := make([]byte, unix.NLMSG_HDRLEN+len(req))
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(msg[8:], c.seq)
	copy(msg[unix.NLMSG_HDRLEN:], req)
	if err := unix.Sendto(c.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("lab: netlink send: %w", err)
	}
	for {
		n, _, err := unix.Recvfrom(c.fd, c.buf, 0)
		if err != nil {
			return fmt.Errorf("lab: netlink receive: %w", err)
		}
		b := c.buf[:n]
		for len(b) >= unix.NLMSG_HDRLEN {
			l := int(binary.NativeEndian.Uint32(b[0:]))
			t := binary.NativeEndian.Uint16(b[4:])
			seq := binary.NativeEndian.Uint32(b[8:])
			if l < unix.NLMSG_HDRLEN || l > len(b) {
				return errors.New("lab: netlink: truncated message")
			}
			body := b[unix.NLMSG_HDRLEN:l]
			b = b[min(nlmAlign(l), len(b)):]
			if seq != c.seq {
				continue
			}
			switch t {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if len(body) >= 4 {
					if e := int32(binary.NativeEndian.Uint32(body)); e != 0 {
						return fmt.Errorf("lab: netlink: %w", unix.Errno(-e))
					}
				}
				return nil
			default:
				f(body)
			}
		}
	}
}

func nlmAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }
func rtaAlign(n int) int { return (n + 3) &^ 3 }

// attrs calls f for each rtattr in b.
func attrs(b []byte, f func(typ uint16, val []byte)) {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:]))
		t := binary.NativeEndian.Uint16(b[2:]) &^ (unix.NLA_F_NESTED | unix.NLA_F_NET_BYTEORDER)
		if l < 4 || l > len(b) {
			return
		}
		f(t, b[4:l])
		b = b[min(rtaAlign(l), len(b)):]
	}
}

// qdiscCounters are a tbf qdisc's cumulative counters.
type qdiscCounters struct {
	Bytes   uint64 // wire bytes sent, Ethernet headers included
	Packets uint64 // segments sent (a GSO packet counts each segment)
	Backlog uint32 // bytes queued
	Drops   uint32
}

// Constants of linux/rtnetlink.h and linux/gen_stats.h that x/sys lacks.
const (
	sizeofTcmsg    = 20
	tcaStatsBasic  = 1
	tcaStatsQueue  = 3
	tcHRoot        = 0xFFFFFFFF
	tcaStatsBasicN = 12 // u64 bytes, u32 packets
	tcaStatsQueueN = 20 // u32 qlen, backlog, drops, requeues, overlimits
)

// tbfCounters returns the counters of the root tbf qdisc in the namespace
// (the host's uplink shaper on eth0).
func (c *netlinkConn) tbfCounters() (qdiscCounters, error) {
	var out qdiscCounters
	found := false
	err := c.dump(unix.RTM_GETQDISC, make([]byte, sizeofTcmsg), func(m []byte) {
		if len(m) < sizeofTcmsg || binary.NativeEndian.Uint32(m[12:]) != tcHRoot {
			return
		}
		var kind string
		var qc qdiscCounters
		attrs(m[sizeofTcmsg:], func(t uint16, v []byte) {
			switch t {
			case unix.TCA_KIND:
				kind = cString(v)
			case unix.TCA_STATS2:
				attrs(v, func(t uint16, v []byte) {
					switch {
					case t == tcaStatsBasic && len(v) >= tcaStatsBasicN:
						qc.Bytes = binary.NativeEndian.Uint64(v[0:])
						qc.Packets = uint64(binary.NativeEndian.Uint32(v[8:]))
					case t == tcaStatsQueue && len(v) >= tcaStatsQueueN:
						qc.Backlog = binary.NativeEndian.Uint32(v[4:])
						qc.Drops = binary.NativeEndian.Uint32(v[8:])
					}
				})
			}
		})
		if kind == "tbf" {
			out, found = qc, true
		}
	})
	if err == nil && !found {
		err = errors.New("lab: no root tbf qdisc")
	}
	return out, err
}

func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// Constants of linux/inet_diag.h.
const (
	sizeofInetDiagReqV2 = 56
	sizeofInetDiagMsg   = 72
	inetDiagInfo        = 2
	tcpEstablished      = 1
	tcpCloseWait        = 8
)

// tcpNotsent returns the bytes applications have written to established TCP
// sockets in the namespace that TCP has not yet sent (tcpi_notsent_bytes).
func (c *netlinkConn) tcpNotsent() (int64, error) {
	var total int64
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		req := make([]byte, sizeofInetDiagReqV2)
		req[0] = fam
		req[1] = unix.IPPROTO_TCP
		req[2] = 1 << (inetDiagInfo - 1)
		binary.NativeEndian.PutUint32(req[4:], 1<<tcpEstablished|1<<tcpCloseWait)
		err := c.dump(unix.SOCK_DIAG_BY_FAMILY, req, func(m []byte) {
			if len(m) < sizeofInetDiagMsg {
				return
			}
			attrs(m[sizeofInetDiagMsg:], func(t uint16, v []byte) {
				if t != inetDiagInfo {
					return
				}
				var ti unix.TCPInfo
				copy(unsafe.Slice((*byte)(unsafe.Pointer(&ti)), unsafe.Sizeof(ti)), v)
				total += int64(ti.Notsent_bytes)
			})
		})
		if err != nil {
			return 0, err
		}
	}
	return total, nil
}
