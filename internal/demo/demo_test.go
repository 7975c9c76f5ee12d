package demo

import (
	"encoding/json"
	"testing"
	"time"
)

// TestRun: a small demo completes, every copy verifies, and the JSON report
// carries the fields scripts rely on.
func TestRun(t *testing.T) {
	rep, err := Run(t.Context(), Config{Peers: 4, Size: 4 << 20, Upload: 4 << 20, Dir: t.TempDir(), Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Completed != 4 || rep.Verified != 4 {
		t.Errorf("completed %d, verified %d, want 4 and 4", rep.Completed, rep.Verified)
	}
	if rep.OriginEgressRatio <= 0 || rep.OriginEgressRatio >= 1.3 {
		t.Errorf("origin egress %.3f× the file, want in (0, 1.3)", rep.OriginEgressRatio)
	}
	if rep.P2PBytes == 0 || rep.AllDoneSeconds <= 0 || rep.LowerBoundSeconds <= 0 {
		t.Errorf("report %+v: want peer-to-peer bytes, a completion time and a bound", rep)
	}
	b, _ := json.Marshal(rep)
	var m map[string]any
	json.Unmarshal(b, &m)
	for _, k := range []string{"peers", "completed", "verified", "all_done_seconds", "lower_bound_seconds", "origin_egress_ratio", "p2p_bytes"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON report lacks %q", k)
		}
	}
}
