package swarm

import (
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"avalanche/internal/identity"
	"avalanche/internal/manifest"
	"avalanche/internal/wire"
)

// NodeConfig configures a Node. The zero value, plus a Key, works.
type NodeConfig struct {
	// Key is the node's identity; required.
	Key ed25519.PrivateKey
	// Role is what this node is in every swarm it joins: a peer by default.
	Role wire.Role
	// AdvertisePort is the port announced to peers; default: the port of
	// the listener passed to Serve, or 0 (not reachable).
	AdvertisePort uint16
	// UploadLimit and DownloadLimit cap payload throughput in bytes per
	// second across all swarms; 0 means unlimited.
	UploadLimit, DownloadLimit int64
	// Allow, if non-empty, lists the only prefixes peers may connect from or
	// be dialed at; Deny lists prefixes that may never be. Deny wins.
	Allow, Deny []netip.Prefix
	// MaxConns bounds connections across all swarms; default 512.
	MaxConns int
	// HandshakeTimeout bounds TLS plus hello; default 10 s.
	HandshakeTimeout time.Duration
	// SendLowWater bounds unsent bytes queued in each socket
	// (TCP_NOTSENT_LOWAT where supported) so that control frames are not
	// stuck behind a deep queue of blocks; default 128 KiB. Negative
	// disables.
	SendLowWater int
	// QueueDelay is the most queueing delay the node's uploads may cause
	// at the first bottleneck of its uplink (see upGate). Default: 80 ms for
	// origins and edges, whose uplink is the swarm's scarcest resource (an
	// overfull queue there drops packets and stalls links for seconds, an
	// empty one is time lost for everyone). What the gate counts in flight
	// is more than the queue (bytes on the wire, acknowledgements a busy
	// receiver delays, unsent bytes in sockets): at 40 ms the swarm lab's
	// origin ran at 40–46 of its 48 Mbit/s whenever it served more than a
	// dozen links, at 80 ms at 47–48 (the lab's tbf holds 100 ms). None for
	// peers, where the gate reads the queues of slower neighbours' uplinks,
	// which delay their acknowledgements, as its own, and in the swarm lab
	// held 150 Mbit/s peers to a third of their uplink. Negative disables
	// the gate.
	QueueDelay time.Duration
	// Logger receives events; nil discards.
	Logger *slog.Logger
}

// Node is one process's presence in the peer network: an identity, an
// optional listener and the swarms it takes part in. Safe for concurrent
// use.
type Node struct {
	cfg    NodeConfig
	id     identity.ID
	log    *slog.Logger
	srvTLS *tls.Config
	ctx    context.Context
	cancel context.CancelFunc
	up     *rate.Limiter
	down   *rate.Limiter
	gate   *upGate

	mu     sync.Mutex
	swarms map[manifest.ID]*Swarm
	nconns int
	port   uint16
	wg     sync.WaitGroup
}

// NewNode returns a node. It runs until ctx is done or Close is called.
func NewNode(ctx context.Context, cfg NodeConfig) (*Node, error) {
	if len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("swarm: node key required")
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = 512
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.SendLowWater == 0 {
		cfg.SendLowWater = 128 << 10
	}
	if cfg.QueueDelay == 0 {
		cfg.QueueDelay = -1
		if cfg.Role != wire.RolePeer {
			cfg.QueueDelay = 80 * time.Millisecond
		}
	}
	srv, err := identity.ServerTLS(cfg.Key, wire.ALPN)
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:    cfg,
		id:     identity.Self(cfg.Key),
		log:    cfg.Logger,
		srvTLS: srv,
		swarms: map[manifest.ID]*Swarm{},
		port:   cfg.AdvertisePort,
	}
	if n.log == nil {
		n.log = slog.New(slog.DiscardHandler)
	}
	n.ctx, n.cancel = context.WithCancel(ctx)
	n.up = newLimiter(cfg.UploadLimit)
	n.down = newLimiter(cfg.DownloadLimit)
	n.gate = newUpGate(cfg.QueueDelay)
	return n, nil
}

func newLimiter(bps int64) *rate.Limiter {
	if bps <= 0 {
		return nil
	}
	// A burst of a few blocks keeps pacing smooth without letting a link
	// exceed its cap for long: a twentieth of a second, between 64 KiB and
	// 1 MiB (waitN takes bigger blocks in several bites).
	return rate.NewLimiter(rate.Limit(bps), int(min(max(bps/20, 64<<10), 1<<20)))
}

