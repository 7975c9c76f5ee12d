package swarm

import (
	"errors"
	"io"
	"os"
	"sync/atomic"
	"time"
)

// storage is where a swarm's content lives: generations it holds are read
// from it, and a downloader writes into it what it receives. For an
// *os.File on Linux the reads and writes are raw system calls (see
// rawPread): like the socket I/O of sockConn, they do not tell the Go
// scheduler they may block, so they neither wake the runtime's monitor
// thread nor hand the engine's P to another thread. The page cache takes
// them at memory speed; a write that does block (a slow disk throttling
// writers) would hold up the whole engine, so a call that takes longer
// than slowIO turns the raw calls off for good.
type storage struct {
	r   io.ReaderAt // nil: nothing to read from
	w   io.WriterAt // nil: a source, which writes nothing
	raw rawFile     // the file behind r and w, when both are one *os.File
	// slow is set once a raw call took longer than slowIO.
	slow atomic.Bool
}

// slowIO is the longest a raw file call may take before raw calls are
// turned off.
const slowIO = 2 * time.Millisecond

func newStorage(r io.ReaderAt, w io.WriterAt) *storage {
	st := &storage{r: r, w: w}
	if f, ok := r.(*os.File); ok && (w == nil || w == io.WriterAt(f)) {
		st.raw = newRawFile(f)
	}
	return st
}

// readBack reports whether what is written can be read back: a downloader
// may then keep source blocks in storage rather than in memory.
func (st *storage) readBack() bool {
	if st.w == nil {
		return false
	}
	if st.raw.ok() {
		return true
	}
	r, ok := st.w.(io.ReaderAt)
	return ok && r == st.r
}

// readAt reads len(p) bytes at off; short reads (the end of the content)
// are errors.
func (st *storage) readAt(p []byte, off int64) error {
	if len(p) == 0 {
		return nil
	}
	if st.raw.ok() && !st.slow.Load() {
		t := time.Now()
		err := st.raw.pread(p, off)
		if time.Since(t) > slowIO {
			st.slow.Store(true)
		}
		return err
	}
	if st.r == nil {
		return errors.New("swarm: no storage to read from")
	}
	n, err := st.r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// writeAt writes p at off.
func (st *storage) writeAt(p []byte, off int64) error {
	if len(p) == 0 {
		return nil
	}
	if st.raw.ok() && !st.slow.Load() {
		t := time.Now()
		err := st.raw.pwrite(p, off)
		if time.Since(t) > slowIO {
			st.slow.Store(true)
		}
		return err
	}
	_, err := st.w.WriteAt(p, off)
	return err
}
