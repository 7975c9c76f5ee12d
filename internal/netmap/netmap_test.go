package netmap

import (
	"errors"
	"math"
	"net/netip"
	"strings"
	"testing"
)

const sampleCSV = `prefix,isp,asn,region,country,lat,lon
# two ISPs in two regions
203.0.113.0/24, ExampleNet, AS64500, eu-west, IE, 53.35, -6.26
203.0.113.128/25, ExampleNet-Cork, 64501, eu-west, IE, 51.90, -8.47
198.51.100.0/24, OtherISP, 64510, us-east, US, 40.71, -74.0
2001:db8::/32, V6Net, 64520, eu-west, IE
`

func TestLookupCSV(t *testing.T) {
	m, err := Parse(strings.NewReader(sampleCSV))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr    string
		wantISP string
		wantOK  bool
	}{
		{"203.0.113.5", "ExampleNet", true},
		{"203.0.113.200", "ExampleNet-Cork", true}, // longest prefix wins
		{"198.51.100.1", "OtherISP", true},
		{"::ffff:198.51.100.1", "OtherISP", true}, // mapped v4
		{"2001:db8::1", "V6Net", true},
		{"192.0.2.1", "", false},
	}
	for _, tc := range tests {
		loc, ok := m.Lookup(netip.MustParseAddr(tc.addr))
		if ok != tc.wantOK || loc.ISP != tc.wantISP {
			t.Errorf("Lookup(%s) = %q, %v; want %q, %v", tc.addr, loc.ISP, ok, tc.wantISP, tc.wantOK)
		}
	}
	loc, _ := m.Lookup(netip.MustParseAddr("203.0.113.200"))
	if loc.ASN != 64501 || loc.Region != "eu-west" || loc.Lat != 51.90 {
		t.Errorf("Lookup = %+v", loc)
	}
}

func TestJSONMatchesCSV(t *testing.T) {
	js := `[
	 {"prefix":"203.0.113.0/24","isp":"ExampleNet","asn":64500,"region":"eu-west","country":"IE","lat":53.35,"lon":-6.26},
	 {"prefix":"198.51.100.7","isp":"Host"}
	]`
	m, err := Parse(strings.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := m.Lookup(netip.MustParseAddr("203.0.113.9")); !ok || l.ASN != 64500 {
		t.Errorf("Lookup = %+v, %v", l, ok)
	}
	if l, ok := m.Lookup(netip.MustParseAddr("198.51.100.7")); !ok || l.ISP != "Host" {
		t.Errorf("single address: %+v, %v", l, ok)
	}
	if _, ok := m.Lookup(netip.MustParseAddr("198.51.100.8")); ok {
		t.Error("neighbour of a /32 matched")
	}
}

func TestParseErrors(t *testing.T) {
	bad := []string{
		"not-a-prefix,isp",
		"10.0.0.0/8,isp,ASx",
		"10.0.0.0/8,isp,1,r,c,95,0",
		"10.0.0.0/8,isp,1,r,c,0,0,extra",
		`[{"prefix":"10.0.0.0/33"}]`,
		`[{"prefix":"10.0.0.0/8"}`,
		"10.0.0.0/8," + strings.Repeat("x", 300),
	}
	for _, in := range bad {
		if _, err := Parse(strings.NewReader(in)); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%.40q) error = %v, want ErrSyntax", in, err)
		}
	}
}

func TestDefault(t *testing.T) {
	m := Default()
	a, _ := m.Lookup(netip.MustParseAddr("127.0.0.1"))
	b, _ := m.Lookup(netip.MustParseAddr("127.0.0.2"))
	if !SameISP(a, b) || a.ISP != "loopback" {
		t.Errorf("loopback: %+v %+v", a, b)
	}
	p, _ := m.Lookup(netip.MustParseAddr("10.1.2.3"))
	if p.ISP != "private" || SameISP(a, p) {
		t.Errorf("private: %+v", p)
	}
}

func TestDistance(t *testing.T) {
	dublin := Location{Lat: 53.35, Lon: -6.26}
	ny := Location{Lat: 40.71, Lon: -74.0}
	d := DistanceKM(dublin, ny)
	if d < 5000 || d > 5200 {
		t.Errorf("Dublin-New York = %.0f km, want about 5100", d)
	}
	if !math.IsInf(DistanceKM(dublin, Location{}), 1) {
		t.Error("distance to an unknown place should be +Inf")
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sampleCSV)
	f.Add(`[{"prefix":"203.0.113.0/24","isp":"x","asn":1,"lat":1,"lon":2}]`)
	f.Add("")
	f.Add("::/0,any")
	f.Fuzz(func(t *testing.T, in string) {
		m, err := Parse(strings.NewReader(in))
		if err != nil {
			return
		}
		for _, e := range m.Entries() {
			if _, ok := m.Lookup(e.Prefix.Addr()); !ok {
				t.Fatalf("entry %v not found by its own address", e.Prefix)
			}
		}
	})
}
