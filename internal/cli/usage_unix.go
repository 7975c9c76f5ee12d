//go:build unix

package cli

import "syscall"

// processUsage returns this process's resource usage so far, as JSON
// fields: CPU seconds in user and kernel mode, minor page faults, and
// voluntary and involuntary context switches.
func processUsage() map[string]any {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return nil
	}
	secs := func(tv syscall.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }
	return map[string]any{
		"cpu_user_seconds": secs(ru.Utime), "cpu_sys_seconds": secs(ru.Stime),
		"minor_faults": ru.Minflt, "voluntary_switches": ru.Nvcsw, "involuntary_switches": ru.Nivcsw,
	}
}