// waitN takes n tokens from lim (nil = unlimited), in bursts it allows.
func waitN(ctx context.Context, lim *rate.Limiter, n int) error {
	if lim == nil {
		return nil
	}
	for n > 0 {
		take := min(n, lim.Burst())
		if err := lim.WaitN(ctx, take); err != nil {
			return err
		}
		n -= take
	}
	return nil
}

// ID returns the node's identity.
func (n *Node) ID() identity.ID { return n.id }

// Role returns the node's role.
func (n *Node) Role() wire.Role { return n.cfg.Role }

// Join adds a swarm for cfg.Manifest. Joining content twice is an error.
func (n *Node) Join(cfg Config) (*Swarm, error) {
	s, err := newSwarm(n, cfg)
	if err != nil {
		return nil, err
	}
	n.mu.Lock()
	if _, ok := n.swarms[s.id]; ok {
		n.mu.Unlock()
		return nil, fmt.Errorf("swarm: already in swarm %s", s.id.Short())
	}
	n.swarms[s.id] = s
	n.mu.Unlock()
	go s.run()
	return s, nil
}

// Swarm returns the swarm for a content ID, or nil.
func (n *Node) Swarm(id manifest.ID) *Swarm {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.swarms[id]
}

func (n *Node) leave(s *Swarm) {
	n.mu.Lock()
	if n.swarms[s.id] == s {
		delete(n.swarms, s.id)
	}
	n.mu.Unlock()
}

// Close leaves every swarm and stops accepting.
func (n *Node) Close() error {
	n.mu.Lock()
	ss := make([]*Swarm, 0, len(n.swarms))
	for _, s := range n.swarms {
		ss = append(ss, s)
	}
	n.mu.Unlock()
	for _, s := range ss {
		s.Close()
	}
	n.mu.Lock()
	n.cancel()
	n.mu.Unlock()
	n.wg.Wait()
	return nil
}

// spawn runs f on a goroutine that Close waits for, unless the node is
// closing; the check and the Add share n.mu with Close's cancel, so no Add
// races the final Wait.
func (n *Node) spawn(f func()) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ctx.Err() != nil {
		return false
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
	return true
}

// Port returns the advertised peer-protocol port (0 if none).
func (n *Node) Port() uint16 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.port
}

// Serve accepts peer connections on ln until the node closes.
func (n *Node) Serve(ln net.Listener) error {
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err == nil {
		n.mu.Lock()
		if n.port == 0 {
			n.port = ap.Port()
		}
		n.mu.Unlock()
	}
	go func() {
		<-n.ctx.Done()
		ln.Close()
	}()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if n.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: back off, keep serving.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			n.log.Warn("accept failed", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if !n.spawn(func() { n.accept(c) }) {
			c.Close()
			return nil
		}
	}
}

