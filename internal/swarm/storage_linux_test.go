package swarm

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRawFileModes reads and writes a file through storage in each of the
// raw file's read modes, on the test's temporary directory and on tmpfs.
func TestRawFileModes(t *testing.T) {
	data := randomData(3<<16+123, 11)
	dirs := map[string]string{"tempdir": t.TempDir()}
	if shm, err := os.MkdirTemp("/dev/shm", "swarm-test"); err == nil {
		t.Cleanup(func() { os.RemoveAll(shm) })
		dirs["tmpfs"] = shm
	}
	for name, dir := range dirs {
		for _, mode := range []int32{readNowait, readPlain, readOrdinary} {
			f, err := os.Create(filepath.Join(dir, "out"))
			if err != nil {
				t.Fatal(err)
			}
			st := newStorage(f, f, nil)
			if !st.rawOK() {
				t.Fatalf("%s: no raw calls on an *os.File", name)
			}
			st.raw.mode.Store(mode)
			if err := st.writeAt(data, 0); err != nil {
				t.Fatalf("%s mode %d: write: %v", name, mode, err)
			}
			got := make([]byte, len(data)-1000)
			if err := st.readAt(got, 1000); err != nil {
				t.Fatalf("%s mode %d: read: %v", name, mode, err)
			}
			if !bytes.Equal(got, data[1000:]) {
				t.Fatalf("%s mode %d: read back other bytes", name, mode)
			}
			if err := st.readAt(make([]byte, 10), int64(len(data)-5)); err == nil {
				t.Fatalf("%s mode %d: a read past the end succeeded", name, mode)
			}
			var sfs unix.Statfs_t
			if err := unix.Statfs(dir, &sfs); err == nil {
				mem := sfs.Type == unix.TMPFS_MAGIC || sfs.Type == unix.RAMFS_MAGIC
				if st.raw.inMemory() != mem {
					t.Fatalf("%s: inMemory %v, statfs says %v", name, !mem, mem)
				}
				if mode == readNowait && st.raw.mode.Load() == readOrdinary && mem {
					t.Fatalf("%s: reads of a memory file system fell back to ordinary calls", name)
				}
			}
			f.Close()
		}
	}
}
