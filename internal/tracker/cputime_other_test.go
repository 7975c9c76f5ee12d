//go:build !unix

package tracker_test

import "time"

func cpuTime() (time.Duration, bool) { return 0, false }
