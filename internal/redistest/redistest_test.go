package redistest

import (
	"context"
	"testing"
	"time"
)

func TestStartAndStop(t *testing.T) {
	var addr string
	t.Run("running", func(t *testing.T) {
		addr = Start(t)
		if err := ping(context.Background(), addr); err != nil {
			t.Fatalf("ping(%s) = %v, want nil", addr, err)
		}
	})
	if addr == "" {
		t.Skip("redis-server did not start")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := ping(ctx, addr); err == nil {
		t.Fatalf("ping(%s) after the test ended = nil, want an error (server still running)", addr)
	}
}

func TestTwoServersAreIndependent(t *testing.T) {
	a, b := Start(t), Start(t)
	if a == b {
		t.Fatalf("Start twice returned the same address %s", a)
	}
}
