package traffic_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"avalanche/internal/redistest"
	"avalanche/internal/traffic"
	"avalanche/internal/traffic/traffictest"
)

// storeSuite is the conformance suite every Store passes.
func storeSuite(t *testing.T, newStore func(t *testing.T) traffic.Store) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Millisecond)

	t.Run("edges", func(t *testing.T) {
		s := newStore(t)
		es := traffictest.Edges()
		for _, e := range es[:3] {
			if err := s.PutEdge(ctx, traffic.EdgeRecord{Edge: e, Seen: now}); err != nil {
				t.Fatal(err)
			}
		}
		e := es[0]
		e.Load.CPU = 0.5
		if err := s.PutEdge(ctx, traffic.EdgeRecord{Edge: e, Seen: now.Add(time.Second)}); err != nil {
			t.Fatal(err)
		}
		got, err := s.Edges(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sort.Slice(got, func(i, j int) bool { return got[i].Edge.ID < got[j].Edge.ID })
		if len(got) != 3 || got[0].Edge.ID != "dub-1" || got[0].Edge.Load.CPU != 0.5 || !got[0].Seen.Equal(now.Add(time.Second)) {
			t.Fatalf("Edges = %+v", got)
		}
		if got[0].Edge.CostPerGB != 0.02 || len(got[2].Edge.CostSchedule) != 1 || got[2].Edge.Addrs[0] != es[2].Addrs[0] {
			t.Errorf("round trip lost fields: %+v", got)
		}
		if err := s.PutFlag(ctx, "dub-1", traffic.Flag{Drained: true, Reason: "x", At: now}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutVote(ctx, traffic.Vote{Edge: "dub-1", Prober: "a", At: now}); err != nil {
			t.Fatal(err)
		}
		if err := s.PutVote(ctx, traffic.Vote{Edge: "dub-2", Prober: "a", At: now}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteEdge(ctx, "dub-1"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteEdge(ctx, "never-was"); err != nil {
			t.Errorf("DeleteEdge(unknown) = %v", err)
		}
		got, _ = s.Edges(ctx)
		flags, _ := s.Flags(ctx)
		votes, _ := s.Votes(ctx)
		if len(got) != 2 || len(flags) != 0 || len(votes) != 1 || votes[0].Edge != "dub-2" {
			t.Errorf("after DeleteEdge: %d edges, flags %v, votes %v", len(got), flags, votes)
		}
	})

	t.Run("flags", func(t *testing.T) {
		s := newStore(t)
		f := traffic.Flag{Drained: true, Reason: "ddos", At: now}
		if err := s.PutFlag(ctx, "e", f); err != nil {
			t.Fatal(err)
		}
		got, err := s.Flags(ctx)
		if err != nil || len(got) != 1 || !got["e"].Drained || got["e"].Reason != "ddos" || !got["e"].At.Equal(now) {
			t.Fatalf("Flags = %v, %v", got, err)
		}
		if err := s.PutFlag(ctx, "e", traffic.Flag{}); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Flags(ctx); len(got) != 0 {
			t.Errorf("after clearing: %v", got)
		}
	})

	t.Run("votes", func(t *testing.T) {
		s := newStore(t)
		for i, v := range []traffic.Vote{
			{Edge: "e", Prober: "a", Healthy: true, At: now},
			{Edge: "e", Prober: "b", Healthy: true, At: now},
			{Edge: "e", Prober: "a", Healthy: false, At: now.Add(time.Second), RTT: time.Millisecond, Detail: "refused"},
		} {
			if err := s.PutVote(ctx, v); err != nil {
				t.Fatalf("vote %d: %v", i, err)
			}
		}
		got, err := s.Votes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		sort.Slice(got, func(i, j int) bool { return got[i].Prober < got[j].Prober })
		if len(got) != 2 || got[0].Healthy || got[0].Detail != "refused" || got[0].RTT != time.Millisecond || !got[1].Healthy {
			t.Fatalf("Votes = %+v; want a's second vote to replace its first", got)
		}
		if err := s.DeleteVote(ctx, "e", "a"); err != nil {
			t.Fatal(err)
		}
		if got, _ := s.Votes(ctx); len(got) != 1 || got[0].Prober != "b" {
			t.Errorf("after DeleteVote: %+v", got)
		}
	})

	t.Run("policies", func(t *testing.T) {
		s := newStore(t)
		if err := s.PutPolicy(ctx, "a", []byte(`{"name":"a"}`)); err != nil {
			t.Fatal(err)
		}
		if err := s.PutPolicy(ctx, "b", []byte(`{"name":"b"}`)); err != nil {
			t.Fatal(err)
		}
		if err := s.PutPolicy(ctx, "a", []byte(`{"name":"a","ttl_seconds":5}`)); err != nil {
			t.Fatal(err)
		}
		if err := s.DeletePolicy(ctx, "b"); err != nil {
			t.Fatal(err)
		}
		if err := s.DeletePolicy(ctx, "zzz"); err != nil {
			t.Errorf("DeletePolicy(unknown) = %v", err)
		}
		got, err := s.Policies(ctx)
		if err != nil || len(got) != 1 || string(got["a"]) != `{"name":"a","ttl_seconds":5}` {
			t.Errorf("Policies = %q, %v", got, err)
		}
		v1, err := s.PolicyVersion(ctx)
		if err != nil || v1 == 0 {
			t.Fatalf("PolicyVersion = %d, %v after four changes", v1, err)
		}
		if v, _ := s.PolicyVersion(ctx); v != v1 {
			t.Errorf("PolicyVersion moved without a change: %d then %d", v1, v)
		}
		s.PutPolicy(ctx, "c", []byte(`{"name":"c"}`))
		if v, _ := s.PolicyVersion(ctx); v == v1 {
			t.Errorf("PolicyVersion did not move after PutPolicy")
		}
	})

	t.Run("sticky", func(t *testing.T) {
		s := newStore(t)
		check := func(what, got string, err error, want string) {
			t.Helper()
			if err != nil || got != want {
				t.Fatalf("%s = %q, %v; want %q", what, got, err, want)
			}
		}
		got, err := s.Stick(ctx, "p|10.0.0.0/24", "e1", time.Minute)
		check("first Stick", got, err, "e1")
		got, err = s.Stick(ctx, "p|10.0.0.0/24", "e2", time.Minute)
		check("second Stick", got, err, "e1")
		got, err = s.Restick(ctx, "p|10.0.0.0/24", "e9", "e2", time.Minute)
		check("Restick with a wrong old", got, err, "e1")
		got, err = s.Restick(ctx, "p|10.0.0.0/24", "e1", "e2", time.Minute)
		check("Restick", got, err, "e2")
		got, err = s.Restick(ctx, "p|10.9.0.0/24", "e1", "e3", time.Minute)
		check("Restick of an unbound key", got, err, "e3")
		// Short lifetimes expire (real time: Redis keeps its own clock).
		got, err = s.Stick(ctx, "short", "e1", 50*time.Millisecond)
		check("Stick short", got, err, "e1")
		time.Sleep(120 * time.Millisecond)
		got, err = s.Stick(ctx, "short", "e2", time.Minute)
		check("Stick after expiry", got, err, "e2")
	})

	t.Run("concurrent", func(t *testing.T) {
		s := newStore(t)
		errs := make(chan error, 8)
		for g := range 8 {
			go func() {
				var err error
				for i := range 50 {
					if err == nil {
						err = s.PutVote(ctx, traffic.Vote{Edge: fmt.Sprint("e", i%5), Prober: fmt.Sprint("p", g), At: now})
					}
					if err == nil {
						_, err = s.Stick(ctx, fmt.Sprint("k", i%7), fmt.Sprint("e", g), time.Minute)
					}
				}
				errs <- err
			}()
		}
		for range 8 {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if votes, _ := s.Votes(ctx); len(votes) != 40 {
			t.Errorf("%d votes, want 40", len(votes))
		}
	})
}

func TestMemStore(t *testing.T) {
	storeSuite(t, func(*testing.T) traffic.Store { return traffic.NewMemStore() })
}

func TestMemStoreStickyBound(t *testing.T) {
	s := traffic.NewMemStore()
	s.MaxSticky = 10
	ctx := context.Background()
	for i := range 100 {
		if _, err := s.Stick(ctx, fmt.Sprint(i), "e", time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	// Past the bound new keys are answered but not remembered.
	if got, _ := s.Stick(ctx, "99", "other", time.Minute); got != "other" {
		t.Errorf("key past the bound was remembered: %q", got)
	}
	if got, _ := s.Stick(ctx, "0", "other", time.Minute); got != "e" {
		t.Errorf("early key forgotten: %q", got)
	}
}

func TestRedisStore(t *testing.T) {
	addr := redistest.Start(t)
	n := 0
	storeSuite(t, func(t *testing.T) traffic.Store {
		n++
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		t.Cleanup(func() { rdb.Close() })
		// A fresh prefix per subtest keeps them apart in one Redis.
		return traffic.NewRedisStore(rdb, fmt.Sprintf("test%d:", n))
	})
}
