// Package dnsserver is the traffic manager's authoritative DNS server: it
// answers A and AAAA queries for <property>.<zone> with the edges the
// traffic manager picks for the client, honouring EDNS Client Subnet
// (RFC 7871) so that the answer is made for the user's network rather than
// the resolver's, with short TTLs so that failover is quick.
//
// Everything outside the zone is REFUSED (it is not a resolver), malformed
// queries get FORMERR, unknown properties NXDOMAIN, and a resolver prefix
// over its rate limit is dropped on UDP and refused on TCP.
package dnsserver

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"avalanche/internal/prefixlimit"
	"avalanche/internal/traffic"
)

// Router makes routing decisions; *traffic.Manager is one.
type Router interface {
	Route(ctx context.Context, q traffic.Query) (traffic.Decision, error)
}

// Config configures a Server. Router is required; every other field has a
// working default.
type Config struct {
	// Router picks the edges.
	Router Router
	// Zone is the zone served, e.g. "cdn.example.net". Default
	// "avalanche.test".
	Zone string
	// NS are the zone's name servers, as returned for NS queries at the
	// apex. Default "ns1.<zone>".
	NS []string
	// Hostmaster is the SOA mailbox. Default "hostmaster.<zone>".
	Hostmaster string
	// NegativeTTL is the SOA minimum (how long NXDOMAIN and NODATA are
	// cached). Default 20s.
	NegativeTTL time.Duration
	// RateLimit is the steady query rate allowed per resolver prefix (/24,
	// /48), per second. Default 2000; negative disables.
	RateLimit float64
	// UDPWorkers is how many queries are served at once on UDP. Default 64.
	UDPWorkers int
	// MaxTCPConns bounds concurrent TCP connections. Default 256.
	MaxTCPConns int
	// TCPIdle closes a TCP connection idle that long. Default 10s.
	TCPIdle time.Duration
	// Logger receives events. Default: discard.
	Logger *slog.Logger
	// Metrics, if set, receives the server's Prometheus collectors.
	Metrics prometheus.Registerer
}

// Server answers DNS queries. It is safe for concurrent use.
type Server struct {
	cfg     Config
	zone    string // canonical, lower case, with the trailing dot
	soa     *dns.SOA
	ns      []dns.RR
	limiter *prefixlimit.Limiter
	log     *slog.Logger
	queries *prometheus.CounterVec
}

// ErrNoRouter is returned by New without a Router.
var ErrNoRouter = errors.New("dnsserver: no router configured")

const (
	maxUDPAnswer = 1232 // the DNS flag day 2020 EDNS buffer size
	maxTCPQuery  = 4096
)

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Router == nil {
		return nil, ErrNoRouter
	}
	if cfg.Zone == "" {
		cfg.Zone = "avalanche.test"
	}
	zone := dns.CanonicalName(cfg.Zone)
	if _, ok := dns.IsDomainName(zone); !ok || zone == "." {
		return nil, fmt.Errorf("dnsserver: bad zone %q", cfg.Zone)
	}
	if len(cfg.NS) == 0 {
		cfg.NS = []string{"ns1." + zone}
	}
	if cfg.Hostmaster == "" {
		cfg.Hostmaster = "hostmaster." + zone
	}
	if cfg.NegativeTTL <= 0 {
		cfg.NegativeTTL = 20 * time.Second
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = 2000
	}
	if cfg.UDPWorkers <= 0 {
		cfg.UDPWorkers = 64
	}
	if cfg.MaxTCPConns <= 0 {
		cfg.MaxTCPConns = 256
	}
	if cfg.TCPIdle <= 0 {
		cfg.TCPIdle = 10 * time.Second
	}
	s := &Server{cfg: cfg, zone: zone, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	neg := uint32(cfg.NegativeTTL / time.Second)
	s.soa = &dns.SOA{
		Hdr:     dns.RR_Header{Name: zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: neg},
		Ns:      dns.CanonicalName(cfg.NS[0]),
		Mbox:    dns.CanonicalName(cfg.Hostmaster),
		Serial:  1,
		Refresh: 3600, Retry: 600, Expire: 86400, Minttl: neg,
	}
	for _, n := range cfg.NS {
		if _, ok := dns.IsDomainName(n); !ok {
			return nil, fmt.Errorf("dnsserver: bad name server %q", n)
		}
		s.ns = append(s.ns, &dns.NS{Hdr: dns.RR_Header{Name: zone, Rrtype: dns.TypeNS, Class: dns.ClassINET, Ttl: 3600}, Ns: dns.CanonicalName(n)})
	}
	if cfg.RateLimit > 0 {
		s.limiter = prefixlimit.New(cfg.RateLimit, 2*cfg.RateLimit, 1<<16)
	}
	s.queries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "avalanche_dns_queries_total",
		Help: "DNS queries answered, by response code (or dropped).",
	}, []string{"rcode"})
	if cfg.Metrics != nil {
		cfg.Metrics.MustRegister(s.queries)
	}
	return s, nil
}

