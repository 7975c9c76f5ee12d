//go:build race

package swarm

// raceEnabled: the race detector changes how memory is mapped and touched.
const raceEnabled = true
