package edge

import (
	"net/http"
	"reflect"
	"testing"
)

// FuzzParseFile feeds arbitrary bytes to the configuration parser.
func FuzzParseFile(f *testing.F) {
	f.Add([]byte(`{"properties":[{"name":"p","hosts":["a.test"],"origin":"http://127.0.0.1:1","cache_bytes":"1GB"}]}`))
	f.Add([]byte(`{"mem":"1.5GiB","limits":{"idle_timeout":"1m","max_body_bytes":1e3}}`))
	f.Add([]byte(`{"properties":[{"name":"x","origin":"https://o","default_ttl":-1}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if f, err := ParseFile(b); err == nil {
			cfg := f.Config()
			if err := cfg.validate(); err != nil {
				t.Fatalf("accepted file fails validation: %v", err)
			}
		}
	})
}

// FuzzHeaders feeds arbitrary values to the Range, Content-Range and
// traceparent parsers.
func FuzzHeaders(f *testing.F) {
	for _, s := range []string{"bytes=0-99", "bytes=-5", "bytes=5-", "bytes=1-2,4-5", "bytes 0-4/10", "bytes 4-9/*",
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "bytes=99999999999999999999-"} {
		f.Add(s, int64(10))
	}
	f.Fuzz(func(t *testing.T, s string, total int64) {
		if rg, ok := parseRange(s); ok && total >= 0 {
			if off, n, sat := rg.resolve(total); sat && (off < 0 || n <= 0 || off+n > total) {
				t.Fatalf("parseRange(%q).resolve(%d) = %d,%d out of bounds", s, total, off, n)
			}
		}
		if a, b, tot, ok := parseContentRange(s); ok && (a > b || tot >= 0 && b >= tot) {
			t.Fatalf("parseContentRange(%q) = %d-%d/%d", s, a, b, tot)
		}
		if id, p, fl, ok := parseTraceparent(s); ok && (len(id) != 32 || len(p) != 16 || len(fl) != 2) {
			t.Fatalf("parseTraceparent(%q) bad lengths", s)
		}
	})
}

func TestMetaRoundTrip(t *testing.T) {
	in := &meta{Status: 200, Header: http.Header{"Etag": {`"x"`}, "Set-Cookie": {"a=1", "b=2"}, "Empty": {}}, ReqTime: -5, RespTime: 1 << 60,
		Size: 5 << 30, Sliced: true, SliceSize: 2 << 20, Version: "abcd", TTL: 30, URL: "h/p?q"}
	out, err := decodeMetaBytes(encodeMeta(in))
	if err != nil {
		t.Fatal(err)
	}
	out.an = nil
	if !reflect.DeepEqual(in, out) {
		t.Errorf("round trip = %+v, want %+v", out, in)
	}
	stub := &meta{Stub: true, Vary: []string{"Accept-Encoding", "Foo"}}
	if got, err := decodeMetaBytes(encodeMeta(stub)); err != nil || !reflect.DeepEqual(got.Vary, stub.Vary) || !got.Stub {
		t.Errorf("stub round trip = %+v, %v", got, err)
	}
	for _, bad := range [][]byte{nil, {1}, {2, 0}, {1, 4}, append(encodeMeta(in), 0)} {
		if _, err := decodeMetaBytes(bad); err == nil {
			t.Errorf("decodeMetaBytes(%x) accepted", bad)
		}
	}
}

// FuzzDecodeMeta feeds arbitrary bytes (as a damaged disk could) to the
// stored-metadata decoder.
func FuzzDecodeMeta(f *testing.F) {
	f.Add(encodeMeta(&meta{Status: 200, Header: http.Header{"A": {"1"}}, Size: 10}))
	f.Add(encodeMeta(&meta{Stub: true, Vary: []string{"Foo"}}))
	f.Add([]byte{1, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMetaBytes(b)
		if err != nil {
			return
		}
		m2, err := decodeMetaBytes(encodeMeta(m))
		if err != nil || m2.Status != m.Status || m2.Size != m.Size || len(m2.Header) != len(m.Header) {
			t.Fatalf("re-encoding a decoded record changes it: %v", err)
		}
	})
}
