//go:build purego

package gf256

func mulSlice(c byte, in, out []byte)    { mulSliceGeneric(c, in, out) }
func mulAddSlice(c byte, in, out []byte) { mulAddSliceGeneric(c, in, out) }
