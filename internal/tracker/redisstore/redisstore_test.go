package redisstore_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/redis/go-redis/v9"

	"avalanche/internal/redistest"
	"avalanche/internal/tracker"
	"avalanche/internal/tracker/redisstore"
	"avalanche/internal/tracker/storetest"
)

// newClient starts a redis-server for t and returns a client for it.
func newClient(t *testing.T) *redis.Client {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: redistest.Start(t)})
	t.Cleanup(func() { rdb.Close() })
	return rdb
}

// randomPrefix keeps subtests sharing one server apart.
func randomPrefix() string {
	b := make([]byte, 6)
	rand.Read(b)
	return "test:" + hex.EncodeToString(b) + ":"
}

func TestConformance(t *testing.T) {
	rdb := newClient(t)
	storetest.Run(t, func(t *testing.T) tracker.Store {
		s, err := redisstore.New(redisstore.Config{Client: rdb, Prefix: randomPrefix()})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestNewNeedsClient(t *testing.T) {
	if _, err := redisstore.New(redisstore.Config{}); err == nil {
		t.Fatal("New(no client) = nil error, want an error")
	}
}

func TestPingFailsWhenRedisIsGone(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1", MaxRetries: -1})
	defer rdb.Close()
	s, err := redisstore.New(redisstore.Config{Client: rdb})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(context.Background()); err == nil {
		t.Fatal("Ping(no server) = nil, want an error")
	}
}
