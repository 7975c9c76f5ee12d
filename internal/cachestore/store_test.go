package cachestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// stores returns every Store implementation, each with budget bytes.
func stores(t testing.TB, budget int64) map[string]Store {
	disk := func() *Disk {
		d, err := OpenDisk(DiskConfig{Dir: t.TempDir(), Budget: budget})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	return map[string]Store{
		"memory":      NewMemory(MemoryConfig{Budget: budget}),
		"disk":        disk(),
		"tiered-mem":  NewTiered(TieredConfig{Memory: NewMemory(MemoryConfig{Budget: budget})}),
		"tiered-disk": NewTiered(TieredConfig{Memory: NewMemory(MemoryConfig{Budget: budget}), Disk: disk(), MemoryMaxObject: 64}),
	}
}

func body(t testing.TB, s Store, key string) []byte {
	t.Helper()
	o, ok := s.Get(key)
	if !ok {
		t.Fatalf("Get(%q) missing", key)
	}
	b, err := o.ReadAll()
	if err != nil {
		t.Fatalf("ReadAll(%q): %v", key, err)
	}
	return b[:o.Size]
}

func put(t testing.TB, s Store, it Item) {
	t.Helper()
	if err := s.Put(context.Background(), it); err != nil {
		t.Fatalf("Put(%q): %v", it.Key, err)
	}
}

// TestConformance runs one behavioural suite against every implementation.
func TestConformance(t *testing.T) {
	for name, s := range stores(t, 1<<20) {
		t.Run(name, func(t *testing.T) {
			defer s.Close()
			put(t, s, Item{Key: "a", Group: "p", Meta: []byte("m1"), Body: []byte("hello"), Tags: []string{"t1"}})
			if got := body(t, s, "a"); string(got) != "hello" {
				t.Errorf("body = %q, want hello", got)
			}
			o, _ := s.Get("a")
			if string(o.Meta) != "m1" || o.Group != "p" || o.Size != 5 {
				t.Errorf("Get = %+v", o)
			}
			put(t, s, Item{Key: "a", Group: "p", Meta: []byte("m2"), Body: []byte("bye")})
			if got := body(t, s, "a"); string(got) != "bye" {
				t.Errorf("replaced body = %q, want bye", got)
			}
			put(t, s, Item{Key: "a\x00s\x001", Group: "p", Body: []byte("slice")})
			put(t, s, Item{Key: "/x/1", Group: "p", Body: []byte("1"), Tags: []string{"t1"}})
			put(t, s, Item{Key: "/x/2", Group: "p", Body: []byte("2"), Tags: []string{"t2"}})
			put(t, s, Item{Key: "/x/3", Group: "q", Body: []byte("3"), Tags: []string{"t1"}})
			if n := s.DeleteFamily("a"); n != 2 {
				t.Errorf("DeleteFamily = %d, want 2", n)
			}
			if _, ok := s.Get("a\x00s\x001"); ok {
				t.Errorf("slice survived DeleteFamily")
			}
			if n := s.DeleteTag("p", "t1"); n != 1 {
				t.Errorf("DeleteTag(p,t1) = %d, want 1", n)
			}
			if _, ok := s.Get("/x/3"); !ok {
				t.Errorf("DeleteTag crossed groups")
			}
			keys := s.Keys("p", "/x/", 0)
			if len(keys) != 1 || keys[0] != "/x/2" {
				t.Errorf("Keys = %q", keys)
			}
			if n := s.DeletePrefix("q", "/x/"); n != 1 {
				t.Errorf("DeletePrefix = %d, want 1", n)
			}
			if !s.Delete("/x/2") || s.Delete("/x/2") {
				t.Errorf("Delete twice did not report present then absent")
			}
			if st := s.Stats(); st.Objects != 0 || st.Bytes != 0 {
				t.Errorf("Stats after deleting everything = %+v", st)
			}
			if err := s.Put(context.Background(), Item{Key: ""}); !errors.Is(err, ErrBadKey) {
				t.Errorf("Put(empty key) = %v, want ErrBadKey", err)
			}
		})
	}
}

func TestBudgets(t *testing.T) {
	// every object below costs its 100-byte body plus about 260 bytes of
	// key, metadata and overhead
	for name, s := range stores(t, 10000) {
		t.Run(name, func(t *testing.T) {
			s.SetGroupBudget("small", 1500)
			for i := 0; i < 10; i++ {
				put(t, s, Item{Key: fmt.Sprint("s", i), Group: "small", Body: make([]byte, 100)})
			}
			st := s.Stats()
			if st.Groups["small"] > 1500 {
				t.Errorf("group bytes %d over its budget 1500", st.Groups["small"])
			}
			for i := 0; i < 100; i++ {
				put(t, s, Item{Key: fmt.Sprint("b", i), Group: "big", Body: make([]byte, 100)})
			}
			if st := s.Stats(); st.Bytes > 10000 {
				t.Errorf("bytes %d over tier budget 10000", st.Bytes)
			}
			if err := s.Put(context.Background(), Item{Key: "huge", Group: "small", Body: make([]byte, 1400)}); !errors.Is(err, ErrTooLarge) {
				t.Errorf("Put over group budget = %v, want ErrTooLarge", err)
			}
		})
	}
}

// TestSieveKeepsHotObjects checks the eviction policy: an object read
// since the hand last passed survives a wave of one-hit insertions.
func TestSieveKeepsHotObjects(t *testing.T) {
	s := NewMemory(MemoryConfig{Budget: 4000})
	put(t, s, Item{Key: "hot", Body: make([]byte, 100)})
	for i := 0; i < 100; i++ {
		s.Get("hot")
		put(t, s, Item{Key: fmt.Sprint("cold", i), Body: make([]byte, 100)})
	}
	if _, ok := s.Get("hot"); !ok {
		t.Errorf("hot object evicted")
	}
	if st := s.Stats(); st.Evictions == 0 {
		t.Errorf("no evictions counted")
	}
}

func TestDiskReopen(t *testing.T) {
	dir := t.TempDir()
	d, err := OpenDisk(DiskConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	put(t, d, Item{Key: "k", Group: "g", Tags: []string{"x"}, Meta: []byte("meta"), Body: []byte("persisted")})
	put(t, d, Item{Key: "bad", Body: []byte("will be corrupted")})
	d.Close()
	// corrupt one body behind the store's back, and drop a stray temp file
	o, _ := d.Get("bad")
	f, err := os.OpenFile(o.path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("X"), 0)
	f.Close()
	os.WriteFile(filepath.Join(dir, "objects", "00", ".tmp-leftover"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(dir, "objects", "zz.obj"), []byte("short"), 0o644)

	d2, err := OpenDisk(DiskConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if got := body(t, d2, "k"); string(got) != "persisted" {
		t.Errorf("after reopen body = %q", got)
	}
	o2, _ := d2.Get("k")
	if string(o2.Meta) != "meta" || o2.Group != "g" || len(o2.Tags) != 1 {
		t.Errorf("after reopen object = %+v", o2)
	}
	ob, ok := d2.Get("bad")
	if !ok {
		t.Fatal("corrupted object not indexed (its trailer is intact)")
	}
	if _, err := ob.Open(); !errors.Is(err, ErrCorrupt) {
		t.Errorf("Open(corrupted) = %v, want ErrCorrupt", err)
	}
	if _, ok := d2.Get("bad"); ok {
		t.Errorf("corrupted object still indexed after failed verification")
	}
	if _, err := os.Stat(filepath.Join(dir, "objects", "00", ".tmp-leftover")); err == nil {
		t.Errorf("temp file of an interrupted write left behind")
	}
	if _, err := os.Stat(filepath.Join(dir, "objects", "zz.obj")); err == nil {
		t.Errorf("truncated object file kept")
	}
}

func TestTrailerRoundTrip(t *testing.T) {
	in := trailer{key: "k\x00s", group: "g", tags: []string{"a", "b"}, meta: []byte{1, 2, 3}, bodyLen: 42, bodyCRC: 7}
	out, err := decodeTrailer(encodeTrailer(in))
	if err != nil {
		t.Fatal(err)
	}
	if out.key != in.key || out.group != in.group || !bytes.Equal(out.meta, in.meta) || out.bodyLen != 42 || out.bodyCRC != 7 {
		t.Errorf("round trip = %+v, want %+v", out, in)
	}
	sort.Strings(out.tags)
	if len(out.tags) != 2 || out.tags[1] != "b" {
		t.Errorf("tags = %q", out.tags)
	}
}

// FuzzDecodeTrailer feeds arbitrary bytes to the on-disk trailer decoder.
func FuzzDecodeTrailer(f *testing.F) {
	f.Add(encodeTrailer(trailer{key: "k", group: "g", tags: []string{"t"}, meta: []byte("m"), bodyLen: 1}))
	f.Add([]byte("AVC1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := decodeTrailer(b)
		if err != nil {
			return
		}
		if _, err := decodeTrailer(encodeTrailer(tr)); err != nil {
			t.Fatalf("re-encoding a decoded trailer fails: %v", err)
		}
	})
}

func BenchmarkMemoryGet(b *testing.B) {
	s := NewMemory(MemoryConfig{})
	put(b, s, Item{Key: "k", Body: make([]byte, 1024)})
	b.SetBytes(1024)
	b.ReportAllocs()
	for b.Loop() {
		s.Get("k")
	}
}

func BenchmarkDiskPut(b *testing.B) {
	d, err := OpenDisk(DiskConfig{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 64<<10)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		put(b, d, Item{Key: fmt.Sprint("k", i%100), Body: body})
	}
}

func TestWriteBehind(t *testing.T) {
	dir := t.TempDir()
	d, err := OpenDisk(DiskConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	tr := NewTiered(TieredConfig{Memory: NewMemory(MemoryConfig{}), Disk: d, DiskWriters: 2})
	for i := 0; i < 200; i++ {
		put(t, tr, Item{Key: fmt.Sprint("k", i), Group: "g", Body: []byte("v")})
		if _, ok := tr.Get(fmt.Sprint("k", i)); !ok {
			t.Fatalf("object %d not readable right after Put", i)
		}
	}
	tr.Delete("k7")
	tr.DeleteFamily("k8")
	tr.Close()
	d2, err := OpenDisk(DiskConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if st := d2.Stats(); st.Objects != 198 {
		t.Errorf("after Close and reopen: %d objects on disk, want 198", st.Objects)
	}
	if _, ok := d2.Get("k7"); ok {
		t.Errorf("deleted object written behind")
	}
}
