//go:build !amd64 || purego

package gf256

const useDotKernel = false

func dotGFNI(uint64, []byte, []byte) byte { panic("gf256: no dot kernel") }