// Zone returns the zone served, canonical with a trailing dot.
func (s *Server) Zone() string { return s.zone }

// Respond answers one DNS message received from src over UDP (udp true) or
// TCP, and returns the wire-format reply, or nil when the message must be
// dropped (too short to answer, itself a response, or over the rate limit
// on UDP). It never panics on any input.
func (s *Server) Respond(ctx context.Context, pkt []byte, src netip.AddrPort, udp bool) []byte {
	if len(pkt) < 12 || pkt[2]&0x80 != 0 { // no header, or QR set: never answer a response
		s.count("dropped")
		return nil
	}
	if s.limiter != nil && !s.limiter.Allow(src.Addr(), time.Now()) {
		if udp {
			s.count("dropped")
			return nil
		}
		return s.errorReply(pkt, dns.RcodeRefused)
	}
	req := new(dns.Msg)
	if err := req.Unpack(pkt); err != nil {
		return s.errorReply(pkt, dns.RcodeFormatError)
	}
	resp := s.answer(ctx, req, src.Addr())
	size := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		size = min(max(int(opt.UDPSize()), dns.MinMsgSize), maxUDPAnswer)
	}
	if udp {
		resp.Truncate(size)
	}
	out, err := resp.Pack()
	if err != nil {
		return s.errorReply(pkt, dns.RcodeServerFailure)
	}
	s.count(dns.RcodeToString[resp.Rcode])
	return out
}

func (s *Server) count(rcode string) {
	if rcode == "" {
		rcode = "other"
	}
	s.queries.WithLabelValues(rcode).Inc()
}

// errorReply answers a message that could not be (fully) parsed: the
// header's ID and opcode with the given rcode and nothing else.
func (s *Server) errorReply(pkt []byte, rcode int) []byte {
	m := new(dns.Msg)
	m.Id = binary.BigEndian.Uint16(pkt[0:2])
	m.Response = true
	m.Opcode = int(pkt[2]>>3) & 0xF
	m.RecursionDesired = pkt[2]&1 != 0
	m.Rcode = rcode
	out, err := m.Pack()
	if err != nil {
		return nil
	}
	s.count(dns.RcodeToString[rcode])
	return out
}

