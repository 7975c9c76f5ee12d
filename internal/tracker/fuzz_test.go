package tracker_test

import (
	"encoding/json"
	"net/netip"
	"testing"

	"avalanche/internal/identity"
	"avalanche/internal/tracker"
	"avalanche/internal/tracker/storetest"
)

// fuzzKey signs the bodies of the signed fuzz targets; its ID appears in
// the seeds so that mutations often pass the signature check and reach
// the store and the hand-out.
var fuzzKey = identity.Generate()

// fuzzWorld returns a world with a few peers and infrastructure, whose
// clock stays at storetest.T0 so that seed timestamps are fresh.
func fuzzWorld(f *testing.F) *world {
	w := newWorld(f, nil)
	w.infra()
	w.populate(alpha, 3)
	w.populate(gamma, 3)
	return w
}

func announceSeeds(w *world) [][]byte {
	id := identity.Self(fuzzKey).String()
	ts := storetest.T0.Format("2006-01-02T15:04:05.999999999Z07:00")
	seeds := [][]byte{
		w.announceBody(fuzzKey, nil),
		w.announceBody(fuzzKey, map[string]any{"event": "completed", "left": 0, "from_peers": 1 << 40, "uploaded": uint64(1) << 63}),
		w.announceBody(fuzzKey, map[string]any{"event": "stopped", "port": 0}),
		w.announceBody(fuzzKey, map[string]any{"role": "seed", "want": 1 << 30}),
		w.announceBody(fuzzKey, map[string]any{"role": "edge"}),
		w.announceBody(fuzzKey, map[string]any{"port": 70000}),
		[]byte(`{"content":"` + w.content.String() + `","peer_id":"` + id + `","port":1,"timestamp":"` + ts + `"}`),
		[]byte(`{"content":"` + w.content.String() + `","peer_id":"` + id + `","port":1,"left":-1,"timestamp":"` + ts + `"}`),
		[]byte(`{"CONTENT":"` + w.content.String() + `","Peer_ID":"` + id + `","port":1.5,"timestamp":"` + ts + `"}`),
		[]byte(`{"content":null,"peer_id":[],"port":"1","timestamp":0}`),
		[]byte(`[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]`),
		[]byte(`{"timestamp":"9999-12-31T23:59:59Z"}`),
		[]byte("\xff\xfe{}"),
		{},
	}
	return seeds
}

func checkResponse(t *testing.T, status int, body []byte) {
	t.Helper()
	if status >= 500 {
		t.Fatalf("status %d, body %s", status, body)
	}
	if !json.Valid(body) {
		t.Fatalf("status %d with a body that is not JSON: %q", status, body)
	}
	if status != 200 && (status < 400 || status >= 500) {
		t.Fatalf("status %d, want 200 or 4xx", status)
	}
}

// FuzzAnnounce feeds arbitrary bodies and signature headers to the
// announce handler: it must answer 4xx (or 200 for a valid request) with a
// JSON body, never panic or fail with 5xx.
func FuzzAnnounce(f *testing.F) {
	w := fuzzWorld(f)
	for _, s := range announceSeeds(w) {
		f.Add(s, tracker.Sign(fuzzKey, tracker.AnnouncePath, s))
		f.Add(s, "")
	}
	f.Add([]byte(`{}`), "AAAA")
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		rec := w.raw(tracker.AnnouncePath, body, sig, "10.1.0.9:4000")
		checkResponse(t, rec.Code, rec.Body.Bytes())
		if rec.Code == 200 {
			t.Logf("accepted %q", body)
		}
	})
}

// FuzzAnnounceSigned signs every body with fuzzKey, so inputs that parse
// go through the whole announce path: store, counters and hand-out.
func FuzzAnnounceSigned(f *testing.F) {
	w := fuzzWorld(f)
	for _, s := range announceSeeds(w) {
		f.Add(s, "10.1.0.9")
	}
	f.Add(announceSeeds(w)[0], "::1")
	f.Add(announceSeeds(w)[0], "203.0.113.1")
	self := identity.Self(fuzzKey)
	f.Fuzz(func(t *testing.T, body []byte, ip string) {
		a, err := netip.ParseAddr(ip)
		if err != nil {
			a = netip.MustParseAddr("10.1.0.9")
		}
		rec := w.raw(tracker.AnnouncePath, body, tracker.Sign(fuzzKey, tracker.AnnouncePath, body), netip.AddrPortFrom(a, 4000).String())
		checkResponse(t, rec.Code, rec.Body.Bytes())
		if rec.Code != 200 {
			return
		}
		var resp struct {
			Peers []struct {
				PeerID string `json:"peer_id"`
				Addr   string `json:"addr"`
			} `json:"peers"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
			t.Fatalf("200 with undecodable body: %v", err)
		}
		for _, p := range resp.Peers {
			if p.PeerID == self.String() {
				t.Fatalf("requester handed itself")
			}
			if _, err := netip.ParseAddrPort(p.Addr); err != nil {
				t.Fatalf("handed-out address %q: %v", p.Addr, err)
			}
		}
	})
}

// FuzzReport signs arbitrary report bodies with fuzzKey, which is a live
// member of the swarm, so valid mutations reach the ban logic.
func FuzzReport(f *testing.F) {
	w := fuzzWorld(f)
	member := &node{w: w, key: fuzzKey, ip: "10.1.0.50", port: 4000, role: tracker.RolePeer}
	w.attach(member)
	member.mustAnnounce(tracker.AnnounceRequest{Left: 1})
	report := func(over map[string]any) []byte {
		m := map[string]any{
			"content":   w.content.String(),
			"reporter":  identity.Self(fuzzKey).String(),
			"offender":  w.edges[0].id.String(),
			"reason":    "bad block",
			"timestamp": storetest.T0,
		}
		for k, v := range over {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return b
	}
	f.Add(report(nil))
	f.Add(report(map[string]any{"offender": identity.Self(identity.Generate()).String()}))
	f.Add(report(map[string]any{"offender": identity.Self(fuzzKey).String()}))
	f.Add(report(map[string]any{"reason": "\xff"}))
	f.Add(report(map[string]any{"content": "00"}))
	f.Add([]byte(`{"reporter":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := w.raw(tracker.ReportPath, body, tracker.Sign(fuzzKey, tracker.ReportPath, body), "10.1.0.50:4000")
		checkResponse(t, rec.Code, rec.Body.Bytes())
	})
}
