package tracker_test

import (
	"bytes"
	"crypto/ed25519"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"avalanche/internal/redistest"
	"avalanche/internal/tracker"
	"avalanche/internal/tracker/redisstore"
	"avalanche/internal/tracker/storetest"
)

// BenchmarkAnnounce measures whole announces through the HTTP handler
// (decode, signature check, store, counters, hand-out of 30 peers plus
// infrastructure, encode) in a swarm of 1,000 peers in four ISPs, with
// requests pre-signed outside the timer. announces/s is per process with
// all GOMAXPROCS busy.
func BenchmarkAnnounce(b *testing.B) {
	for _, tc := range []struct {
		name  string
		store func(b *testing.B) tracker.Store
	}{
		{"memory", func(*testing.B) tracker.Store { return tracker.NewMemory(tracker.MemoryConfig{}) }},
		{"redis", func(b *testing.B) tracker.Store {
			rdb := redis.NewClient(&redis.Options{Addr: redistest.Start(b)})
			b.Cleanup(func() { rdb.Close() })
			s, err := redisstore.New(redisstore.Config{Client: rdb})
			if err != nil {
				b.Fatal(err)
			}
			return s
		}},
	} {
		b.Run(tc.name, func(b *testing.B) { benchAnnounce(b, tc.store(b)) })
	}
}

func benchAnnounce(b *testing.B, store tracker.Store) {
	w := newWorld(b, func(c *tracker.Config) { c.Store = store })
	w.infra()
	var nodes []*node
	for _, isp := range []int{alpha, beta, gamma, delta} {
		nodes = append(nodes, w.populate(isp, 250)...)
	}
	// One signed body per iteration; timestamps increase per peer.
	bodies := make([][]byte, b.N)
	sigs := make([]string, b.N)
	remotes := make([]string, b.N)
	for i := range b.N {
		n := nodes[i%len(nodes)]
		bodies[i] = w.announceBody(n.key, map[string]any{
			"event":      "progress",
			"left":       1000 - i%1000,
			"from_peers": i,
			"timestamp":  storetest.T0.Add(time.Duration(i+1) * time.Microsecond),
		})
		sigs[i] = tracker.Sign(n.key, tracker.AnnouncePath, bodies[i])
		remotes[i] = n.ip + ":4000"
	}
	var next atomic.Int64
	var failed atomic.Int64
	b.SetBytes(int64(len(bodies[0])))
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1) - 1
			r := httptest.NewRequest(http.MethodPost, tracker.AnnouncePath, bytes.NewReader(bodies[i]))
			r.RemoteAddr = remotes[i]
			r.Header.Set(tracker.SignatureHeader, sigs[i])
			rec := httptest.NewRecorder()
			w.h.ServeHTTP(rec, r)
			if rec.Code != http.StatusOK {
				failed.Add(1)
			}
		}
	})
	elapsed := time.Since(start)
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d of %d announces failed", n, b.N)
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "announces/s")
}

// BenchmarkVerify is the floor under BenchmarkAnnounce: one ed25519
// signature check of an announce-sized message.
func BenchmarkVerify(b *testing.B) {
	w := newWorld(b, nil)
	n := w.peer(peerAddr(alpha, 0))
	msg := w.announceBody(n.key, nil)
	sig := ed25519.Sign(n.key, msg)
	pub := n.key.Public().(ed25519.PublicKey)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("bad signature")
		}
	}
}
