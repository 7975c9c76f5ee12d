//go:build !linux

package swarm

func hugeBytes(n int) []byte { return make([]byte, n) }
