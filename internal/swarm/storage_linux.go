package swarm

import (
	"io"
	"os"
	"syscall"
	"unsafe"
)

// rawFile reads and writes an *os.File with raw pread and pwrite calls,
// inside the file's Control, which keeps the descriptor from being closed
// (and its number reused) under the call.
type rawFile struct {
	rc syscall.RawConn
}

func newRawFile(f *os.File) rawFile {
	if unsafe.Sizeof(uintptr(0)) < 8 {
		return rawFile{} // the offset would take two registers
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return rawFile{}
	}
	return rawFile{rc: rc}
}

func (f rawFile) ok() bool { return f.rc != nil }

func (f rawFile) pread(p []byte, off int64) error {
	return f.do(syscall.SYS_PREAD64, p, off)
}

func (f rawFile) pwrite(p []byte, off int64) error {
	return f.do(syscall.SYS_PWRITE64, p, off)
}

func (f rawFile) do(call uintptr, p []byte, off int64) error {
	var err error
	cerr := f.rc.Control(func(fd uintptr) {
		for done := 0; done < len(p); {
			n, _, e := syscall.RawSyscall6(call, fd, uintptr(unsafe.Pointer(&p[done])), uintptr(len(p)-done), uintptr(off+int64(done)), 0, 0)
			switch {
			case e == syscall.EINTR:
				continue
			case e != 0:
				op := "pread"
				if call == syscall.SYS_PWRITE64 {
					op = "pwrite"
				}
				err = os.NewSyscallError(op, e)
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
