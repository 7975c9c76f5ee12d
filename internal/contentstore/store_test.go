package contentstore

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"avalanche/internal/manifest"
)

const (
	testK  = 2
	testBS = 1024
	testGS = testK * testBS
)

func testKey() ed25519.PrivateKey {
	return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
}

func randBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func testManifest(t testing.TB, property string, data []byte) *manifest.Manifest {
	t.Helper()
	m, err := manifest.FromReader(bytes.NewReader(data), testK, testBS, property, "file.bin", time.Unix(1700000000, 0))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Sign(testKey()); err != nil {
		t.Fatal(err)
	}
	return m
}

func openStore(t testing.TB, dir string) *Store {
	t.Helper()
	s, err := Open(context.Background(), Config{Dir: dir})
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	return s
}

func readAll(t testing.TB, c *Content) []byte {
	t.Helper()
	b, err := io.ReadAll(c.NewReader())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// tmpFiles lists what is in the store's tmp/ directory.
func tmpFiles(t testing.TB, s *Store) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(s.Dir(), "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestUploadAndOpen(t *testing.T) {
	for _, size := range []int{0, 1, testBS, testGS - 1, testGS, testGS + 1, 3*testGS + 17} {
		t.Run("", func(t *testing.T) {
			s := openStore(t, t.TempDir())
			data := randBytes(uint64(size), size)
			m := testManifest(t, "devtools", data)
			if created, err := s.PutManifest(m, 0); err != nil || !created {
				t.Fatalf("PutManifest = %v, %v; want true, nil", created, err)
			}
			if _, err := s.Open(m.ID()); !errors.Is(err, ErrIncomplete) {
				t.Fatalf("Open before upload: err = %v, want ErrIncomplete", err)
			}
			if created, err := s.Upload(context.Background(), m.ID(), bytes.NewReader(data)); err != nil || !created {
				t.Fatalf("Upload = %v, %v; want true, nil", created, err)
			}
			c, err := s.Open(m.ID())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if got := readAll(t, c); !bytes.Equal(got, data) {
				t.Fatalf("size %d: stored bytes differ", size)
			}
			// Re-publishing is idempotent and does not read the body.
			if created, err := s.PutManifest(m, 0); err != nil || created {
				t.Errorf("second PutManifest = %v, %v; want false, nil", created, err)
			}
			if created, err := s.Upload(context.Background(), m.ID(), iotest.ErrReader(errors.New("must not read"))); err != nil || created {
				t.Errorf("second Upload = %v, %v; want false, nil", created, err)
			}
			if e, _, err := s.Stat(m.ID()); err != nil || !e.Complete || e.Size != int64(size) || e.Stored.IsZero() {
				t.Errorf("Stat = %+v, %v", e, err)
			}
			// A reopened store serves the same content.
			s.Close()
			s2 := openStore(t, s.Dir())
			c2, err := s2.Open(m.ID())
			if err != nil {
				t.Fatalf("after reopen: %v", err)
			}
			defer c2.Close()
			if got := readAll(t, c2); !bytes.Equal(got, data) {
				t.Fatalf("after reopen: stored bytes differ")
			}
		})
	}
}

func corrupt(data []byte, at int) []byte {
	b := bytes.Clone(data)
	b[at] ^= 0x40
	return b
}

func TestUploadRejected(t *testing.T) {
	data := randBytes(1, 3*testGS+100)
	for _, tc := range []struct {
		name   string
		body   io.Reader
		want   error
		wantIn string
	}{
		{"short", bytes.NewReader(data[:len(data)-1]), ErrTooShort, ""},
		{"empty", bytes.NewReader(nil), ErrTooShort, ""},
		{"long", bytes.NewReader(append(bytes.Clone(data), 0)), ErrTooLong, ""},
		{"much longer", io.MultiReader(bytes.NewReader(data), bytes.NewReader(data)), ErrTooLong, ""},
		{"corrupt first generation", bytes.NewReader(corrupt(data, 5)), ErrHashMismatch, "generation 0"},
		{"corrupt middle generation", bytes.NewReader(corrupt(data, testGS+testGS/2)), ErrHashMismatch, "generation 1"},
		{"corrupt last byte", bytes.NewReader(corrupt(data, len(data)-1)), ErrHashMismatch, "generation 3"},
		{"cut off mid-stream", io.MultiReader(bytes.NewReader(data[:testGS+5]), iotest.ErrReader(io.ErrUnexpectedEOF)), io.ErrUnexpectedEOF, "reading upload"},
		{"swapped generations", bytes.NewReader(append(append(bytes.Clone(data[testGS:2*testGS]), data[:testGS]...), data[2*testGS:]...)), ErrHashMismatch, "generation 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, t.TempDir())
			m := testManifest(t, "devtools", data)
			if _, err := s.PutManifest(m, 0); err != nil {
				t.Fatal(err)
			}
			_, err := s.Upload(context.Background(), m.ID(), tc.body)
			if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.wantIn) {
				t.Fatalf("Upload: err = %v, want %v containing %q", err, tc.want, tc.wantIn)
			}
			if _, err := s.Open(m.ID()); !errors.Is(err, ErrIncomplete) {
				t.Errorf("Open after failed upload: err = %v, want ErrIncomplete", err)
			}
			if f := tmpFiles(t, s); len(f) != 0 {
				t.Errorf("tmp/ holds %v after a failed upload", f)
			}
			if _, err := os.Stat(s.dataPath(m.ID())); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("data file exists after a failed upload: %v", err)
			}
			// The right bytes are accepted afterwards.
			if _, err := s.Upload(context.Background(), m.ID(), bytes.NewReader(data)); err != nil {
				t.Errorf("Upload of the right bytes after a failure: %v", err)
			}
		})
	}
}

