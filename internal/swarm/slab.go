package swarm

import "sync"

// genSlab hands out buffers of one generation's padded size (K blocks),
// for decoders' rows and the serving cache, carved from chunks of about
// slabChunk bytes and taken back for reuse. A chunk lives as
// long as any buffer of it is referenced; the slab never gives memory
// back by itself, so a swarm holds at most its peak of generations in
// flight plus cached.
//
// Why chunks: a downloader fills tens of megabytes of fresh memory with
// decoded rows early on, one 4 KiB page fault at a time. Chunks are
// allocated with the kernel's advice to back them with huge pages where
// it can (see hugeBytes), which took first touch of 256 MiB on the lab
// machine from 0.65 s (65,583 faults) to 0.30 s.
type genSlab struct {
	size int // bytes per buffer

	mu   sync.Mutex
	free [][]byte
	rest []byte // the current chunk's uncarved part
}

// slabChunk is the size of a chunk: four huge pages, eight of the usual
// 1 MiB generations. Larger generations get a chunk each, so that a slab
// never reserves more than one buffer ahead of need.
const slabChunk = 8 << 20

func newGenSlab(size int) *genSlab { return &genSlab{size: size} }

// get returns a buffer of s.size bytes, of unspecified content.
func (s *genSlab) get() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.free); n > 0 {
		b := s.free[n-1]
		s.free[n-1] = nil
		s.free = s.free[:n-1]
		return b
	}
	if len(s.rest) < s.size {
		s.rest = hugeBytes(max(1, slabChunk/s.size) * s.size)
	}
	b := s.rest[:s.size:s.size]
	s.rest = s.rest[s.size:]
	return b
}

// put takes back a buffer get returned; its holder must not use it again.
// Other buffers (a short last generation's) are left to the collector.
func (s *genSlab) put(b []byte) {
	if cap(b) != s.size {
		return
	}
	s.mu.Lock()
	s.free = append(s.free, b[:s.size])
	s.mu.Unlock()
}
