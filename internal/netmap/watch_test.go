package netmap

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// mmdbRow is one network of a test database.
type mmdbRow struct {
	cidr string
	rec  mmdbtype.Map
}

// buildMMDB writes a small MaxMind DB with mmdbwriter and returns its bytes.
func buildMMDB(t testing.TB, dbType string, rows []mmdbRow) []byte {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: dbType, IncludeReservedNetworks: true, RecordSize: 24})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		_, n, err := net.ParseCIDR(r.cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.Insert(n, r.rec); err != nil {
			t.Fatalf("insert %s: %v", r.cidr, err)
		}
	}
	var buf bytes.Buffer
	if _, err := tree.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// cityRow is a GeoIP2-City-shaped record.
func cityRow(cidr, country, continent string, lat, lon float64) mmdbRow {
	return mmdbRow{cidr, mmdbtype.Map{
		"country":   mmdbtype.Map{"iso_code": mmdbtype.String(country)},
		"continent": mmdbtype.Map{"code": mmdbtype.String(continent)},
		"location":  mmdbtype.Map{"latitude": mmdbtype.Float64(lat), "longitude": mmdbtype.Float64(lon)},
	}}
}

// asnRow is a GeoLite2-ASN-shaped record.
func asnRow(cidr string, asn uint32, org string) mmdbRow {
	return mmdbRow{cidr, mmdbtype.Map{
		"autonomous_system_number":       mmdbtype.Uint32(asn),
		"autonomous_system_organization": mmdbtype.String(org),
	}}
}

// ownRow uses Avalanche's own fields.
func ownRow(cidr, isp string, asn uint32, region string) mmdbRow {
	return mmdbRow{cidr, mmdbtype.Map{
		"isp":                      mmdbtype.String(isp),
		"autonomous_system_number": mmdbtype.Uint32(asn),
		"region":                   mmdbtype.String(region),
	}}
}

func TestMMDBLookup(t *testing.T) {
	city := buildMMDB(t, "GeoIP2-City", []mmdbRow{
		cityRow("203.0.113.0/24", "IE", "EU", 53.35, -6.26),
		cityRow("2001:db8::/32", "US", "NA", 40.71, -74.0),
	})
	asn := buildMMDB(t, "GeoLite2-ASN", []mmdbRow{asnRow("203.0.113.0/25", 64500, "ExampleNet")})
	own := buildMMDB(t, "Avalanche-Netmap", []mmdbRow{ownRow("198.51.100.0/24", "OtherISP", 64510, "us-east")})
	tests := []struct {
		name   string
		db     []byte
		addr   string
		want   Location
		bits   int
		wantOK bool
	}{
		{"city v4", city, "203.0.113.200", Location{Region: "EU", Country: "IE", Lat: 53.35, Lon: -6.26}, 24, true},
		{"city mapped v4", city, "::ffff:203.0.113.200", Location{Region: "EU", Country: "IE", Lat: 53.35, Lon: -6.26}, 24, true},
		{"city v6", city, "2001:db8::1", Location{Region: "NA", Country: "US", Lat: 40.71, Lon: -74.0}, 32, true},
		{"city miss", city, "192.0.2.1", Location{}, 0, false},
		{"asn", asn, "203.0.113.1", Location{ISP: "ExampleNet", ASN: 64500}, 25, true},
		{"asn miss in other half", asn, "203.0.113.200", Location{}, 0, false},
		{"own fields", own, "198.51.100.9", Location{ISP: "OtherISP", ASN: 64510, Region: "us-east"}, 24, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseMMDB(tc.db)
			if err != nil {
				t.Fatal(err)
			}
			e, ok := d.LookupEntry(netip.MustParseAddr(tc.addr))
			if ok != tc.wantOK || e.Location != tc.want {
				t.Fatalf("LookupEntry(%s) = %+v, %v; want %+v, %v", tc.addr, e.Location, ok, tc.want, tc.wantOK)
			}
			if ok && e.Prefix.Bits() != tc.bits {
				t.Errorf("prefix = %v, want /%d", e.Prefix, tc.bits)
			}
		})
	}
}

