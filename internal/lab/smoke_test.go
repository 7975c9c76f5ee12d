package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs the smoke scenario (4 leechers, 16 MiB, Avalanche and
// aria2, one repetition) through the real command on real namespaces, and
// checks that every leecher of both systems finished. Timings are not
// checked: go test runs other packages' tests beside it.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("smoke lab: skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("smoke lab: needs root (network namespaces, veth links, tc)")
	}
	if miss := Missing([]string{SystemAvalanche, SystemAria2}); len(miss) > 0 {
		t.Skipf("smoke lab: missing %v; scripts/install-test-deps.sh installs them", miss)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var probe bytes.Buffer
	if code, err := Isolate(ctx, "/bin/sh", []string{"-c", "ip link set lo up"}, nil, nil, &probe, &probe); err != nil || code != 0 {
		t.Skipf("smoke lab: cannot create network namespaces here (%v, exit %d): %s", err, code, probe.String())
	}
	bin := filepath.Join(t.TempDir(), "avalanche")
	build := exec.CommandContext(ctx, filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "avalanche/cmd/avalanche")
	build.Env = append(os.Environ(), "CGO_ENABLED=0") // as docs/benchmarks.md builds it
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "lab", "--scenario", "smoke", "--reps", "1", "--json", "--out", "", "--idle-wait", "-1s", "--retries", "0")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if strings.Contains(stderr.String(), "another lab run holds") {
		t.Skipf("smoke lab: %s", strings.TrimSpace(stderr.String()))
	}
	t.Logf("lab log:\n%s", stderr.String())
	if err != nil {
		t.Fatalf("avalanche lab: %v", err)
	}
	got := map[string]Summary{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var s Summary
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatalf("bad JSON line %q: %v", sc.Text(), err)
		}
		got[s.System] = s
	}
	for _, sys := range []string{SystemAvalanche, SystemAria2} {
		s, ok := got[sys]
		switch {
		case !ok:
			t.Errorf("no record for %s in:\n%s", sys, stdout.String())
		case s.Completed != 4 || s.AllDoneSeconds == nil:
			t.Errorf("%s: %d of 4 leechers done (all done %v); errors %v", sys, s.Completed, s.AllDoneSeconds, s.Errors)
		case s.SeedAppRatio == nil || *s.SeedAppRatio < 0.95:
			t.Errorf("%s: seed's own upload counter %v: want about 1× the file or more", sys, s.SeedAppRatio)
		case s.SeedEgressRatio < 0.95:
			t.Errorf("%s: seed egress %.3f× the file: the counters missed traffic", sys, s.SeedEgressRatio)
		default:
			t.Logf("%s: all done in %.1f s (%.2f× the bound), seed egress %.3f×", sys, *s.AllDoneSeconds, *s.RatioToBound, s.SeedEgressRatio)
		}
	}
}
