package swarm

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

const hugePage = 2 << 20

// hugeBytes returns n bytes aligned to a huge page, advised for huge pages
// (MADV_HUGEPAGE: honoured when transparent huge pages are in "madvise" or
// "always" mode). The advice counts for memory not touched yet, as a
// growing heap's is: a first fault then maps 2 MiB at once instead of 512
// small pages. Heap memory the runtime reuses was already zeroed page by
// page and keeps its small pages.
func hugeBytes(n int) []byte {
	raw := make([]byte, n+hugePage)
	base := uintptr(unsafe.Pointer(unsafe.SliceData(raw)))
	skip := int((hugePage - base%hugePage) % hugePage)
	b := raw[skip : skip+n : skip+n]
	if whole := n &^ (hugePage - 1); whole > 0 {
		// Advice only: where it is refused, small pages serve as before.
		unix.Madvise(b[:whole], unix.MADV_HUGEPAGE)
	}
	return b
}
