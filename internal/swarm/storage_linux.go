package swarm

import (
	"errors"
	"io"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawFile reads and writes an *os.File with raw system calls, inside the
// file's Control, which keeps the descriptor from being closed (and its
// number reused) under the call. Reads ask the kernel not to wait for the
// disk (RWF_NOWAIT): one that would is done with an ordinary call instead
// (errWouldBlock). Where the kernel or the file system does not take that
// flag, reads are raw only on file systems whose pages are memory (tmpfs,
// ramfs), and ordinary calls elsewhere (NFS, FUSE and the like may wait).
type rawFile struct {
	rc   syscall.RawConn
	mode *atomic.Int32 // readNowait, readPlain or readOrdinary
}

// How reads are done.
const (
	readNowait   = iota // preadv2 with RWF_NOWAIT
	readPlain           // pread: the file's pages are memory
	readOrdinary        // the ordinary call, through os.File
)

func newRawFile(f *os.File) rawFile {
	if unsafe.Sizeof(uintptr(0)) < 8 {
		return rawFile{} // the offset would take two registers
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return rawFile{}
	}
	return rawFile{rc: rc, mode: new(atomic.Int32)}
}

func (f rawFile) ok() bool { return f.rc != nil }

func (f rawFile) pread(p []byte, off int64) error {
	switch f.mode.Load() {
	case readNowait:
		err := f.do(unix.SYS_PREADV2, p, off, unix.RWF_NOWAIT)
		switch {
		case errors.Is(err, syscall.EAGAIN):
			return errWouldBlock
		case errors.Is(err, syscall.EOPNOTSUPP), errors.Is(err, syscall.ENOSYS),
			errors.Is(err, syscall.EINVAL), errors.Is(err, syscall.EPERM):
			// Not this file system, not this kernel (before 4.14), or
			// a seccomp filter: decide once how to read from now on.
			mode := int32(readOrdinary)
			if f.inMemory() {
				mode = readPlain
			}
			f.mode.Store(mode)
			return f.pread(p, off)
		}
		return err
	case readPlain:
		return f.do(syscall.SYS_PREAD64, p, off, 0)
	}
	return errWouldBlock
}

// inMemory reports whether the file lives on tmpfs or ramfs.
func (f rawFile) inMemory() bool {
	var st unix.Statfs_t
	var err error
	if cerr := f.rc.Control(func(fd uintptr) { err = unix.Fstatfs(int(fd), &st) }); cerr != nil || err != nil {
		return false
	}
	return st.Type == unix.TMPFS_MAGIC || st.Type == unix.RAMFS_MAGIC
}

func (f rawFile) pwrite(p []byte, off int64) error {
	return f.do(syscall.SYS_PWRITE64, p, off, 0)
}

// do runs call until all of p is transferred. A vectored call (preadv2)
// gets one iovec and flags.
func (f rawFile) do(call uintptr, p []byte, off int64, flags int) error {
	var err error
	cerr := f.rc.Control(func(fd uintptr) {
		for done := 0; done < len(p); {
			var n uintptr
			var e syscall.Errno
			if call == unix.SYS_PREADV2 {
				iov := unix.Iovec{Base: &p[done]}
				iov.SetLen(len(p) - done)
				n, _, e = syscall.RawSyscall6(call, fd, uintptr(unsafe.Pointer(&iov)), 1, uintptr(off+int64(done)), 0, uintptr(flags))
			} else {
				n, _, e = syscall.RawSyscall6(call, fd, uintptr(unsafe.Pointer(&p[done])), uintptr(len(p)-done), uintptr(off+int64(done)), 0, 0)
			}
			switch {
			case e == syscall.EINTR:
				continue
			case e != 0:
				err = os.NewSyscallError(callName(call), e)
				return
			case n == 0 && call == syscall.SYS_PWRITE64:
				err = io.ErrShortWrite
				return
			case n == 0:
				err = io.ErrUnexpectedEOF // reading past the end
				return
			}
			done += int(n)
		}
	})
	if cerr != nil {
		return cerr
	}
	return err
}

func callName(call uintptr) string {
	switch call {
	case syscall.SYS_PWRITE64:
		return "pwrite"
	case unix.SYS_PREADV2:
		return "preadv2"
	}
	return "pread"
}
