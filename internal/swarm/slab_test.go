package swarm

import (
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"unsafe"
)

func TestGenSlabReuse(t *testing.T) {
	const size = 100 << 10
	s := newGenSlab(size)
	seen := map[*byte]bool{}
	var bufs [][]byte
	for range 3 * slabChunk / size {
		b := s.get()
		if len(b) != size || cap(b) != size {
			t.Fatalf("buffer of len %d cap %d, want %d", len(b), cap(b), size)
		}
		if seen[&b[0]] {
			t.Fatal("the same buffer handed out twice")
		}
		seen[&b[0]] = true
		bufs = append(bufs, b)
	}
	// Writing every buffer in full must not touch another: they do not overlap.
	for i, b := range bufs {
		for j := range b {
			b[j] = byte(i)
		}
	}
	for i, b := range bufs {
		for j := range b {
			if b[j] != byte(i) {
				t.Fatalf("buffer %d overwritten at %d", i, j)
			}
		}
	}
	s.put(bufs[5])
	s.put(make([]byte, 10)) // not the slab's size: ignored
	if b := s.get(); &b[0] != &bufs[5][0] {
		t.Error("a returned buffer was not handed out again")
	}
	if b := s.get(); seen[&b[0]] {
		t.Error("a buffer in use was handed out")
	}
	// A generation larger than a chunk gets a chunk of its own.
	big := newGenSlab(slabChunk + 1)
	if b := big.get(); len(b) != slabChunk+1 || len(big.rest) != 0 {
		t.Errorf("large buffer of %d bytes left %d carved ahead", len(b), len(big.rest))
	}
}

// TestHugeBytesFaults touches a fresh slab chunk and expects far fewer
// page faults than one per 4 KiB page, where the kernel grants huge pages
// on advice. It measures in a fresh process (this test binary run again):
// in this one, other tests have freed heap that the runtime would zero,
// page by page, before the advice is given.
func TestHugeBytesFaults(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("huge page advice is Linux only")
	}
	if raceEnabled {
		t.Skip("the race detector touches the memory itself (shadow pages)")
	}
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || strings.Contains(string(mode), "[never]") {
		t.Skipf("transparent huge pages are off here (%q)", strings.TrimSpace(string(mode)))
	}
	if os.Getenv("AVALANCHE_HUGE_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestHugeBytesFaults$", "-test.v")
		cmd.Env = append(os.Environ(), "AVALANCHE_HUGE_CHILD=1")
		out, err := cmd.CombinedOutput()
		t.Logf("fresh process:\n%s", out)
		if err != nil {
			t.Fatalf("fresh process: %v", err)
		}
		return
	}
	const n = 64 << 20
	before := minorFaults()
	b := hugeBytes(n)
	if p := uintptr(unsafe.Pointer(&b[0])); p%hugePage != 0 {
		t.Errorf("chunk at %#x is not huge-page aligned", p)
	}
	for i := 0; i < n; i += 4096 {
		b[i] = 1
	}
	faults := minorFaults() - before
	small := int64(n / 4096)
	t.Logf("touching %d MiB: %d faults (%d with small pages)", n>>20, faults, small)
	if faults > small/2 {
		t.Errorf("%d faults for %d MiB: huge page advice not taken", faults, n>>20)
	}
}

func minorFaults() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Minflt
}