func TestUploadUnknown(t *testing.T) {
	s := openStore(t, t.TempDir())
	m := testManifest(t, "devtools", []byte("x"))
	if _, err := s.Upload(context.Background(), m.ID(), strings.NewReader("x")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Upload without manifest: err = %v, want ErrNotFound", err)
	}
}

// blockingReader returns its first chunk, then blocks until release is
// closed, then reports an error.
type blockingReader struct {
	first   []byte
	started chan struct{}
	release chan struct{}
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if b.first != nil {
		n := copy(p, b.first)
		b.first = b.first[n:]
		if len(b.first) == 0 {
			b.first = nil
			close(b.started)
		}
		return n, nil
	}
	<-b.release
	return 0, io.ErrUnexpectedEOF
}

func TestConcurrentUploadAndDelete(t *testing.T) {
	s := openStore(t, t.TempDir())
	data := randBytes(2, 2*testGS)
	m := testManifest(t, "devtools", data)
	if _, err := s.PutManifest(m, 0); err != nil {
		t.Fatal(err)
	}
	br := &blockingReader{first: data[:10], started: make(chan struct{}), release: make(chan struct{})}
	done := make(chan error, 1)
	go func() {
		_, err := s.Upload(context.Background(), m.ID(), br)
		done <- err
	}()
	<-br.started
	if _, err := s.Upload(context.Background(), m.ID(), bytes.NewReader(data)); !errors.Is(err, ErrBusy) {
		t.Errorf("second concurrent Upload: err = %v, want ErrBusy", err)
	}
	if err := s.Delete(m.ID()); err != nil {
		t.Fatalf("Delete during upload: %v", err)
	}
	close(br.release)
	if err := <-done; err == nil {
		t.Fatal("upload of deleted content succeeded")
	}
	if _, err := s.Open(m.ID()); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open after delete: err = %v, want ErrNotFound", err)
	}
	if f := tmpFiles(t, s); len(f) != 0 {
		t.Errorf("tmp/ holds %v", f)
	}
}

func TestDeleteWhileReading(t *testing.T) {
	s := openStore(t, t.TempDir())
	data := randBytes(3, testGS+3)
	m := testManifest(t, "devtools", data)
	s.PutManifest(m, 0)
	if _, err := s.Upload(context.Background(), m.ID(), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	c, err := s.Open(m.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := s.Delete(m.ID()); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, c); !bytes.Equal(got, data) {
		t.Error("an open Content stopped reading after Delete")
	}
	if err := s.Delete(m.ID()); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Delete: err = %v, want ErrNotFound", err)
	}
	if u := s.Usage("devtools"); u != (Usage{}) {
		t.Errorf("Usage after delete = %+v, want zero", u)
	}
	if l := s.List(""); len(l) != 0 {
		t.Errorf("List after delete = %v", l)
	}
}

func TestQuota(t *testing.T) {
	s := openStore(t, t.TempDir())
	a := testManifest(t, "devtools", randBytes(4, 1000))
	b := testManifest(t, "devtools", randBytes(5, 1000))
	other := testManifest(t, "games", randBytes(6, 1000))
	quota := a.Size + int64(len(a.Encoded())) + 500
	if _, err := s.PutManifest(a, quota); err != nil {
		t.Fatalf("first manifest within quota: %v", err)
	}
	if _, err := s.PutManifest(b, quota); !errors.Is(err, ErrQuota) {
		t.Fatalf("second manifest over quota: err = %v, want ErrQuota", err)
	}
	if _, err := s.PutManifest(other, quota); err != nil {
		t.Fatalf("another property's quota is separate: %v", err)
	}
	if err := s.Delete(a.ID()); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutManifest(b, quota); err != nil {
		t.Fatalf("after delete, within quota again: %v", err)
	}
	if got := s.List("devtools"); len(got) != 1 || got[0].ID != b.ID() {
		t.Errorf("List(devtools) = %+v", got)
	}
}