// allowed applies the node's allow and deny lists.
func (n *Node) allowed(a netip.Addr) bool {
	a = a.Unmap()
	for _, p := range n.cfg.Deny {
		if p.Contains(a) {
			return false
		}
	}
	if len(n.cfg.Allow) == 0 {
		return true
	}
	for _, p := range n.cfg.Allow {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func (n *Node) reserveConn() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.nconns >= n.cfg.MaxConns {
		return false
	}
	n.nconns++
	return true
}

func (n *Node) releaseConn() {
	n.mu.Lock()
	n.nconns--
	n.mu.Unlock()
}

func remoteAddrPort(c net.Conn) netip.AddrPort {
	ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// accept runs the server side of a handshake and then the connection.
func (n *Node) accept(raw net.Conn) {
	addr := remoteAddrPort(raw)
	if !n.allowed(addr.Addr()) {
		n.log.Debug("refused connection: address not allowed", "addr", addr)
		raw.Close()
		return
	}
	if !n.reserveConn() {
		n.log.Debug("refused connection: connection limit", "addr", addr)
		raw.Close()
		return
	}
	defer n.releaseConn()
	raw = n.tuneSocket(raw)
	raw.SetDeadline(time.Now().Add(n.cfg.HandshakeTimeout))
	tc := tls.Server(raw, n.srvTLS)
	if err := tc.HandshakeContext(n.ctx); err != nil {
		n.log.Debug("tls handshake failed", "addr", addr, "err", err)
		raw.Close()
		return
	}
	peer, err := identity.PeerID(tc.ConnectionState())
	if err != nil || peer == n.id {
		tc.Close()
		return
	}
	body, _, err := wire.ReadFrame(tc, nil)
	if err != nil {
		if errors.Is(err, wire.ErrTooLarge) || errors.Is(err, wire.ErrMalformed) {
			n.log.Info("closing connection", "addr", addr, "peer", peer.Short(), "reason", err.Error())
			writeBye(tc, wire.ByeProtocol, err.Error())
		} else {
			n.log.Debug("no hello", "addr", addr, "err", err)
		}
		tc.Close()
		return
	}
	f, err := wire.Decode(body, nil)
	hello, ok := f.(wire.Hello)
	if err != nil || !ok || hello.Version != wire.Version {
		reason := "expected hello"
		if err != nil {
			reason = err.Error()
		} else if ok {
			reason = fmt.Sprintf("unsupported version %d", hello.Version)
		}
		n.log.Info("closing connection", "addr", addr, "peer", peer.Short(), "reason", reason)
		writeBye(tc, wire.ByeProtocol, reason)
		tc.Close()
		return
	}
	s := n.Swarm(hello.Content)
	if s == nil {
		writeBye(tc, wire.ByeUnknown, "unknown content")
		tc.Close()
		return
	}
	c, err := s.admit(tc, peer, addr, hello, false)
	if err != nil {
		code := wire.ByeBusy
		if errors.Is(err, errBanned) {
			code = wire.ByeBanned
		}
		writeBye(tc, code, err.Error())
		tc.Close()
		return
	}
	tc.SetDeadline(time.Time{})
	c.run()
}

// dial connects to p for swarm s.
func (n *Node) dial(ctx context.Context, s *Swarm, p PeerAddr) error {
	ap, err := netip.ParseAddrPort(p.Addr)
	if err == nil && !n.allowed(ap.Addr()) {
		return errors.New("address not allowed")
	}
	if !n.reserveConn() {
		return errors.New("connection limit")
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.HandshakeTimeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", p.Addr)
	if err != nil {
		n.releaseConn()
		return err
	}
	raw = n.tuneSocket(raw)
	cfg, err := identity.ClientTLS(n.cfg.Key, p.ID, wire.ALPN)
	if err != nil {
		n.releaseConn()
		raw.Close()
		return err
	}
	tc := tls.Client(raw, cfg)
	if dl, ok := ctx.Deadline(); ok {
		raw.SetDeadline(dl)
	}
	fail := func(err error) error {
		tc.Close()
		n.releaseConn()
		return err
	}
	if err := tc.HandshakeContext(ctx); err != nil {
		return fail(err)
	}
	peer, err := identity.PeerID(tc.ConnectionState())
	if err != nil {
		return fail(err)
	}
	if _, err := tc.Write(wire.Append(nil, s.hello())); err != nil {
		return fail(err)
	}
	body, _, err := wire.ReadFrame(tc, nil)
	if err != nil {
		return fail(err)
	}
	f, err := wire.Decode(body, nil)
	if err != nil {
		return fail(err)
	}
	switch f := f.(type) {
	case wire.Bye:
		return fail(fmt.Errorf("refused: %s", f.Reason))
	case wire.Hello:
		if f.Content != s.id || f.Version != wire.Version {
			return fail(errors.New("hello for other content or version"))
		}
		c, err := s.admit(tc, peer, remoteAddrPort(raw), f, true)
		if err != nil {
			writeBye(tc, wire.ByeBusy, err.Error())
			return fail(err)
		}
		raw.SetDeadline(time.Time{})
		if !n.spawn(func() {
			defer n.releaseConn()
			c.run()
		}) {
			c.close(wire.ByeNormal, "")
			c.nc.Close()
			n.releaseConn()
		}
		return nil
	}
	return fail(errors.New("expected hello"))
}

func writeBye(w io.Writer, code wire.ByeCode, reason string) {
	if len(reason) > wire.MaxReason {
		reason = reason[:wire.MaxReason]
	}
	w.Write(wire.Append(nil, wire.Bye{Code: code, Reason: reason}))
}
