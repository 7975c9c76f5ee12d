package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"avalanche/internal/client"
)

// openPTY returns the two ends of a new pseudo-terminal (Linux), or skips.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	var unlock int32
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		m.Close()
		t.Skipf("unlockpt: %v", e)
	}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, m.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		m.Close()
		t.Skipf("ptsname: %v", e)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		t.Skipf("open pts: %v", err)
	}
	t.Cleanup(func() { s.Close(); m.Close() })
	return m, s
}

var halfway = client.Progress{
	Name: "build.bin", Size: 64 << 20, Done: 32 << 20, Rank: 1024, Blocks: 2048, Rate: 3 << 20,
	ETA: 11 * time.Second, Peers: 7, FromPeers: 24 << 20, FromOrigin: 8 << 20,
}

// TestProgressOutput: a bar on a terminal (percent, speed, ETA, peers,
// bytes from peers vs origin/edge), plain lines otherwise, JSON with --json.
func TestProgressOutput(t *testing.T) {
	t.Run("terminal", func(t *testing.T) {
		master, slave := openPTY(t)
		p := newProgressPrinter(slave, false)
		p.print(halfway)
		p.finish()
		buf := make([]byte, 4096)
		master.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, _ := master.Read(buf)
		out := string(buf[:n])
		for _, want := range []string{"\r\033[K", "█", " 50.0%", "3.0 MiB/s", "ETA 11s", "peers 7", "from peers 24.0 MiB", "origin/edge 8.0 MiB"} {
			if !strings.Contains(out, want) {
				t.Errorf("terminal output %q lacks %q", out, want)
			}
		}
	})
	t.Run("plain", func(t *testing.T) {
		var b bytes.Buffer
		p := newProgressPrinter(&b, false)
		p.print(halfway)
		p.print(halfway) // within 5 s: not repeated
		out := b.String()
		if strings.ContainsAny(out, "\r\033") || strings.Count(out, "\n") != 1 {
			t.Errorf("plain output %q, want one line without terminal controls", out)
		}
		for _, want := range []string{"build.bin", " 50.0%", "peers=7", "from_peers=24.0 MiB", "from_origin=8.0 MiB"} {
			if !strings.Contains(out, want) {
				t.Errorf("plain output %q lacks %q", out, want)
			}
		}
	})
	t.Run("json", func(t *testing.T) {
		var b bytes.Buffer
		p := newProgressPrinter(&b, true)
		p.print(halfway)
		var m map[string]any
		if err := json.Unmarshal(b.Bytes(), &m); err != nil {
			t.Fatalf("JSON output %q: %v", b.String(), err)
		}
		if m["event"] != "progress" || m["percent"] != 50.0 || m["peers"] != 7.0 || m["eta_seconds"] != 11.0 || m["from_peers"] != float64(24<<20) {
			t.Errorf("JSON progress = %v", m)
		}
	})
}
