//go:build !linux

package codingbench

import "time"

// threadClock returns the wall-clock time: other systems get no per-thread
// CPU clock here.
func threadClock() time.Duration { return time.Duration(time.Now().UnixNano()) }

// clockName says what threadClock measures, for the table's header.
const clockName = "wall-clock time"