// answer builds the reply to a parsed query.
func (s *Server) answer(ctx context.Context, req *dns.Msg, resolver netip.Addr) *dns.Msg {
	resp := new(dns.Msg)
	resp.SetReply(req)
	resp.Authoritative = false
	resp.RecursionAvailable = false
	resp.Compress = true
	if req.Opcode != dns.OpcodeQuery {
		resp.Question = nil
		resp.Rcode = dns.RcodeNotImplemented
		return resp
	}
	if len(req.Question) != 1 {
		resp.Rcode = dns.RcodeFormatError
		return resp
	}
	// EDNS: answer with our own OPT; unknown versions get BADVERS.
	reqOpt := req.IsEdns0()
	var ecs *dns.EDNS0_SUBNET
	if reqOpt != nil {
		respOpt := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		respOpt.SetUDPSize(maxUDPAnswer)
		resp.Extra = append(resp.Extra, respOpt)
		if reqOpt.Version() != 0 {
			respOpt.SetExtendedRcode(dns.RcodeBadVers)
			resp.Rcode = dns.RcodeBadVers
			return resp
		}
		for _, o := range reqOpt.Option {
			if sub, ok := o.(*dns.EDNS0_SUBNET); ok {
				if ecs != nil || !validECS(sub) {
					resp.Rcode = dns.RcodeFormatError
					return resp
				}
				ecs = &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, Family: sub.Family, SourceNetmask: sub.SourceNetmask, Address: sub.Address}
				respOpt.Option = append(respOpt.Option, ecs)
			}
		}
	}
	q := req.Question[0]
	name := strings.ToLower(q.Name)
	if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY {
		resp.Rcode = dns.RcodeRefused
		return resp
	}
	if !dns.IsSubDomain(s.zone, name) {
		resp.Rcode = dns.RcodeRefused
		return resp
	}
	resp.Authoritative = true
	if name == s.zone {
		switch q.Qtype {
		case dns.TypeSOA:
			resp.Answer = append(resp.Answer, s.soa)
		case dns.TypeNS:
			resp.Answer = append(resp.Answer, s.ns...)
		default:
			resp.Ns = append(resp.Ns, s.soa)
		}
		return resp
	}
	label := strings.TrimSuffix(name, "."+s.zone)
	if strings.Contains(label, ".") || !traffic.ValidProperty(label) {
		resp.Rcode = dns.RcodeNameError
		resp.Ns = append(resp.Ns, s.soa)
		return resp
	}
	client := resolver
	if ecs != nil && ecs.SourceNetmask > 0 {
		a, _ := netip.AddrFromSlice(ecs.Address)
		client = a.Unmap()
	}
	d, err := s.cfg.Router.Route(ctx, traffic.Query{Property: label, Client: client, Max: 8})
	switch {
	case errors.Is(err, traffic.ErrUnknownProperty):
		resp.Rcode = dns.RcodeNameError
		resp.Ns = append(resp.Ns, s.soa)
		return resp
	case err != nil:
		s.log.Warn("dnsserver: routing failed", "property", label, "err", err)
		resp.Rcode = dns.RcodeServerFailure
		return resp
	}
	if ecs != nil {
		// The answer holds for the client's network as far as the decision
		// looked at it; with ECS source 0 it holds for everyone.
		if ecs.SourceNetmask > 0 {
			ecs.SourceScope = uint8(min(d.ScopeBits, maxBits(ecs.Family)))
		}
	}
	ttl := uint32(d.TTLSeconds)
	hdr := func(t uint16) dns.RR_Header {
		return dns.RR_Header{Name: q.Name, Rrtype: t, Class: dns.ClassINET, Ttl: ttl}
	}
	wantV4 := q.Qtype == dns.TypeA || q.Qtype == dns.TypeANY
	wantV6 := q.Qtype == dns.TypeAAAA
	if d.Origin != "" {
		host := originHost(d.Origin)
		if a, err := netip.ParseAddr(host); err == nil {
			if a.Is4() && wantV4 {
				resp.Answer = append(resp.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: a.AsSlice()})
			} else if a.Is6() && wantV6 {
				resp.Answer = append(resp.Answer, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: a.AsSlice()})
			}
		} else if host != "" {
			resp.Answer = append(resp.Answer, &dns.CNAME{Hdr: hdr(dns.TypeCNAME), Target: dns.Fqdn(host)})
		}
	} else {
		n := 0
		for _, e := range d.Edges {
			added := false
			for _, a := range e.Addrs {
				switch {
				case a.Is4() && wantV4:
					resp.Answer = append(resp.Answer, &dns.A{Hdr: hdr(dns.TypeA), A: a.AsSlice()})
					added = true
				case a.Is6() && !a.Is4In6() && wantV6:
					resp.Answer = append(resp.Answer, &dns.AAAA{Hdr: hdr(dns.TypeAAAA), AAAA: a.AsSlice()})
					added = true
				}
			}
			if added {
				if n++; n >= max(d.Want, 1) {
					break
				}
			}
		}
	}
	if len(resp.Answer) == 0 {
		resp.Ns = append(resp.Ns, s.soa) // NODATA
	}
	return resp
}

