package tracker_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"avalanche/internal/identity"
	"avalanche/internal/manifest"
	"avalanche/internal/tracker"
)

// raw sends body to path from remote with the given signature header and
// returns the recorded response.
func (w *world) raw(path string, body []byte, sig, remote string, hdr ...string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	r.RemoteAddr = remote
	if sig != "" {
		r.Header.Set(tracker.SignatureHeader, sig)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	w.h.ServeHTTP(rec, r)
	return rec
}

// announceBody returns an announce body for key with fields overridden by
// over (JSON field name → value; nil deletes the field).
func (w *world) announceBody(key ed25519.PrivateKey, over map[string]any) []byte {
	m := map[string]any{
		"content":   w.content.String(),
		"peer_id":   identity.Self(key).String(),
		"port":      4000,
		"role":      "peer",
		"event":     "started",
		"left":      100,
		"want":      30,
		"timestamp": w.clock.Now().Format(time.RFC3339Nano),
	}
	for k, v := range over {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	b, err := json.Marshal(m)
	if err != nil {
		w.t.Fatal(err)
	}
	return b
}

func errorCode(t *testing.T, rec *httptest.ResponseRecorder) string {
	t.Helper()
	var e struct {
		Error string `json:"error"`
		Code  string `json:"code"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", rec.Body.String(), err)
	}
	if e.Error == "" {
		t.Fatalf("error body %q has no message", rec.Body.String())
	}
	return e.Code
}

func TestAnnounceRejects(t *testing.T) {
	w := newWorld(t, nil)
	key, other := identity.Generate(), identity.Generate()
	const remote = "10.1.0.1:5555"
	now := w.clock.Now()
	for _, tc := range []struct {
		name   string
		body   []byte
		sigKey ed25519.PrivateKey // nil: no signature
		sig    string             // used when sigKey is nil
		status int
		code   string
	}{
		{"not JSON", []byte("{"), key, "", 400, "bad_request"},
		{"empty", nil, key, "", 400, "bad_request"},
		{"trailing data", append(w.announceBody(key, nil), []byte(" {}")...), key, "", 400, "bad_request"},
		{"bad content", w.announceBody(key, map[string]any{"content": "abc"}), key, "", 400, "bad_request"},
		{"bad peer id", w.announceBody(key, map[string]any{"peer_id": "zz"}), key, "", 400, "bad_request"},
		{"port too big", w.announceBody(key, map[string]any{"port": 70000}), key, "", 400, "bad_request"},
		{"negative port", w.announceBody(key, map[string]any{"port": -1}), key, "", 400, "bad_request"},
		{"unknown role", w.announceBody(key, map[string]any{"role": "king"}), key, "", 400, "bad_request"},
		{"unknown event", w.announceBody(key, map[string]any{"event": "exploded"}), key, "", 400, "bad_request"},
		{"negative left", w.announceBody(key, map[string]any{"left": -5}), key, "", 400, "bad_request"},
		{"negative want", w.announceBody(key, map[string]any{"want": -1}), key, "", 400, "bad_request"},
		{"no timestamp", w.announceBody(key, map[string]any{"timestamp": nil}), key, "", 400, "bad_request"},
		{"too large", w.announceBody(key, map[string]any{"pad": strings.Repeat("x", tracker.MaxBodySize)}), key, "", 413, "too_large"},
		{"no signature", w.announceBody(key, nil), nil, "", 401, "bad_signature"},
		{"garbage signature", w.announceBody(key, nil), nil, "!!!", 401, "bad_signature"},
		{"short signature", w.announceBody(key, nil), nil, "AAAA", 401, "bad_signature"},
		{"signed by another key", w.announceBody(key, nil), other, "", 401, "bad_signature"},
		{"timestamp too old", w.announceBody(key, map[string]any{"timestamp": now.Add(-2 * time.Minute)}), key, "", 401, "clock_skew"},
		{"timestamp in the future", w.announceBody(key, map[string]any{"timestamp": now.Add(2 * time.Minute)}), key, "", 401, "clock_skew"},
		{"edge not trusted", w.announceBody(key, map[string]any{"role": "edge"}), key, "", 403, "role_not_allowed"},
		{"origin not trusted", w.announceBody(key, map[string]any{"role": "origin"}), key, "", 403, "role_not_allowed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig := tc.sig
			if tc.sigKey != nil {
				sig = tracker.Sign(tc.sigKey, tracker.AnnouncePath, tc.body)
			}
			rec := w.raw(tracker.AnnouncePath, tc.body, sig, remote)
			if rec.Code != tc.status {
				t.Fatalf("status = %d, want %d (body %s)", rec.Code, tc.status, rec.Body)
			}
			if code := errorCode(t, rec); code != tc.code {
				t.Fatalf("code = %q, want %q", code, tc.code)
			}
		})
	}
	if st, _ := w.tr.SwarmStats(t.Context(), w.content); st.Size != 0 {
		t.Fatalf("rejected announces left %d peers in the swarm", st.Size)
	}
	t.Run("signature for another path", func(t *testing.T) {
		body := w.announceBody(key, nil)
		rec := w.raw(tracker.AnnouncePath, body, tracker.Sign(key, tracker.ReportPath, body), remote)
		if rec.Code != 401 {
			t.Fatalf("status = %d, want 401", rec.Code)
		}
	})
	t.Run("wrong method", func(t *testing.T) {
		rec := httptest.NewRecorder()
		w.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tracker.AnnouncePath, nil))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Fatalf("GET %s = %d, want 405", tracker.AnnouncePath, rec.Code)
		}
	})
}

func TestAnnounceReplay(t *testing.T) {
	w := newWorld(t, nil)
	key := identity.Generate()
	body := w.announceBody(key, nil)
	sig := tracker.Sign(key, tracker.AnnouncePath, body)
	if rec := w.raw(tracker.AnnouncePath, body, sig, "10.1.0.1:5555"); rec.Code != 200 {
		t.Fatalf("first announce = %d %s, want 200", rec.Code, rec.Body)
	}
	for _, tc := range []struct{ name, remote string }{
		{"same address", "10.1.0.1:5555"},
		// A replay must not be able to move the peer to the sender's address.
		{"other address", "10.3.0.66:5555"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := w.raw(tracker.AnnouncePath, body, sig, tc.remote)
			if rec.Code != http.StatusConflict || errorCode(t, rec) != "stale" {
				t.Fatalf("replay = %d %s, want 409 stale", rec.Code, rec.Body)
			}
		})
	}
	// Still refused after the peer stopped and its entry expired.
	stop := w.announceBody(key, map[string]any{"event": "stopped", "timestamp": w.clock.Now().Add(time.Millisecond)})
	if rec := w.raw(tracker.AnnouncePath, stop, tracker.Sign(key, tracker.AnnouncePath, stop), "10.1.0.1:5555"); rec.Code != 200 {
		t.Fatalf("stop = %d %s", rec.Code, rec.Body)
	}
	w.clock.Add(50 * time.Second)
	if rec := w.raw(tracker.AnnouncePath, body, sig, "10.3.0.66:5555"); rec.Code != http.StatusConflict {
		t.Fatalf("replay after stop = %d %s, want 409", rec.Code, rec.Body)
	}
}

func TestAnnounceIgnoresForwardedForUnlessTrusted(t *testing.T) {
	for _, tc := range []struct {
		name    string
		proxies []netip.Prefix
		remote  string
		xff     []string
		want    string
		status  int
	}{
		{"no proxies: header ignored", nil, "10.1.0.1:1", []string{"10.3.0.9"}, "10.1.0.1", 200},
		{"untrusted sender: header ignored", []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}, "10.1.0.1:1", []string{"10.3.0.9"}, "10.1.0.1", 200},
		{"trusted proxy", []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}, "10.9.0.5:1", []string{"10.3.0.9"}, "10.3.0.9", 200},
		{"client-supplied prefix skipped", []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}, "10.9.0.5:1", []string{"1.2.3.4, 10.3.0.9"}, "10.3.0.9", 200},
		{"proxy chain", []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}, "10.9.0.5:1", []string{"1.2.3.4, 10.3.0.9", "10.9.0.7"}, "10.3.0.9", 200},
		{"garbage entry", []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}, "10.9.0.5:1", []string{"nonsense"}, "", 400},
		{"no header from proxy", []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")}, "10.9.0.5:1", nil, "10.9.0.5", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, func(c *tracker.Config) { c.TrustedProxies = tc.proxies })
			key := identity.Generate()
			body := w.announceBody(key, nil)
			var hdr []string
			for _, x := range tc.xff {
				hdr = append(hdr, "X-Forwarded-For", x)
			}
			rec := w.raw(tracker.AnnouncePath, body, tracker.Sign(key, tracker.AnnouncePath, body), tc.remote, hdr...)
			if rec.Code != tc.status {
				t.Fatalf("status = %d %s, want %d", rec.Code, rec.Body, tc.status)
			}
			if tc.status != 200 {
				return
			}
			var resp struct {
				YourAddr string `json:"your_addr"`
			}
			json.Unmarshal(rec.Body.Bytes(), &resp)
			if resp.YourAddr != tc.want {
				t.Fatalf("your_addr = %q, want %q", resp.YourAddr, tc.want)
			}
		})
	}
}

func TestInfrastructureRoles(t *testing.T) {
	t.Run("listed IDs only", func(t *testing.T) {
		w := newWorld(t, nil)
		w.infra() // listed: accepted from 10.x
		n := w.peer("127.0.0.1")
		n.role = tracker.RoleEdge
		if _, err := n.announce(tracker.AnnounceRequest{}); !errors.Is(err, tracker.ErrRole) {
			t.Fatalf("unlisted edge from loopback = %v, want ErrRole", err)
		}
	})
	t.Run("default: loopback only", func(t *testing.T) {
		w := newWorld(t, func(c *tracker.Config) { c.Infrastructure = nil })
		for _, tc := range []struct {
			ip   string
			want error
		}{{"127.0.0.1", nil}, {"::1", nil}, {"10.1.0.1", tracker.ErrRole}} {
			n := w.peer(tc.ip)
			n.role = tracker.RoleOrigin
			if _, err := n.announce(tracker.AnnounceRequest{}); !errors.Is(err, tc.want) {
				t.Errorf("origin from %s = %v, want %v", tc.ip, err, tc.want)
			}
		}
	})
}

func TestExpiryAndStop(t *testing.T) {
	w := newWorld(t, nil)
	nodes := w.populate(alpha, 3)
	me := w.peer(peerAddr(alpha, 10))
	if resp := me.mustAnnounce(tracker.AnnounceRequest{}); len(resp.Peers) != 3 || resp.Interval != 5*time.Second {
		t.Fatalf("got %d peers, interval %v; want 3, 5s", len(resp.Peers), resp.Interval)
	}
	// nodes[0] stops; nodes[1] keeps announcing; nodes[2] goes silent.
	nodes[0].mustAnnounce(tracker.AnnounceRequest{Event: tracker.EventStopped})
	for range 3 {
		w.clock.Add(5 * time.Second)
		nodes[1].mustAnnounce(tracker.AnnounceRequest{})
	}
	resp := me.mustAnnounce(tracker.AnnounceRequest{})
	if len(resp.Peers) != 1 || resp.Peers[0].ID != nodes[1].id {
		t.Fatalf("after 3 intervals got %d peers, want only the one still announcing", len(resp.Peers))
	}
	if st, _ := w.tr.SwarmStats(t.Context(), w.content); st.Size != 2 {
		t.Fatalf("Size = %d, want 2 (me and the live one)", st.Size)
	}
	// A stopped announce gets no peers.
	if resp := me.mustAnnounce(tracker.AnnounceRequest{Event: tracker.EventStopped}); len(resp.Peers) != 0 {
		t.Fatalf("stopped announce got %d peers, want 0", len(resp.Peers))
	}
}

func TestReportsAndBans(t *testing.T) {
	type step struct {
		reporter   string // "a", "b", "c" peers, "edge", "stranger"
		offender   string // "bad" or "edge"
		wantErr    error
		wantBanned bool
	}
	for _, tc := range []struct {
		name  string
		mod   func(*tracker.Config)
		steps []step
	}{
		{"two peers ban", nil, []step{{"a", "bad", nil, false}, {"a", "bad", nil, false}, {"b", "bad", nil, true}}},
		{"one edge bans", nil, []step{{"edge", "bad", nil, true}}},
		{"threshold of three", func(c *tracker.Config) { c.BanReporters = 3 }, []step{{"a", "bad", nil, false}, {"b", "bad", nil, false}, {"c", "bad", nil, true}}},
		{"infrastructure reports not special", func(c *tracker.Config) { c.BanInfraReporters = -1 }, []step{{"edge", "bad", nil, false}, {"a", "bad", nil, true}}},
		{"edges are never banned", nil, []step{{"a", "edge", nil, false}, {"b", "edge", nil, false}, {"c", "edge", nil, false}}},
		{"reporter must be in the swarm", nil, []step{{"stranger", "bad", tracker.ErrNotMember, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newWorld(t, tc.mod)
			w.infra()
			ps := w.populate(alpha, 5)
			nodes := map[string]*node{"a": ps[0], "b": ps[1], "c": ps[2], "bad": ps[3], "bystander": ps[4], "edge": w.edges[0], "stranger": w.peer(peerAddr(beta, 0))}
			banned := false
			for i, s := range tc.steps {
				got, err := nodes[s.reporter].report(nodes[s.offender])
				if !errors.Is(err, s.wantErr) || got != s.wantBanned {
					t.Fatalf("step %d: %s reports %s = %v, %v; want %v, %v", i, s.reporter, s.offender, got, err, s.wantBanned, s.wantErr)
				}
				banned = banned || got
				if s.wantErr == nil {
					// The reporter never sees the offender again.
					if resp := nodes[s.reporter].mustAnnounce(tracker.AnnounceRequest{Left: 1}); contains(resp.Peers, nodes[s.offender].id) {
						t.Fatalf("step %d: %s still handed %s after reporting it", i, s.reporter, s.offender)
					}
				}
			}
			off := nodes[tc.steps[0].offender]
			resp := nodes["bystander"].mustAnnounce(tracker.AnnounceRequest{Left: 1})
			if contains(resp.Peers, off.id) == banned {
				t.Fatalf("bystander handed offender: %v; offender banned: %v", contains(resp.Peers, off.id), banned)
			}
			_, err := off.announce(tracker.AnnounceRequest{Left: 1})
			if banned != errors.Is(err, tracker.ErrBanned) {
				t.Fatalf("offender's announce = %v; banned %v", err, banned)
			}
			var te *tracker.Error
			if banned && (!errors.As(err, &te) || te.Status != http.StatusForbidden) {
				t.Fatalf("offender's announce = %v, want HTTP 403", err)
			}
			if st, _ := w.tr.SwarmStats(t.Context(), w.content); (st.Banned == 1) != banned {
				t.Fatalf("SwarmStats.Banned = %d, banned %v", st.Banned, banned)
			}
		})
	}
}

func TestReportRejects(t *testing.T) {
	w := newWorld(t, nil)
	key := identity.Generate()
	const remote = "10.1.0.1:1"
	body := func(over map[string]any) []byte {
		m := map[string]any{
			"content":   w.content.String(),
			"reporter":  identity.Self(key).String(),
			"offender":  identity.Self(identity.Generate()).String(),
			"reason":    "bad block",
			"timestamp": w.clock.Now(),
		}
		for k, v := range over {
			m[k] = v
		}
		b, _ := json.Marshal(m)
		return b
	}
	for _, tc := range []struct {
		name   string
		body   []byte
		status int
	}{
		{"self report", body(map[string]any{"offender": identity.Self(key).String()}), 400},
		{"bad offender", body(map[string]any{"offender": "00"}), 400},
		{"long reason", body(map[string]any{"reason": strings.Repeat("r", tracker.MaxReasonLen+1)}), 400},
		{"stale", body(map[string]any{"timestamp": w.clock.Now().Add(-time.Hour)}), 401},
		{"not a member", body(nil), 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := w.raw(tracker.ReportPath, tc.body, tracker.Sign(key, tracker.ReportPath, tc.body), remote)
			if rec.Code != tc.status {
				t.Fatalf("status = %d %s, want %d", rec.Code, rec.Body, tc.status)
			}
		})
	}
	t.Run("signed by someone else", func(t *testing.T) {
		b := body(nil)
		rec := w.raw(tracker.ReportPath, b, tracker.Sign(identity.Generate(), tracker.ReportPath, b), remote)
		if rec.Code != 401 {
			t.Fatalf("status = %d, want 401", rec.Code)
		}
	})
}

func TestStatsCountBytesOnce(t *testing.T) {
	w := newWorld(t, nil)
	w.infra()
	a, b := w.peer(peerAddr(alpha, 0)), w.peer(peerAddr(beta, 0))
	seed := w.peer(peerAddr(gamma, 0))
	seed.role = tracker.RoleSeed
	seed.mustAnnounce(tracker.AnnounceRequest{Event: tracker.EventStarted, Left: 0})
	a.mustAnnounce(tracker.AnnounceRequest{Event: tracker.EventStarted, Left: 100})
	b.mustAnnounce(tracker.AnnounceRequest{Event: tracker.EventStarted, Left: 100})
	// Cumulative counters: the tracker must add only the growth.
	a.mustAnnounce(tracker.AnnounceRequest{Left: 60, Bytes: tracker.Bytes{Downloaded: 40, FromOrigin: 10, FromPeers: 30, Uploaded: 5}})
	a.mustAnnounce(tracker.AnnounceRequest{Event: tracker.EventCompleted, Left: 0, Bytes: tracker.Bytes{Downloaded: 100, FromOrigin: 20, FromEdge: 10, FromPeers: 70, Uploaded: 50}})
	a.mustAnnounce(tracker.AnnounceRequest{Event: tracker.EventCompleted, Left: 0, Bytes: tracker.Bytes{Downloaded: 100, FromOrigin: 20, FromEdge: 10, FromPeers: 70, Uploaded: 80}})
	// b restarts: its counters go down and count whole.
	b.mustAnnounce(tracker.AnnounceRequest{Left: 90, Bytes: tracker.Bytes{Downloaded: 10, FromPeers: 10}})
	b.mustAnnounce(tracker.AnnounceRequest{Left: 95, Bytes: tracker.Bytes{Downloaded: 5, FromEdge: 5}})
	w.origin.mustAnnounce(tracker.AnnounceRequest{Bytes: tracker.Bytes{Uploaded: 20}})

	want := tracker.SwarmStats{
		Content: w.content, Size: 3, Seeds: 2, Origins: 1, Edges: 2, Completed: 1, Announces: 12,
		Bytes: tracker.Bytes{Uploaded: 100, Downloaded: 115, FromOrigin: 20, FromEdge: 15, FromPeers: 80},
	}
	got, err := w.tr.SwarmStats(t.Context(), w.content)
	if err != nil || got != want {
		t.Fatalf("SwarmStats = %+v, %v\nwant %+v", got, err, want)
	}

	t.Run("http", func(t *testing.T) {
		other := w.peer(peerAddr(delta, 0))
		other.mustAnnounce(tracker.AnnounceRequest{Content: [32]byte{1}, Left: 3})
		st, err := a.client.Stats(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Swarms) != 2 || st.Totals.Size != 4 || st.Totals.Announces != 13 || st.Counters.Announces != 13 {
			t.Fatalf("Stats = %d swarms, totals %+v, counters %+v; want 2 swarms, size 4, 13 announces", len(st.Swarms), st.Totals, st.Counters)
		}
		one, err := a.client.SwarmStats(t.Context(), w.content)
		if err != nil || one != want {
			t.Fatalf("Client.SwarmStats = %+v, %v\nwant %+v", one, err, want)
		}
		rec := httptest.NewRecorder()
		w.h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tracker.StatsPath+"?content=xyz", nil))
		if rec.Code != 400 {
			t.Fatalf("stats?content=xyz = %d, want 400", rec.Code)
		}
	})
}

func TestRateLimits(t *testing.T) {
	t.Run("per address", func(t *testing.T) {
		w := newWorld(t, func(c *tracker.Config) { c.AddrRate, c.AddrBurst = 1, 3 })
		for i := range 5 {
			n := w.peer("10.1.0.1")
			_, err := n.announce(tracker.AnnounceRequest{})
			var te *tracker.Error
			switch {
			case i < 3 && err != nil:
				t.Fatalf("request %d = %v, want nil (within burst)", i, err)
			case i >= 3 && (!errors.Is(err, tracker.ErrRateLimited) || !errors.As(err, &te) || te.Status != 429 || te.RetryAfter < time.Second):
				t.Fatalf("request %d = %v, want 429 with Retry-After", i, err)
			}
		}
		// Another address is not affected; time refills the bucket.
		if _, err := w.peer("10.1.0.2").announce(tracker.AnnounceRequest{}); err != nil {
			t.Fatalf("other address = %v", err)
		}
		w.clock.Add(time.Second)
		if _, err := w.peer("10.1.0.1").announce(tracker.AnnounceRequest{}); err != nil {
			t.Fatalf("after a second = %v", err)
		}
		if c := w.tr.Counters(); c.RateLimited != 2 {
			t.Fatalf("Counters.RateLimited = %d, want 2", c.RateLimited)
		}
	})
	t.Run("per peer", func(t *testing.T) {
		w := newWorld(t, func(c *tracker.Config) { c.PeerRate, c.PeerBurst = 1, 2 })
		n := w.peer("10.1.0.1")
		for i := range 3 {
			_, err := n.announce(tracker.AnnounceRequest{})
			if (i < 2) != (err == nil) || (i == 2 && !errors.Is(err, tracker.ErrRateLimited)) {
				t.Fatalf("request %d = %v", i, err)
			}
		}
		if _, err := w.peer("10.1.0.1").announce(tracker.AnnounceRequest{}); err != nil {
			t.Fatalf("other peer at the same address = %v", err)
		}
	})
}

func TestKnownContent(t *testing.T) {
	var known manifest.ID
	known[0] = 7
	w := newWorld(t, func(c *tracker.Config) {
		c.KnownContent = func(_ context.Context, id manifest.ID) (bool, error) { return id == known, nil }
	})
	n := w.peer("10.1.0.1")
	if _, err := n.announce(tracker.AnnounceRequest{}); !errors.Is(err, tracker.ErrUnknownContent) {
		t.Fatalf("unknown content = %v, want ErrUnknownContent", err)
	}
	if _, err := n.announce(tracker.AnnounceRequest{Content: known}); err != nil {
		t.Fatalf("known content = %v", err)
	}
}

func TestConfig(t *testing.T) {
	for _, tc := range []struct {
		name        string
		isp, region float64
		ok          bool
	}{
		{"defaults", 0, 0, true},
		{"no locality", -1, -1, true},
		{"only ISP", 0.8, -1, true},
		{"too little random", 0.7, 0.2, false},
		{"way too much", 2, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tracker.New(tracker.Config{ISPShare: tc.isp, RegionShare: tc.region})
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, tracker.ErrConfig)) {
				t.Fatalf("New(ISPShare %v, RegionShare %v) = %v, want ok %v", tc.isp, tc.region, err, tc.ok)
			}
		})
	}
}

func TestClientAdoptsTrackerClock(t *testing.T) {
	w := newWorld(t, nil)
	n := w.peer("10.1.0.1")
	skewed, err := tracker.NewClient(tracker.ClientConfig{
		URL:        "http://tracker.test/",
		Key:        n.key,
		HTTPClient: &http.Client{Transport: inProcess{w.h, "10.1.0.1:1"}},
		Now:        func() time.Time { return w.clock.Now().Add(-10 * time.Minute) },
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := skewed.Announce(t.Context(), tracker.AnnounceRequest{Content: w.content, Port: 1}); err != nil {
			t.Fatalf("announce %d with a clock 10 min slow = %v, want success after adopting the tracker's clock", i, err)
		}
	}
}

func TestNewClientValidates(t *testing.T) {
	key := identity.Generate()
	for _, tc := range []struct {
		url string
		key ed25519.PrivateKey
	}{{"", key}, {"ftp://x", key}, {"http://", key}, {"http://x", nil}, {"http://x", key[:10]}} {
		if _, err := tracker.NewClient(tracker.ClientConfig{URL: tc.url, Key: tc.key}); err == nil {
			t.Errorf("NewClient(%q, %d-byte key) = nil error", tc.url, len(tc.key))
		}
	}
}

func TestErrorStrings(t *testing.T) {
	e := &tracker.Error{Status: 403, Code: "banned", Message: "tracker: peer banned from swarm"}
	if got := e.Error(); got != "tracker: peer banned from swarm (HTTP 403)" {
		t.Errorf("Error() = %q", got)
	}
	if !errors.Is(e, tracker.ErrBanned) {
		t.Errorf("errors.Is(%v, ErrBanned) = false", e)
	}
	if errors.Is(&tracker.Error{Status: 500, Code: "weird"}, tracker.ErrBanned) {
		t.Errorf("unknown code matched ErrBanned")
	}
	_ = fmt.Sprint(&tracker.Error{Status: 502})
}
