package edge

import (
	"container/list"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// keyedLimiter holds a token bucket per key in a bounded LRU table, so a
// flood of spoofed or distinct sources cannot exhaust memory: when full,
// the least recently seen key is forgotten.
type keyedLimiter struct {
	mu    sync.Mutex
	r     rate.Limit
	burst int
	max   int
	m     map[string]*list.Element
	lru   *list.List
}

type limEntry struct {
	key string
	lim *rate.Limiter
}

func newKeyedLimiter(r float64, burst, max int) *keyedLimiter {
	return &keyedLimiter{r: rate.Limit(r), burst: burst, max: max, m: map[string]*list.Element{}, lru: list.New()}
}

// allow takes one token from key's bucket.
func (k *keyedLimiter) allow(key string, now time.Time) bool {
	k.mu.Lock()
	e := k.m[key]
	if e == nil {
		if k.lru.Len() >= k.max {
			old := k.lru.Back()
			k.lru.Remove(old)
			delete(k.m, old.Value.(*limEntry).key)
		}
		e = k.lru.PushFront(&limEntry{key: key, lim: rate.NewLimiter(k.r, k.burst)})
		k.m[key] = e
	} else {
		k.lru.MoveToFront(e)
	}
	lim := e.Value.(*limEntry).lim
	k.mu.Unlock()
	return lim.AllowN(now, 1)
}

// clientPrefix returns the client's address and its aggregation prefix
// (/24 for IPv4, /64 for IPv6).
func clientPrefix(remoteAddr string) (addr string, prefix string) {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host, host
	}
	ip = ip.Unmap()
	bits := 64
	if ip.Is4() {
		bits = 24
	}
	p, _ := ip.Prefix(bits)
	return ip.String(), p.String()
}

// connLimiter wraps a listener: at most max connections at once, and at
// most perIP from one address; excess connections are closed at accept.
type connLimiter struct {
	net.Listener
	sem   chan struct{}
	perIP int
	mu    sync.Mutex
	byIP  map[string]int
	onRej func()
}

func limitListener(l net.Listener, max, perIP int, onReject func()) net.Listener {
	return &connLimiter{Listener: l, sem: make(chan struct{}, max), perIP: perIP, byIP: map[string]int{}, onRej: onReject}
}

func (l *connLimiter) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip, _ := clientPrefix(c.RemoteAddr().String())
		select {
		case l.sem <- struct{}{}:
		default:
			c.Close()
			l.reject()
			continue
		}
		l.mu.Lock()
		if l.byIP[ip] >= l.perIP {
			l.mu.Unlock()
			<-l.sem
			c.Close()
			l.reject()
			continue
		}
		l.byIP[ip]++
		l.mu.Unlock()
		return &limitedConn{Conn: c, l: l, ip: ip}, nil
	}
}

func (l *connLimiter) reject() {
	if l.onRej != nil {
		l.onRej()
	}
}

type limitedConn struct {
	net.Conn
	l    *connLimiter
	ip   string
	once sync.Once
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		c.l.mu.Lock()
		if c.l.byIP[c.ip]--; c.l.byIP[c.ip] <= 0 {
			delete(c.l.byIP, c.ip)
		}
		c.l.mu.Unlock()
		<-c.l.sem
	})
	return err
}

// ReadFrom lets net/http hand file bodies to sendfile through the wrapper.
func (c *limitedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// CloseWrite half-closes TCP connections, which net/http uses to end a
// response cleanly before closing.
func (c *limitedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}
