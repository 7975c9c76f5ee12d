package cli

import (
	"context"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"avalanche/internal/manifest"
	"avalanche/internal/testnet"
)

// BenchmarkGetRSS downloads a large file (4 GiB; AVALANCHE_RSS_SIZE
// overrides, e.g. 512M) with `avalanche get` in a child process from an
// in-process origin and reports the child's peak resident set size. The
// issue's budget is 64 MiB plus two generations per generation slot.
//
//	go test -run '^$' -bench GetRSS -benchtime 1x ./internal/cli
func BenchmarkGetRSS(b *testing.B) {
	size := int64(4 << 30)
	if s := os.Getenv("AVALANCHE_RSS_SIZE"); s != "" {
		n, err := parseSize(s)
		if err != nil {
			b.Fatal(err)
		}
		size = n
	}
	dir := b.TempDir()
	net, err := testnet.Start(context.Background(), testnet.Config{Dir: filepath.Join(dir, "net")})
	if err != nil {
		b.Fatal(err)
	}
	defer net.Close()
	// A generated file, published from disk.
	src := filepath.Join(dir, "big.bin")
	f, err := os.Create(src)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := io.CopyN(f, rand.NewChaCha8([32]byte{42}), size); err != nil {
		b.Fatal(err)
	}
	f.Close()
	m, err := publishFile(net, src)
	if err != nil {
		b.Fatal(err)
	}
	os.Remove(src)
	const slots = 8
	b.SetBytes(size)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		out := filepath.Join(dir, "out"+strconv.Itoa(i))
		os.MkdirAll(out, 0o755)
		cmd := exec.Command(os.Args[0], "get", m.ID().String(), "--origin", net.OriginURL, "--tracker", net.TrackerURL,
			"-o", out, "--listen", "127.0.0.1:0", "-q", "--slots", strconv.Itoa(slots))
		cmd.Env = append(os.Environ(), "AVALANCHE_CLI_CHILD=1", "AVALANCHE_HOME="+filepath.Join(dir, "home"))
		cmd.Stderr = os.Stderr
		start := time.Now()
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		el := time.Since(start)
		rss := float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / 1024 // KiB → MiB
		// Complete sources may open twice the slots (see swarm.pick).
		budget := 64 + float64(2*slots*2*m.GenerationSize())/(1<<20)
		b.ReportMetric(rss, "MiB-peak-rss")
		b.ReportMetric(budget, "MiB-budget")
		b.Logf("%s in %v: peak RSS %.1f MiB (budget %.0f MiB = 64 MiB + 2 generations × %d slots)",
			humanBytes(float64(size)), el.Round(time.Millisecond), rss, budget, 2*slots)
		os.RemoveAll(out)
	}
}

// publishFile publishes the file at path on the test network.
func publishFile(net *testnet.Net, path string) (*manifest.Manifest, error) {
	return net.PublishFile(context.Background(), path, 64, 32<<10)
}
