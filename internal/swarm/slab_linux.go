package swarm

import (
	"syscall"
	"unsafe"
)

const hugePage = 2 << 20

// hugeBytes returns n bytes of fresh memory, asking the kernel to back
// its whole huge pages with huge pages (MADV_HUGEPAGE: honoured when
// transparent huge pages are in "madvise" or "always" mode). The advice
// is given before anything touches the memory: a fault then maps a 2 MiB
// page at once instead of 512 small ones.
func hugeBytes(n int) []byte {
	raw := make([]byte, n+hugePage)
	base := uintptr(unsafe.Pointer(unsafe.SliceData(raw)))
	skip := int((hugePage - base%hugePage) % hugePage)
	b := raw[skip : skip+n : skip+n]
	if whole := n &^ (hugePage - 1); whole > 0 {
		// Advice only: where it is refused, small pages serve as before.
		syscall.Syscall(syscall.SYS_MADVISE, base+uintptr(skip), uintptr(whole), syscall.MADV_HUGEPAGE)
	}
	return b
}