// TestReopenCleansUp simulates what a crash can leave behind and what
// damage can appear on disk, then checks that Open presents only verified
// objects.
func TestReopenCleansUp(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	good := randBytes(10, testGS+1)
	mGood := testManifest(t, "devtools", good)
	short := randBytes(11, testGS)
	mShort := testManifest(t, "devtools", short)
	pending := randBytes(12, 10)
	mPending := testManifest(t, "devtools", pending)
	for _, m := range []*manifest.Manifest{mGood, mShort, mPending} {
		if _, err := s.PutManifest(m, 0); err != nil {
			t.Fatal(err)
		}
	}
	s.Upload(context.Background(), mGood.ID(), bytes.NewReader(good))
	s.Upload(context.Background(), mShort.ID(), bytes.NewReader(short))
	s.Close()

	// A crash mid-upload: a partial file in tmp/.
	os.WriteFile(filepath.Join(dir, "tmp", mPending.ID().String()+".123.part"), pending[:3], 0o644)
	// A crash mid-manifest-write: an atomicfile temporary.
	os.WriteFile(filepath.Join(s.shardDir(mPending.ID()), "."+mPending.ID().String()+".manifest.tmp999"), []byte("AVMF"), 0o644)
	// Damage: a truncated data file, data without manifest, a garbage
	// manifest, a manifest under the wrong name, a stray file.
	os.Truncate(s.dataPath(mShort.ID()), testGS-1)
	orphan := testManifest(t, "devtools", []byte("orphan"))
	os.MkdirAll(s.shardDir(orphan.ID()), 0o755)
	os.WriteFile(s.dataPath(orphan.ID()), []byte("orphan"), 0o644)
	garbage := testManifest(t, "devtools", []byte("garbage"))
	os.MkdirAll(s.shardDir(garbage.ID()), 0o755)
	os.WriteFile(s.manifestPath(garbage.ID()), []byte("AVMF garbage"), 0o644)
	renamed := testManifest(t, "devtools", []byte("renamed"))
	os.MkdirAll(s.shardDir(renamed.ID()), 0o755)
	os.WriteFile(s.manifestPath(renamed.ID()), mGood.Encoded(), 0o644)
	os.WriteFile(filepath.Join(dir, "objects", "README"), []byte("hi"), 0o644)

	s2 := openStore(t, dir)
	if f := tmpFiles(t, s2); len(f) != 0 {
		t.Errorf("tmp/ holds %v after reopen", f)
	}
	if _, err := os.Stat(filepath.Join(s.shardDir(mPending.ID()), "."+mPending.ID().String()+".manifest.tmp999")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("manifest temporary survived reopen: %v", err)
	}
	c, err := s2.Open(mGood.ID())
	if err != nil {
		t.Fatalf("good object lost: %v", err)
	}
	if !bytes.Equal(readAll(t, c), good) {
		t.Error("good object changed")
	}
	c.Close()
	for _, tc := range []struct {
		name string
		id   manifest.ID
		want error
	}{
		{"truncated data", mShort.ID(), ErrIncomplete},
		{"pending", mPending.ID(), ErrIncomplete},
		{"orphan data", orphan.ID(), ErrNotFound},
		{"garbage manifest", garbage.ID(), ErrNotFound},
		{"manifest under wrong name", renamed.ID(), ErrNotFound},
	} {
		if _, err := s2.Open(tc.id); !errors.Is(err, tc.want) {
			t.Errorf("%s: Open err = %v, want %v", tc.name, err, tc.want)
		}
	}
	q, _ := os.ReadDir(filepath.Join(dir, "quarantine"))
	if len(q) != 5 {
		var names []string
		for _, e := range q {
			names = append(names, e.Name())
		}
		t.Errorf("quarantine holds %d files %v, want 5", len(q), names)
	}
	if got := len(s2.List("")); got != 3 {
		t.Errorf("List has %d objects, want 3", got)
	}
	// The truncated object can be uploaded again.
	if _, err := s2.Upload(context.Background(), mShort.ID(), bytes.NewReader(short)); err != nil {
		t.Errorf("re-upload after quarantine: %v", err)
	}
}

