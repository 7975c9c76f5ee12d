//go:build !linux

package codingbench

import "time"

var clockStart = time.Now()

// threadClock returns the time elapsed on the wall clock; other systems
// get no per-thread CPU clock here.
func threadClock() time.Duration { return time.Since(clockStart) }

// clockName says what threadClock measures, for the table's header.
const clockName = "wall-clock time"
