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
// rawFile): like the socket I/O of sockConn, they do not tell the Go
// scheduler they may block, so they neither wake the runtime's monitor
// thread nor hand the engine's P to another thread. In the swarm lab, the
// ordinary calls each woke that thread, which then polled every 20 µs for
// a millisecond: two thirds of all context switches. The page cache takes
// raw calls at memory speed. A read that would wait for the disk is done
// with an ordinary call instead (RWF_NOWAIT where the file system takes
// it; elsewhere raw reads only on tmpfs and ramfs); a write held up by a
// slow disk holds up the engine meanwhile, so storage that keeps doing
// that — slowCalls calls over slowIO — is read and written with ordinary
// calls from then on. Time on the clock is a coarse
// test (a call whose thread was preempted is slow too, and on a busy
// machine that may take tens of milliseconds), hence the generous limits.
type storage struct {
	r   io.ReaderAt // nil: nothing to read from
	w   io.WriterAt // nil: a source, which writes nothing
	raw rawFile     // the file behind r and w, when both are one *os.File
	log func(msg string, args ...any)

	slowSeen atomic.Int32
	slow     atomic.Bool // raw calls are off
}

// errWouldBlock says a raw read was not done: it would have waited for
// the disk, or the file is read with ordinary calls.
var errWouldBlock = errors.New("swarm: read would block")

// Raw calls are turned off after slowCalls of them took over slowIO each.
const (
	slowIO    = 200 * time.Millisecond
	slowCalls = 8
)

func newStorage(r io.ReaderAt, w io.WriterAt, log func(string, ...any)) *storage {
	st := &storage{r: r, w: w, log: log}
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

// rawOK reports whether raw calls are in use.
func (st *storage) rawOK() bool { return st.raw.ok() && !st.slow.Load() }

// timed runs a raw call and counts it if it was slow.
func (st *storage) timed(call func() error) error {
	t := time.Now()
	err := call()
	if d := time.Since(t); d > slowIO && st.slowSeen.Add(1) == slowCalls {
		st.slow.Store(true)
		if st.log != nil {
			st.log("storage is slow: reading and writing it with ordinary system calls from now on", "last_call", d)
		}
	}
	return err
}

// readAt reads len(p) bytes at off; short reads (the end of the content)
// are errors.
func (st *storage) readAt(p []byte, off int64) error {
	if len(p) == 0 {
		return nil
	}
	if st.rawOK() {
		err := st.timed(func() error { return st.raw.pread(p, off) })
		if !errors.Is(err, errWouldBlock) {
			return err
		}
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
	if st.rawOK() {
		return st.timed(func() error { return st.raw.pwrite(p, off) })
	}
	_, err := st.w.WriteAt(p, off)
	return err
}
