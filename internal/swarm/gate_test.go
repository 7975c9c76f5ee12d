package swarm

import (
	"context"
	"testing"
	"time"
)

// TestGateQueuesPastBudget: within the budget blocks pass at once; past
// it writers wait and are let through in order as the poller sees room.
func TestGateQueuesPastBudget(t *testing.T) {
	g := newUpGate(25 * time.Millisecond)
	if g == nil {
		t.Skip("no TCP_INFO on this platform: the gate is off")
	}
	const block = 32 << 10
	// No links: the budget is the floor, 64 KiB, and nothing is in flight
	// as far as the links tell.
	for i := 0; i < 2; i++ {
		if !g.ready(block) {
			t.Fatalf("block %d within the budget was held back", i)
		}
	}
	if g.ready(block) {
		t.Fatal("a block past the budget went through at once")
	}
	// Waiters ask for the whole floor, so that each poll lets one through:
	// two let through together would race each other to report.
	order := make(chan int, 3)
	ctx := context.Background()
	for i := 0; i < 3; i++ {
		go func() {
			if err := g.wait(ctx, 2*block); err != nil {
				t.Error(err)
			}
			order <- i
		}()
		time.Sleep(2 * time.Millisecond) // queue them in this order
	}
	for want := 0; want < 3; want++ {
		select {
		case got := <-order:
			if got != want {
				t.Errorf("waiter %d went through as number %d", got, want)
			}
		case <-time.After(2 * time.Second):
			t.Fatal("waiters were never let through")
		}
	}
}
