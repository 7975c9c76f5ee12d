package redisstore

import (
	"net/netip"
	"testing"
	"time"

	"avalanche/internal/identity"
	"avalanche/internal/tracker"
)

var recordTable = []tracker.Peer{
	{},
	{
		ID: identity.ID{1, 2, 3}, Addr: netip.MustParseAddrPort("192.0.2.1:4000"), Role: tracker.RolePeer,
		ISP: "Alpha Telecom", ASN: 64501, Region: "eu-west", Left: 1 << 40,
		Bytes: tracker.Bytes{Uploaded: 1, Downloaded: 2, FromOrigin: 3, FromEdge: 4, FromPeers: 5},
		Stamp: 1_800_000_000_123_456, Expires: time.UnixMicro(1_800_000_015_000_000).UTC(), Keep: time.UnixMicro(1_800_000_600_000_000).UTC(),
	},
	{
		ID: identity.ID{0xff}, Addr: netip.MustParseAddrPort("[2001:db8::1]:65535"), Role: tracker.RoleEdge,
		ISP: "a|b%c d", Region: "zürich|1", Stopped: true, Left: ^uint64(0),
		Bytes: tracker.Bytes{Uploaded: ^uint64(0)}, Stamp: -5, Expires: time.UnixMicro(-1).UTC(), Keep: time.UnixMicro(0).UTC(),
	},
}

func samePeer(a, b tracker.Peer) bool {
	return a.ID == b.ID && a.Addr == b.Addr && a.Role == b.Role && a.ISP == b.ISP && a.ASN == b.ASN &&
		a.Region == b.Region && a.Left == b.Left && a.Bytes == b.Bytes && a.Stamp == b.Stamp &&
		a.Stopped == b.Stopped && a.Expires.Equal(b.Expires) && a.Keep.Equal(b.Keep)
}

func TestRecordRoundTrip(t *testing.T) {
	for i, p := range recordTable {
		if p.Expires.IsZero() {
			p.Expires, p.Keep = time.UnixMicro(0).UTC(), time.UnixMicro(0).UTC()
		}
		enc := encode(p)
		got, err := decode(string(enc))
		if err != nil {
			t.Fatalf("%d: decode(%q) = %v", i, enc, err)
		}
		if !samePeer(got, p) {
			t.Fatalf("%d: decode(encode(p)) = %+v\nwant %+v", i, got, p)
		}
	}
}

func TestRecordRejects(t *testing.T) {
	good := string(encode(recordTable[1]))
	for _, s := range []string{"", "1", "2" + good[1:], good[:20], "1|x|1|1|0|peer|1.2.3.4:1|0|0|0|0|0|0|0|00|r|i", good + "%zz"} {
		if _, err := decode(s); err == nil {
			t.Errorf("decode(%q) = nil error", s)
		}
	}
}

// FuzzDecodeRecord: records come back from Redis, which other processes
// share; decode must not panic, and what it accepts must re-encode to a
// record that decodes to the same peer.
func FuzzDecodeRecord(f *testing.F) {
	for _, p := range recordTable {
		f.Add(string(encode(p)))
	}
	f.Add("1|||||||||||||||||")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := decode(s)
		if err != nil {
			return
		}
		q, err := decode(string(encode(p)))
		if err != nil || !samePeer(p, q) {
			t.Fatalf("decode(%q) = %+v; re-encoded decodes to %+v, %v", s, p, q, err)
		}
	})
}
