package swarm

import (
	"testing"
	"time"
)

// A seed past its cap serves one stuck downloader per generation at a time:
// the others wait urgentHold and get the dimensions from that one.
func TestUrgentTurn(t *testing.T) {
	s := &Swarm{}
	gen, other := &generation{}, &generation{}
	a, b := &conn{}, &conn{}
	if !s.urgentTurn(gen, a) {
		t.Fatal("first asker turned away")
	}
	if s.urgentTurn(gen, b) {
		t.Error("second asker served while the first holds the turn")
	}
	if !s.urgentTurn(gen, a) {
		t.Error("the asker holding the turn turned away")
	}
	if !s.urgentTurn(other, b) {
		t.Error("a turn on one generation held up another")
	}
	gen.urgentAt = time.Now().Add(-urgentHold - time.Millisecond)
	if !s.urgentTurn(gen, b) {
		t.Error("the turn did not pass on after urgentHold")
	}
}

// A neighbour whose offer held nothing new was judged against a span that
// included our pending wants; when those wants are given up, its offers
// are worth asking for again.
func TestGivenUpWantsReconsiderOffers(t *testing.T) {
	gen := &generation{blocks: 4}
	s := &Swarm{gens: []*generation{gen}, active: []int{0}}
	slow := &conn{pendingGens: map[int]int{0: 1}, late: map[int]int{}, wantsOut: 1}
	partial := &conn{useless: []bool{true}}
	s.conns = map[*conn]struct{}{slow: {}, partial: {}}
	gen.pending = []pendingWant{{c: slow, v: []byte{1, 0, 0, 0}, at: time.Now().Add(-time.Minute)}}
	gen.npending.Store(1)

	s.expireWants(time.Now())
	if len(gen.pending) != 0 || slow.wantsOut != 0 || slow.late[0] != 1 {
		t.Fatalf("want not given up: pending %d, wantsOut %d, late %d", len(gen.pending), slow.wantsOut, slow.late[0])
	}
	if partial.useless[0] {
		t.Error("the neighbour whose offer was judged against the given-up want is still marked useless")
	}
}
