package netmap

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"

	maxminddb "github.com/oschwald/maxminddb-golang/v2"
)

// MaxMMDBSize is the largest MaxMind DB file OpenMMDB accepts (1 GiB; the
// GeoIP2 City database is about 100 MiB).
const MaxMMDBSize = 1 << 30

// ErrMMDB is returned (wrapped) for MaxMind DB files that cannot be read.
var ErrMMDB = errors.New("netmap: bad MaxMind DB")

// MMDB is a network map backed by a MaxMind DB (.mmdb) file: GeoIP2 or
// GeoLite2 City/Country, ASN and ISP databases, or a database written with
// Avalanche's own fields. A record is read as follows (missing fields stay
// empty):
//
//	isp                            → ISP
//	autonomous_system_organization → ISP when isp is absent
//	autonomous_system_number       → ASN
//	region                         → Region (Avalanche's own field)
//	continent.code                 → Region when region is absent
//	country.iso_code               → Country
//	location.latitude/longitude    → Lat/Lon
//
// The file is read into memory, so replacing it on disk never disturbs a
// live MMDB. An MMDB is immutable and safe for concurrent use.
type MMDB struct {
	r *maxminddb.Reader
}

type mmdbRecord struct {
	ISP       string `maxminddb:"isp"`
	ASOrg     string `maxminddb:"autonomous_system_organization"`
	ASN       uint32 `maxminddb:"autonomous_system_number"`
	Region    string `maxminddb:"region"`
	Continent struct {
		Code string `maxminddb:"code"`
	} `maxminddb:"continent"`
	Country struct {
		ISOCode string `maxminddb:"iso_code"`
	} `maxminddb:"country"`
	Location struct {
		Latitude  float64 `maxminddb:"latitude"`
		Longitude float64 `maxminddb:"longitude"`
	} `maxminddb:"location"`
}

// OpenMMDB reads a MaxMind DB file of at most MaxMMDBSize bytes.
func OpenMMDB(path string) (*MMDB, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("netmap: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxMMDBSize+1))
	if err != nil {
		return nil, fmt.Errorf("netmap: %s: %w", path, err)
	}
	if len(b) > MaxMMDBSize {
		return nil, fmt.Errorf("%s: %w", path, ErrTooLarge)
	}
	d, err := ParseMMDB(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

// ParseMMDB reads a MaxMind DB held in b. The MMDB keeps b: the caller must
// not modify it afterwards.
func ParseMMDB(b []byte) (d *MMDB, err error) {
	// The reader checks the metadata and the search tree size when it
	// opens; a corrupt data section makes single lookups fail cleanly
	// (FuzzParseMMDB). Reader.Verify is not used: it is stricter than the
	// format and refuses valid files without a description.
	defer func() {
		if r := recover(); r != nil {
			d, err = nil, fmt.Errorf("%w: %v", ErrMMDB, r)
		}
	}()
	r, err := maxminddb.OpenBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMMDB, err)
	}
	return &MMDB{r: r}, nil
}

// Lookup returns the location recorded for a.
func (d *MMDB) Lookup(a netip.Addr) (Location, bool) {
	e, ok := d.LookupEntry(a)
	return e.Location, ok
}

// LookupEntry returns the location recorded for a and the network it was
// recorded for.
func (d *MMDB) LookupEntry(a netip.Addr) (Entry, bool) {
	if d == nil || !a.IsValid() {
		return Entry{}, false
	}
	a = a.Unmap().WithZone("")
	res := d.r.Lookup(a)
	if res.Err() != nil || !res.Found() {
		return Entry{}, false
	}
	var rec mmdbRecord
	if err := res.Decode(&rec); err != nil {
		return Entry{}, false
	}
	loc := Location{
		ISP:     rec.ISP,
		ASN:     rec.ASN,
		Region:  rec.Region,
		Country: rec.Country.ISOCode,
		Lat:     rec.Location.Latitude,
		Lon:     rec.Location.Longitude,
	}
	if loc.ISP == "" {
		loc.ISP = rec.ASOrg
	}
	if loc.Region == "" {
		loc.Region = rec.Continent.Code
	}
	if checkLocation(loc) != nil {
		return Entry{}, false
	}
	p := res.Prefix()
	if p.Addr().Is4In6() && p.Bits() >= 96 {
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return Entry{Prefix: p, Location: loc}, true
}