func TestVerify(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	data := randBytes(20, 2*testGS)
	m := testManifest(t, "devtools", data)
	s.PutManifest(m, 0)
	if _, err := s.Upload(context.Background(), m.ID(), bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(context.Background(), m.ID()); err != nil {
		t.Fatalf("Verify of intact data: %v", err)
	}
	s.Close()
	// Bit rot: same size, one byte changed.
	f, err := os.OpenFile(s.dataPath(m.ID()), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte{data[testGS+1] ^ 1}, testGS+1)
	f.Close()

	s2, err := Open(context.Background(), Config{Dir: dir, VerifyOnOpen: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s2.Open(m.ID()); !errors.Is(err, ErrIncomplete) {
		t.Errorf("Open of rotten data: err = %v, want ErrIncomplete", err)
	}
	if err := s2.Verify(context.Background(), m.ID()); !errors.Is(err, ErrIncomplete) {
		t.Errorf("Verify after quarantine: err = %v, want ErrIncomplete", err)
	}
}

func TestOpenRefusesForeignDir(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "precious.txt"), []byte("x"), 0o644)
	if _, err := Open(context.Background(), Config{Dir: dir}); !errors.Is(err, ErrNotStore) {
		t.Fatalf("Open of a non-empty foreign directory: err = %v, want ErrNotStore", err)
	}
	if _, err := Open(context.Background(), Config{}); err == nil {
		t.Fatal("Open without a directory succeeded")
	}
}

func TestClosed(t *testing.T) {
	s := openStore(t, t.TempDir())
	m := testManifest(t, "devtools", []byte("abc"))
	s.Close()
	if _, err := s.PutManifest(m, 0); !errors.Is(err, ErrClosed) {
		t.Errorf("PutManifest after Close: %v", err)
	}
	if _, err := s.Open(m.ID()); !errors.Is(err, ErrClosed) {
		t.Errorf("Open after Close: %v", err)
	}
}

// FuzzUpload feeds arbitrary bytes as the upload of a known manifest: the
// store must commit exactly the right bytes and nothing else.
func FuzzUpload(f *testing.F) {
	data := randBytes(30, testGS+100)
	f.Add(data)
	f.Add(data[:len(data)-1])
	f.Add(append(bytes.Clone(data), 1))
	f.Add(corrupt(data, 0))
	f.Add(corrupt(data, len(data)-1))
	f.Add([]byte{})
	key := testKey()
	m, err := manifest.FromReader(bytes.NewReader(data), testK, testBS, "devtools", "file.bin", time.Unix(1700000000, 0))
	if err != nil {
		f.Fatal(err)
	}
	m.Sign(key)
	f.Fuzz(func(t *testing.T, body []byte) {
		s := openStore(t, t.TempDir())
		s.PutManifest(m, 0)
		created, err := s.Upload(context.Background(), m.ID(), iotest.HalfReader(bytes.NewReader(body)))
		ok := bytes.Equal(body, data)
		if ok != (err == nil) || ok != created {
			t.Fatalf("Upload = %v, %v for a body that matches: %v", created, err, ok)
		}
		c, err := s.Open(m.ID())
		if ok != (err == nil) {
			t.Fatalf("Open: %v, want success %v", err, ok)
		}
		if err == nil {
			defer c.Close()
			if !bytes.Equal(readAll(t, c), data) {
				t.Fatal("committed bytes differ")
			}
		}
		if f := tmpFiles(t, s); len(f) != 0 {
			t.Fatalf("tmp/ holds %v", f)
		}
	})
}

// FuzzLoad writes arbitrary bytes as a stored manifest and reopens the
// store: it must not fail or crash, and must present the object only if
// the bytes are the valid manifest of that content ID.
func FuzzLoad(f *testing.F) {
	valid := testManifest(f, "devtools", randBytes(40, 100))
	f.Add(valid.Encoded())
	f.Add(valid.Encoded()[:len(valid.Encoded())-1])
	f.Add([]byte("AVMF"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		dir := t.TempDir()
		s := openStore(t, dir)
		s.Close()
		os.MkdirAll(s.shardDir(valid.ID()), 0o755)
		os.WriteFile(s.manifestPath(valid.ID()), b, 0o644)
		s2 := openStore(t, dir)
		_, _, err := s2.Stat(valid.ID())
		if want := bytes.Equal(b, valid.Encoded()); want != (err == nil) {
			t.Fatalf("Stat: %v, want present = %v", err, want)
		}
	})
}
