package cli

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
)

// startProfiles starts a CPU profile written to cpuPath and returns a
// function that stops it and writes a heap profile (allocations since
// start) to memPath; empty paths skip either, and "%p" in a path stands
// for the process ID. For digging into runs such as the swarm lab's
// (--get-flags "-cpuprofile /tmp/prof/cpu-%p.pprof").
func startProfiles(cpuPath, memPath string) (stop func(), err error) {
	pid := strconv.Itoa(os.Getpid())
	cpuPath = strings.ReplaceAll(cpuPath, "%p", pid)
	memPath = strings.ReplaceAll(memPath, "%p", pid)
	var cpu *os.File
	if cpuPath != "" {
		if cpu, err = os.Create(cpuPath); err != nil {
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
		if err := pprof.StartCPUProfile(cpu); err != nil {
			cpu.Close()
			return nil, fmt.Errorf("cpu profile: %w", err)
		}
	}
	return func() {
		if cpu != nil {
			pprof.StopCPUProfile()
			cpu.Close()
		}
		if memPath != "" {
			if f, err := os.Create(memPath); err == nil {
				runtime.GC()
				pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}
	}, nil
}
