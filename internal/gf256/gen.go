package gf256

//go:generate go run gen_asm.go
