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
