package dnsserver_test

import (
	"context"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"avalanche/internal/dnsserver"
	"avalanche/internal/traffic"
	"avalanche/internal/traffic/traffictest"
)

const zone = "cdn.example.test."

// world is a traffic manager over the synthetic world and a DNS server in
// front of it, listening on real loopback UDP and TCP ports.
type world struct {
	m    *traffic.Manager
	s    *dnsserver.Server
	addr string // host:port, same port on UDP and TCP
}

func newWorld(t testing.TB) *world {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	// A fixed clock at 15:00 UTC: nyc-1's egress costs 0.05/GB then, so the
	// multi-value answer below does not depend on when the test runs.
	at := time.Date(2026, 1, 5, 15, 0, 0, 0, time.UTC)
	m, err := traffic.New(ctx, traffic.Config{Map: traffictest.Map(), DisableProbes: true, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	if err := traffictest.Register(ctx, m, traffictest.Edges()); err != nil {
		t.Fatal(err)
	}
	for _, doc := range []string{
		`{"name":"devtools","ttl_seconds":30}`,
		`{"name":"multi","route":{"method":"multivalue","max":3,"targets":[{"region":"*"}]}}`,
		`{"name":"fallback","origin":"https://origin.example.net","route":{"method":"priority","targets":[{"edge":"sin-1"}]}}`,
		`{"name":"ipfallback","origin":"http://192.0.2.99:8080","route":{"method":"priority","targets":[{"edge":"sin-1"}]}}`,
	} {
		p, err := traffic.ParsePolicy([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if err := m.PutPolicy(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Drain(ctx, "sin-1", true, "test"); err != nil {
		t.Fatal(err)
	}
	s, err := dnsserver.New(dnsserver.Config{Router: m, Zone: zone, RateLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	w := &world{m: m, s: s}
	// Same port for UDP and TCP, as a DNS server has.
	for range 10 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			continue
		}
		w.addr = pc.LocalAddr().String()
		done := make(chan struct{}, 2)
		go func() { s.ServeUDP(ctx, pc); done <- struct{}{} }()
		go func() { s.ServeTCP(ctx, ln); done <- struct{}{} }()
		t.Cleanup(func() { cancel(); <-done; <-done })
		return w
	}
	t.Fatal("no free port for UDP and TCP")
	return nil
}

func query(name string, qtype uint16, subnet string) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	if subnet != "" {
		p := netip.MustParsePrefix(subnet)
		o := &dns.OPT{Hdr: dns.RR_Header{Name: ".", Rrtype: dns.TypeOPT}}
		o.SetUDPSize(1232)
		e := &dns.EDNS0_SUBNET{Code: dns.EDNS0SUBNET, SourceNetmask: uint8(p.Bits()), Address: p.Addr().AsSlice(), Family: 1}
		if p.Addr().Is6() {
			e.Family = 2
		}
		o.Option = append(o.Option, e)
		m.Extra = append(m.Extra, o)
	}
	return m
}

func ecsOf(m *dns.Msg) *dns.EDNS0_SUBNET {
	if o := m.IsEdns0(); o != nil {
		for _, x := range o.Option {
			if e, ok := x.(*dns.EDNS0_SUBNET); ok {
				return e
			}
		}
	}
	return nil
}

func answers(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		switch v := rr.(type) {
		case *dns.A:
			out = append(out, v.A.String())
		case *dns.AAAA:
			out = append(out, v.AAAA.String())
		case *dns.CNAME:
			out = append(out, "CNAME "+v.Target)
		case *dns.SOA:
			out = append(out, "SOA "+v.Ns)
		case *dns.NS:
			out = append(out, "NS "+v.Ns)
		}
	}
	return out
}

func TestQueries(t *testing.T) {
	w := newWorld(t)
	tests := []struct {
		name    string
		q       *dns.Msg
		net     string
		rcode   int
		want    string // comma-joined answers
		ttl     uint32
		scope   int // expected ECS scope, -1 for no ECS in the reply
		noSOA   bool
		wantTTL bool
	}{
		{"ecs dublin", query("devtools."+zone, dns.TypeA, "203.0.113.0/24"), "udp", dns.RcodeSuccess, "192.0.2.252", 30, 25, true, true},
		{"ecs new york", query("devtools."+zone, dns.TypeA, "198.51.100.0/24"), "udp", dns.RcodeSuccess, "198.51.100.251", 30, 24, true, true},
		{"ecs case-insensitive name", query("DevTools."+strings.ToUpper(zone), dns.TypeA, "198.51.100.0/24"), "udp", dns.RcodeSuccess, "198.51.100.251", 30, 24, true, true},
		{"ecs ipv6 for AAAA", query("devtools."+zone, dns.TypeAAAA, "2001:db8:64::/48"), "udp", dns.RcodeSuccess, "2001:db8:ff::252", 30, 48, true, true},
		{"ecs source 0 uses the resolver", query("devtools."+zone, dns.TypeA, "0.0.0.0/0"), "udp", dns.RcodeSuccess, "", 30, 0, true, false},
		{"tcp", query("devtools."+zone, dns.TypeA, "198.51.100.0/24"), "tcp", dns.RcodeSuccess, "198.51.100.251", 30, 24, true, true},
		{"multivalue", query("multi."+zone, dns.TypeA, "203.0.113.0/24"), "udp", dns.RcodeSuccess, "192.0.2.252,192.0.2.251,203.0.113.252", 20, 25, true, true},
		{"origin by name", query("fallback."+zone, dns.TypeA, ""), "udp", dns.RcodeSuccess, "CNAME origin.example.net.", 20, -1, true, true},
		{"origin by address", query("ipfallback."+zone, dns.TypeA, ""), "udp", dns.RcodeSuccess, "192.0.2.99", 20, -1, true, true},
		{"nodata for TXT", query("devtools."+zone, dns.TypeTXT, ""), "udp", dns.RcodeSuccess, "", 0, -1, false, false},
		{"unknown property", query("nothere."+zone, dns.TypeA, ""), "udp", dns.RcodeNameError, "", 0, -1, false, false},
		{"invalid property label", query("x_y."+zone, dns.TypeA, ""), "udp", dns.RcodeNameError, "", 0, -1, false, false},
		{"too deep", query("a.devtools."+zone, dns.TypeA, ""), "udp", dns.RcodeNameError, "", 0, -1, false, false},
		{"outside the zone", query("example.com.", dns.TypeA, ""), "udp", dns.RcodeRefused, "", 0, -1, true, false},
		{"apex SOA", query(zone, dns.TypeSOA, ""), "udp", dns.RcodeSuccess, "SOA ns1." + zone, 20, -1, true, false},
		{"apex NS", query(zone, dns.TypeNS, ""), "tcp", dns.RcodeSuccess, "NS ns1." + zone, 3600, -1, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := &dns.Client{Net: tc.net, Timeout: 2 * time.Second}
			r, _, err := c.Exchange(tc.q, w.addr)
			if err != nil {
				t.Fatal(err)
			}
			if r.Rcode != tc.rcode {
				t.Fatalf("rcode = %s, want %s", dns.RcodeToString[r.Rcode], dns.RcodeToString[tc.rcode])
			}
			got := strings.Join(answers(r), ",")
			if tc.want != "" && got != tc.want {
				t.Errorf("answers = %q, want %q", got, tc.want)
			}
			if tc.rcode != dns.RcodeRefused && !r.Authoritative {
				t.Error("AA not set")
			}
			if r.RecursionAvailable {
				t.Error("RA set by an authoritative-only server")
			}
			if tc.wantTTL && (len(r.Answer) == 0 || r.Answer[0].Header().Ttl != tc.ttl) {
				t.Errorf("TTL = %v, want %d", r.Answer, tc.ttl)
			}
			if !tc.noSOA && (len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA) {
				t.Errorf("negative answer without SOA: %v", r.Ns)
			}
			e := ecsOf(r)
			switch {
			case tc.scope < 0 && e != nil:
				t.Errorf("unexpected ECS in reply: %v", e)
			case tc.scope >= 0 && (e == nil || int(e.SourceScope) != tc.scope):
				t.Errorf("ECS in reply = %v, want scope %d", e, tc.scope)
			}
		})
	}
}

func TestMalformed(t *testing.T) {
	w := newWorld(t)
	conn, err := net.Dial("udp", w.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ask := func(pkt []byte) *dns.Msg {
		t.Helper()
		conn.Write(pkt)
		conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		buf := make([]byte, 2048)
		n, err := conn.Read(buf)
		if err != nil {
			return nil
		}
		m := new(dns.Msg)
		if err := m.Unpack(buf[:n]); err != nil {
			t.Fatalf("reply does not parse: %v", err)
		}
		return m
	}
	garbage := []byte{0xbe, 0xef, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff}
	if r := ask(garbage); r == nil || r.Id != 0xbeef || r.Rcode != dns.RcodeFormatError {
		t.Errorf("garbage: reply %v, want FORMERR with id 0xbeef", r)
	}
	if r := ask([]byte{1, 2, 3}); r != nil {
		t.Errorf("3-byte packet answered: %v", r)
	}
	resp := query("devtools."+zone, dns.TypeA, "")
	resp.Response = true
	b, _ := resp.Pack()
	if r := ask(b); r != nil {
		t.Errorf("a response was answered: %v", r)
	}
	two := query("devtools."+zone, dns.TypeA, "")
	two.Question = append(two.Question, two.Question[0])
	b, _ = two.Pack()
	if r := ask(b); r == nil || r.Rcode != dns.RcodeFormatError {
		t.Errorf("two questions: %v, want FORMERR", r)
	}
	upd := query(zone, dns.TypeSOA, "")
	upd.Opcode = dns.OpcodeUpdate
	b, _ = upd.Pack()
	if r := ask(b); r == nil || r.Rcode != dns.RcodeNotImplemented {
		t.Errorf("update: %v, want NOTIMP", r)
	}
	v1 := query("devtools."+zone, dns.TypeA, "203.0.113.0/24")
	v1.IsEdns0().SetVersion(1)
	b, _ = v1.Pack()
	if r := ask(b); r == nil || r.Rcode != dns.RcodeBadVers {
		t.Errorf("EDNS version 1: %v, want BADVERS", r)
	}
	bad := query("devtools."+zone, dns.TypeA, "203.0.113.0/24")
	ecsOf(bad).SourceScope = 8 // must be 0 in queries
	b, _ = bad.Pack()
	if r := ask(b); r == nil || r.Rcode != dns.RcodeFormatError {
		t.Errorf("ECS with a scope: %v, want FORMERR", r)
	}
	// The server still answers after all that.
	b, _ = query("devtools."+zone, dns.TypeA, "").Pack()
	if r := ask(b); r == nil || r.Rcode != dns.RcodeSuccess {
		t.Errorf("after malformed input: %v", r)
	}
}

func TestDig(t *testing.T) {
	if _, err := exec.LookPath("dig"); err != nil {
		t.Skip("dig not found; run scripts/install-test-deps.sh (Debian package dnsutils)")
	}
	w := newWorld(t)
	host, port, _ := net.SplitHostPort(w.addr)
	dig := func(args ...string) string {
		t.Helper()
		all := append([]string{"@" + host, "-p", port, "+time=2", "+tries=1"}, args...)
		out, err := exec.Command("dig", all...).CombinedOutput()
		if err != nil {
			t.Fatalf("dig %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if got := strings.TrimSpace(dig("+short", "devtools."+zone, "A", "+subnet=203.0.113.0/24")); got != "192.0.2.252" {
		t.Errorf("dig +short with Dublin subnet = %q, want 192.0.2.252", got)
	}
	if got := strings.TrimSpace(dig("+short", "devtools."+zone, "A", "+subnet=198.51.100.0/24")); got != "198.51.100.251" {
		t.Errorf("dig +short with New York subnet = %q, want 198.51.100.251", got)
	}
	full := dig("devtools."+zone, "A", "+subnet=198.51.100.0/24")
	for _, want := range []string{"status: NOERROR", "flags: qr aa", "CLIENT-SUBNET: 198.51.100.0/24/24", "30\tIN\tA\t198.51.100.251"} {
		if !strings.Contains(full, want) {
			t.Errorf("dig output lacks %q:\n%s", want, full)
		}
	}
	if out := dig("nothere."+zone, "A"); !strings.Contains(out, "status: NXDOMAIN") {
		t.Errorf("dig of an unknown property:\n%s", out)
	}
	if out := dig("+tcp", "multi."+zone, "A", "+subnet=203.0.113.0/24"); strings.Count(out, "\tIN\tA\t") != 3 {
		t.Errorf("dig +tcp multivalue:\n%s", out)
	}
	if out := dig("example.org", "A"); !strings.Contains(out, "status: REFUSED") {
		t.Errorf("dig outside the zone:\n%s", out)
	}
}

func TestRateLimit(t *testing.T) {
	m, err := traffic.New(context.Background(), traffic.Config{DisableProbes: true})
	if err != nil {
		t.Fatal(err)
	}
	s, err := dnsserver.New(dnsserver.Config{Router: m, RateLimit: 5})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := query("x.avalanche.test.", dns.TypeA, "").Pack()
	src := netip.MustParseAddrPort("198.51.100.1:5353")
	dropped, refused := 0, 0
	for range 30 {
		if s.Respond(context.Background(), b, src, true) == nil {
			dropped++
		}
		r := new(dns.Msg)
		if out := s.Respond(context.Background(), b, src, false); out != nil && r.Unpack(out) == nil && r.Rcode == dns.RcodeRefused {
			refused++
		}
	}
	if dropped == 0 || refused == 0 {
		t.Errorf("over the limit: %d UDP dropped, %d TCP refused; want some of each", dropped, refused)
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := dnsserver.New(dnsserver.Config{}); err == nil {
		t.Error("New without a router succeeded")
	}
	m, _ := traffic.New(context.Background(), traffic.Config{DisableProbes: true})
	for _, z := range []string{".", "a..b", strings.Repeat("x", 300)} {
		if _, err := dnsserver.New(dnsserver.Config{Router: m, Zone: z}); err == nil {
			t.Errorf("New with zone %q succeeded", z)
		}
	}
}

// FuzzRespond feeds arbitrary packets to the handler: it must never
// panic, and whatever it answers must parse, carry the query's ID and be
// one of the response codes the server uses.
func FuzzRespond(f *testing.F) {
	for _, q := range []*dns.Msg{
		query("devtools."+zone, dns.TypeA, "203.0.113.0/24"),
		query("devtools."+zone, dns.TypeAAAA, "2001:db8:64::/48"),
		query("multi."+zone, dns.TypeA, ""),
		query(zone, dns.TypeSOA, ""),
		query("example.com.", dns.TypeA, ""),
	} {
		b, _ := q.Pack()
		f.Add(b)
	}
	f.Add([]byte{0xbe, 0xef, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff})
	f.Add([]byte{})
	w := newWorld(f)
	src := netip.MustParseAddrPort("127.0.0.1:5353")
	allowed := map[int]bool{dns.RcodeSuccess: true, dns.RcodeFormatError: true, dns.RcodeServerFailure: true,
		dns.RcodeNameError: true, dns.RcodeNotImplemented: true, dns.RcodeRefused: true, dns.RcodeBadVers: true}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		for _, udp := range []bool{true, false} {
			out := w.s.Respond(context.Background(), pkt, src, udp)
			if out == nil {
				continue
			}
			if udp && len(out) > 1232 {
				t.Fatalf("UDP reply of %d bytes", len(out))
			}
			r := new(dns.Msg)
			if err := r.Unpack(out); err != nil {
				t.Fatalf("reply does not parse: %v", err)
			}
			if len(pkt) >= 2 && r.Id != uint16(pkt[0])<<8|uint16(pkt[1]) {
				t.Fatalf("reply id %d, query id %d", r.Id, uint16(pkt[0])<<8|uint16(pkt[1]))
			}
			if !r.Response || !allowed[r.Rcode] {
				t.Fatalf("reply rcode %d (response %v)", r.Rcode, r.Response)
			}
		}
	})
}

// BenchmarkRespond measures one ECS query answered from wire bytes to wire
// bytes (no sockets).
func BenchmarkRespond(b *testing.B) {
	w := newWorld(b)
	pkt, _ := query("devtools."+zone, dns.TypeA, "198.51.100.0/24").Pack()
	src := netip.MustParseAddrPort("127.0.0.1:5353")
	ctx := context.Background()
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for range b.N {
		if w.s.Respond(ctx, pkt, src, true) == nil {
			b.Fatal("no reply")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "queries/s")
}