func TestParseMMDBErrors(t *testing.T) {
	good := buildMMDB(t, "x", []mmdbRow{ownRow("198.51.100.0/24", "a", 1, "r")})
	for name, b := range map[string][]byte{
		"empty":     nil,
		"garbage":   []byte("definitely not a maxmind database"),
		"truncated": good[:len(good)/2],
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParseMMDB(b); !errors.Is(err, ErrMMDB) {
				t.Errorf("ParseMMDB = %v, want ErrMMDB", err)
			}
		})
	}
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestWatcherCombinesAndReloads(t *testing.T) {
	dir := t.TempDir()
	cityPath := filepath.Join(dir, "city.mmdb")
	asnPath := filepath.Join(dir, "asn.mmdb")
	csvPath := filepath.Join(dir, "overrides.csv")
	writeFile(t, cityPath, buildMMDB(t, "GeoIP2-City", []mmdbRow{cityRow("203.0.113.0/24", "IE", "EU", 53.35, -6.26)}))
	writeFile(t, asnPath, buildMMDB(t, "GeoLite2-ASN", []mmdbRow{asnRow("203.0.113.0/24", 64500, "ExampleNet")}))
	writeFile(t, csvPath, []byte("203.0.113.128/25,ExampleNet-Cork,64501,eu-west\n"))

	w, err := NewWatcher(WatcherConfig{Files: []string{csvPath, cityPath, asnPath}, Interval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	// The /25 override wins and borrows country and coordinates from the
	// City database.
	e, ok := w.LookupEntry(netip.MustParseAddr("203.0.113.200"))
	want := Location{ISP: "ExampleNet-Cork", ASN: 64501, Region: "eu-west", Country: "IE", Lat: 53.35, Lon: -6.26}
	if !ok || e.Location != want || e.Prefix.Bits() != 25 {
		t.Fatalf("LookupEntry = %+v, %v; want %+v in a /25", e, ok, want)
	}
	// The lower half combines City and ASN.
	l, _ := w.Lookup(netip.MustParseAddr("203.0.113.1"))
	want = Location{ISP: "ExampleNet", ASN: 64500, Region: "EU", Country: "IE", Lat: 53.35, Lon: -6.26}
	if l != want {
		t.Fatalf("Lookup = %+v, want %+v", l, want)
	}
	// Loopback comes from the built-in map.
	if l, _ := w.Lookup(netip.MustParseAddr("127.0.0.1")); l.ISP != "loopback" {
		t.Errorf("loopback = %+v", l)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	// Replace the ASN file: the poller picks it up without a restart.
	gen := w.Generation()
	writeFile(t, asnPath, buildMMDB(t, "GeoLite2-ASN", []mmdbRow{asnRow("203.0.113.0/24", 64999, "NewNet")}))
	waitFor(t, func() bool { return w.Generation() > gen })
	if l, _ := w.Lookup(netip.MustParseAddr("203.0.113.1")); l.ASN != 64999 || l.ISP != "NewNet" {
		t.Errorf("after reload: %+v", l)
	}

	// A broken file keeps the previous map in service.
	gen = w.Generation()
	writeFile(t, csvPath, []byte("not a prefix,x\n"))
	if err := w.Reload(); !errors.Is(err, ErrSyntax) {
		t.Errorf("Reload of a broken file = %v, want ErrSyntax", err)
	}
	if w.Generation() != gen {
		t.Error("a failed reload bumped the generation")
	}
	if l, _ := w.Lookup(netip.MustParseAddr("203.0.113.200")); l.ISP != "ExampleNet-Cork" {
		t.Errorf("after failed reload: %+v", l)
	}
}

func TestWatcherZeroConfig(t *testing.T) {
	w, err := NewWatcher(WatcherConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if l, ok := w.Lookup(netip.MustParseAddr("10.1.2.3")); !ok || l.ISP != "private" {
		t.Errorf("Lookup = %+v, %v", l, ok)
	}
	if _, err := NewWatcher(WatcherConfig{Files: []string{filepath.Join(t.TempDir(), "missing.csv")}}); err == nil {
		t.Error("NewWatcher with a missing file succeeded")
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func FuzzParseMMDB(f *testing.F) {
	f.Add(buildMMDB(f, "x", []mmdbRow{ownRow("198.51.100.0/24", "a", 1, "r")}))
	f.Add(buildMMDB(f, "GeoIP2-City", []mmdbRow{cityRow("203.0.113.0/24", "IE", "EU", 53.35, -6.26)}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseMMDB(b)
		if err != nil {
			return
		}
		for _, a := range []string{"198.51.100.1", "203.0.113.1", "2001:db8::1", "0.0.0.0"} {
			d.Lookup(netip.MustParseAddr(a))
		}
	})
}
