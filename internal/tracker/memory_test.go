package tracker_test

import (
	"testing"

	"avalanche/internal/tracker"
	"avalanche/internal/tracker/storetest"
)

func TestMemoryConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) tracker.Store { return tracker.NewMemory(tracker.MemoryConfig{}) })
}
