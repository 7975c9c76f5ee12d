package swarm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"avalanche/internal/identity"
	"avalanche/internal/rlnc"
)

// writeOnly is storage that cannot be read back: decoders keep payloads.
type writeOnly struct{ f *memFile }

func (w writeOnly) WriteAt(p []byte, off int64) (int, error) { return w.f.WriteAt(p, off) }

// TestDecoderModes feeds a generation's decoder source blocks and coded
// blocks in several orders, over storage of each kind, and checks what a
// user would: the generation comes out whole, source blocks go straight to
// storage while nothing else arrived (direct mode), and what the decoder
// serves meanwhile is the right combination of the source.
func TestDecoderModes(t *testing.T) {
	const k, bs = 8, 1024
	data := randomData(k*bs*2-300, 7) // two generations, the last one short
	m := testManifest(t, data, k, bs)
	node, err := NewNode(context.Background(), NodeConfig{Key: identity.Generate()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { node.Close() })

	type store struct {
		name   string
		open   func(t *testing.T) (io.ReaderAt, io.WriterAt)
		direct bool
	}
	stores := []store{
		{"memory", func(*testing.T) (io.ReaderAt, io.WriterAt) {
			f := &memFile{b: make([]byte, len(data))}
			return f, f
		}, true},
		{"file", func(t *testing.T) (io.ReaderAt, io.WriterAt) {
			f, err := os.Create(filepath.Join(t.TempDir(), "out"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			if err := f.Truncate(int64(len(data))); err != nil {
				t.Fatal(err)
			}
			return f, f
		}, true},
		{"tmpfs", func(t *testing.T) (io.ReaderAt, io.WriterAt) {
			dir, err := os.MkdirTemp("/dev/shm", "swarm-test")
			if err != nil {
				t.Skipf("no tmpfs at /dev/shm: %v", err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			f, err := os.Create(filepath.Join(dir, "out"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { f.Close() })
			if err := f.Truncate(int64(len(data))); err != nil {
				t.Fatal(err)
			}
			return f, f
		}, true},
		{"write-only", func(*testing.T) (io.ReaderAt, io.WriterAt) {
			return nil, writeOnly{&memFile{b: make([]byte, len(data))}}
		}, false},
	}
	// Patterns: which blocks arrive as units (u) and which coded (c), in order.
	patterns := []string{"uuuuuuuu", "uuucuccc", "cccccccc", "ucucucuc"}

	for _, st := range stores {
		for _, pat := range patterns {
			for g := range 2 {
				t.Run(st.name+"/"+pat+"/gen"+string(rune('0'+g)), func(t *testing.T) {
					r, w := st.open(t)
					s, err := newSwarm(node, Config{Manifest: m, Data: r, Out: w})
					if err != nil {
						t.Fatal(err)
					}
					if _, isFile := r.(*os.File); isFile && runtime.GOOS == "linux" && !s.store.raw.ok() {
						t.Fatal("a file on Linux is not read and written with raw calls")
					}
					gen := s.gens[g]
					src := make([]byte, gen.blocks*bs)
					copy(src, data[gen.off:gen.off+int64(gen.size)])
					enc, err := rlnc.NewEncoder(s.params(), src[:gen.size], nil)
					if err != nil {
						t.Fatal(err)
					}
					rng := rand.New(rand.NewPCG(uint64(g), 9))
					gen.mu.Lock()
					defer gen.mu.Unlock()
					d := s.newDecoder(gen)
					coeffs, payload := make([]byte, gen.blocks), make([]byte, bs)
					order := rng.Perm(gen.blocks)
					coded := false
					for i := 0; d.rank() < gen.blocks; i++ {
						if i > 4*gen.blocks {
							t.Fatalf("rank %d after %d blocks", d.rank(), i)
						}
						if pat[i%len(pat)] == 'u' {
							j := order[i%gen.blocks]
							if err := enc.Systematic(j, coeffs, payload); err != nil {
								t.Fatal(err)
							}
						} else if err := enc.Random(coeffs, payload); err != nil {
							t.Fatal(err)
						}
						innov := d.innovative(coeffs)
						unit, isUnit := rlnc.Unit(coeffs)
						fromSeed := i%2 == 0
						ok, err := d.add(coeffs, payload, fromSeed)
						if err != nil {
							t.Fatal(err)
						}
						if ok != innov {
							t.Fatalf("block %d: add = %v, innovative said %v", i, ok, innov)
						}
						// A source block from a seed is offered first until
						// it is served (direct mode only).
						if ok && isUnit {
							if want := fromSeed && d.direct(); d.unique(unit) != want {
								t.Fatalf("block %d (e_%d from a seed: %v): unique = %v, want %v", i, unit, fromSeed, d.unique(unit), want)
							}
						}
						coded = coded || pat[i%len(pat)] == 'c'
						if want := st.direct && !coded; d.direct() != want {
							t.Fatalf("after block %d (%s): direct = %v, want %v", i, pat, d.direct(), want)
						}
						// Serve what is held: a unit row as is (nothing
						// changes), and, once coded or one block short
						// of the whole, a random vector of the span
						// (which takes a direct decoder to coded mode).
						if d.rank() > 0 && d.rank() < gen.blocks {
							for j := range gen.blocks {
								if d.unitRow(j) {
									checkServe(t, d, enc, unitVec(gen.blocks, j))
									break
								}
							}
							if want := st.direct && !coded; d.direct() != want {
								t.Fatalf("serving a source block: direct = %v, want %v", d.direct(), want)
							}
							if coded || d.rank() == gen.blocks-1 {
								v := make([]byte, gen.blocks)
								if err := d.spanVector(rng, v); err != nil {
									t.Fatal(err)
								}
								checkServe(t, d, enc, v)
								coded = true
							}
						}
					}
					out, stored, err := d.finish()
					if err != nil {
						t.Fatal(err)
					}
					if stored != (st.direct && !coded) {
						t.Errorf("finish says stored = %v; want %v", stored, st.direct && !coded)
					}
					if !bytes.Equal(out[:gen.size], src[:gen.size]) {
						t.Fatalf("decoded generation differs from the source")
					}
					if err := s.finishGeneration(g, out, stored); err != nil {
						t.Fatal(err)
					}
					if stored {
						s.bufs.put(out)
					}
					if r != nil {
						back := make([]byte, gen.size)
						if _, err := r.ReadAt(back, gen.off); err != nil && err != io.EOF {
							t.Fatal(err)
						}
						if !bytes.Equal(back, src[:gen.size]) {
							t.Fatalf("storage holds something else than the generation")
						}
					}
				})
			}
		}
	}
}

func unitVec(n, j int) []byte {
	v := make([]byte, n)
	v[j] = 1
	return v
}

// checkServe checks that d serves v as the encoder would combine it, and
// that a vector outside the span is refused.
func checkServe(t *testing.T, d *decoder, enc *rlnc.Encoder, v []byte) {
	t.Helper()
	got, want := make([]byte, enc.BlockSize()), make([]byte, enc.BlockSize())
	if err := d.combine(v, got); err != nil {
		t.Fatalf("combine(%x) = %v", v, err)
	}
	if j, ok := rlnc.Unit(v); ok && d.unique(j) {
		t.Fatalf("e_%d still unique after it was served", j)
	}
	if err := enc.Combine(v, want); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("combine(%x) served another block", v)
	}
	for j := range v {
		if !d.unitRow(j) {
			if d.direct() {
				if err := d.combine(unitVec(len(v), j), got); !errors.Is(err, rlnc.ErrNotInSpan) {
					t.Fatalf("combine(e_%d), not held = %v, want ErrNotInSpan", j, err)
				}
			}
			break
		}
	}
}
