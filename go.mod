module avalanche

go 1.26.8

require (
	github.com/klauspost/reedsolomon v1.14.2
	golang.org/x/sys v0.30.0
)

require (
	github.com/klauspost/cpuid/v2 v2.3.0 // indirect
	golang.org/x/time v0.16.0 // indirect
)