func maxBits(family uint16) int {
	if family == 1 {
		return 32
	}
	return 128
}

// validECS checks an EDNS Client Subnet option as RFC 7871 §7.1.1 asks:
// a known family, a source prefix within the address length, and scope 0
// in queries.
func validECS(o *dns.EDNS0_SUBNET) bool {
	switch o.Family {
	case 1:
		return o.SourceNetmask <= 32 && o.SourceScope == 0 && (o.Address == nil || o.Address.To4() != nil)
	case 2:
		return o.SourceNetmask <= 128 && o.SourceScope == 0
	}
	return false
}

func originHost(origin string) string {
	u, err := url.Parse(origin)
	if err != nil {
		return ""
	}
	return u.Hostname()
}

// ServeUDP answers queries arriving on pc until ctx is done, then returns
// nil. The caller owns pc; ServeUDP closes it when ctx ends so that
// blocked reads return.
func (s *Server) ServeUDP(ctx context.Context, pc net.PacketConn) error {
	stop := context.AfterFunc(ctx, func() { pc.Close() })
	defer stop()
	var wg sync.WaitGroup
	errc := make(chan error, s.cfg.UDPWorkers)
	for range s.cfg.UDPWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 65535)
			for {
				n, addr, err := pc.ReadFrom(buf)
				if err != nil {
					if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
						errc <- nil
						return
					}
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						continue
					}
					errc <- err
					return
				}
				src := addrPort(addr)
				if out := s.Respond(ctx, buf[:n], src, true); out != nil {
					pc.WriteTo(out, addr)
				}
			}
		}()
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("dnsserver: udp: %w", err)
		}
	}
	return nil
}

func addrPort(a net.Addr) netip.AddrPort {
	switch v := a.(type) {
	case *net.UDPAddr:
		return v.AddrPort()
	case *net.TCPAddr:
		return v.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// ServeTCP answers queries on connections accepted from ln until ctx is
// done, then closes ln and every connection and returns nil.
func (s *Server) ServeTCP(ctx context.Context, ln net.Listener) error {
	stop := context.AfterFunc(ctx, func() { ln.Close() })
	defer stop()
	sem := make(chan struct{}, s.cfg.MaxTCPConns)
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return fmt.Errorf("dnsserver: tcp: %w", err)
		}
		select {
		case sem <- struct{}{}:
		default:
			c.Close() // over the connection limit
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { c.Close(); <-sem; wg.Done() }()
			stopConn := context.AfterFunc(ctx, func() { c.Close() })
			defer stopConn()
			s.serveConn(ctx, c)
		}()
	}
}

func (s *Server) serveConn(ctx context.Context, c net.Conn) {
	src := addrPort(c.RemoteAddr())
	var lenBuf [2]byte
	buf := make([]byte, maxTCPQuery)
	for range 100 { // queries per connection
		c.SetDeadline(time.Now().Add(s.cfg.TCPIdle))
		if _, err := io.ReadFull(c, lenBuf[:]); err != nil {
			return
		}
		n := int(binary.BigEndian.Uint16(lenBuf[:]))
		if n < 12 || n > maxTCPQuery {
			return
		}
		if _, err := io.ReadFull(c, buf[:n]); err != nil {
			return
		}
		out := s.Respond(ctx, buf[:n], src, false)
		if out == nil {
			return
		}
		msg := make([]byte, 2+len(out))
		binary.BigEndian.PutUint16(msg, uint16(len(out)))
		copy(msg[2:], out)
		if _, err := c.Write(msg); err != nil {
			return
		}
	}
}
