package rlnc

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"avalanche/internal/gf256"
)

func randData(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// block is one coded block.
type block struct{ coeffs, payload []byte }

func newBlock(n, bs int) block { return block{make([]byte, n), make([]byte, bs)} }

// decodeAll feeds blocks to a fresh decoder until it completes and returns
// the real bytes.
func decodeAll(t *testing.T, p Params, gen Generation, blocks []block) []byte {
	t.Helper()
	d, err := NewDecoder(p, gen.Blocks)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range blocks {
		if _, err := d.Add(b.coeffs, b.payload); err != nil {
			t.Fatal(err)
		}
		if d.Complete() {
			break
		}
	}
	if !d.Complete() {
		t.Fatalf("rank %d of %d after %d blocks", d.Rank(), gen.Blocks, len(blocks))
	}
	return d.Data()[:gen.Length]
}

func TestRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	tests := []struct {
		k, bs, size int
	}{
		{1, 1024, 1},
		{1, 1024, 1024},
		{4, 1024, 1},
		{4, 1024, 1025},
		{4, 1024, 4*1024 - 1},
		{4, 1024, 4 * 1024},
		{16, 1024 + 64, 16*(1024+64) - 100},
		{64, 4096, 64 * 4096},
		{64, 4096, 63*4096 + 1},
		{255, 1024, 255 * 1024},
		{32, 16 << 10, 32<<10 + 5},
	}
	for _, tt := range tests {
		for _, systematic := range []bool{true, false} {
			t.Run(fmt.Sprintf("k=%d/B=%d/size=%d/sys=%v", tt.k, tt.bs, tt.size, systematic), func(t *testing.T) {
				p := Params{K: tt.k, BlockSize: tt.bs}
				l, _ := NewLayout(int64(tt.size), p)
				data := randData(r, tt.size)
				gen, _ := l.Generation(l.Generations() - 1)
				src := data[gen.Offset:]
				e, err := NewEncoder(p, src, rand.New(rand.NewPCG(3, 4)))
				if err != nil {
					t.Fatal(err)
				}
				if e.Blocks() != gen.Blocks || e.BlockSize() != tt.bs {
					t.Fatalf("encoder has %d blocks of %d, want %d of %d", e.Blocks(), e.BlockSize(), gen.Blocks, tt.bs)
				}
				var blocks []block
				for i := 0; i < gen.Blocks+10; i++ {
					b := newBlock(gen.Blocks, tt.bs)
					if systematic {
						err = e.Next(b.coeffs, b.payload)
					} else {
						err = e.Random(b.coeffs, b.payload)
					}
					if err != nil {
						t.Fatal(err)
					}
					blocks = append(blocks, b)
				}
				if got := decodeAll(t, p, gen, blocks); !bytes.Equal(got, src) {
					t.Fatalf("decoded generation differs from the source")
				}
			})
		}
	}
}

// TestPayloadIsCombination checks every coded block against the definition,
// payload = Σ coeffs[i]·block_i with the last block zero-padded.
func TestPayloadIsCombination(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	p := Params{K: 8, BlockSize: 1024}
	for _, size := range []int{1, 1000, 1024, 3000, 8 * 1024} {
		data := randData(r, size)
		padded := make([]byte, (size+1023)/1024*1024)
		copy(padded, data)
		e, _ := NewEncoder(p, data, r)
		n := e.Blocks()
		b := newBlock(n, 1024)
		check := func(what string) {
			want := make([]byte, 1024)
			for i := 0; i < n; i++ {
				gf256.MulAddSlice(b.coeffs[i], padded[i*1024:(i+1)*1024], want)
			}
			if !bytes.Equal(b.payload, want) {
				t.Fatalf("size %d: %s payload is not the combination of its coefficients", size, what)
			}
		}
		for i := 0; i < n+3; i++ {
			if err := e.Next(b.coeffs, b.payload); err != nil {
				t.Fatal(err)
			}
			check("Next")
			if i < n && (b.coeffs[i] != 1 || bytes.Count(b.coeffs, []byte{0}) != n-1) {
				t.Fatalf("block %d is not systematic: %v", i, b.coeffs)
			}
		}
		for i := range b.coeffs {
			b.coeffs[i] = byte(r.Uint32())
		}
		e.Combine(b.coeffs, b.payload)
		check("Combine")
		// Batch.
		m := 5
		coeffs := make([]byte, m*n)
		payloads := make([][]byte, m)
		for j := range payloads {
			payloads[j] = make([]byte, 1024)
		}
		if err := e.RandomBatch(coeffs, payloads); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < m; j++ {
			b = block{coeffs[j*n : (j+1)*n], payloads[j]}
			check("RandomBatch")
			if bytes.IndexByte(b.coeffs, 0) >= 0 {
				t.Fatalf("dense coefficients contain 0: %v", b.coeffs)
			}
		}
	}
}

func TestRandomErasures(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	p := Params{K: 32, BlockSize: 1024}
	for trial := 0; trial < 40; trial++ {
		size := 1 + r.IntN(p.GenerationSize())
		data := randData(r, size)
		e, _ := NewEncoder(p, data, r)
		n := e.Blocks()
		// Source blocks and random blocks, some lost, in random order.
		var blocks []block
		for i := 0; i < n; i++ {
			b := newBlock(n, 1024)
			e.Systematic(i, b.coeffs, b.payload)
			if r.IntN(3) > 0 {
				blocks = append(blocks, b)
			}
		}
		for i := 0; i < n+3; i++ {
			b := newBlock(n, 1024)
			e.Random(b.coeffs, b.payload)
			blocks = append(blocks, b)
		}
		r.Shuffle(len(blocks), func(i, j int) { blocks[i], blocks[j] = blocks[j], blocks[i] })
		gen := Generation{Length: size, Blocks: n, BlockSize: 1024}
		if got := decodeAll(t, p, gen, blocks); !bytes.Equal(got, data) {
			t.Fatalf("trial %d: decoded generation differs", trial)
		}
	}
}

func TestNonInnovative(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	p := Params{K: 16, BlockSize: 1024}
	data := randData(r, p.GenerationSize())
	e, _ := NewEncoder(p, data, r)
	d, _ := NewDecoder(p, 16)
	var got []block
	for i := 0; i < 10; i++ {
		b := newBlock(16, 1024)
		e.Random(b.coeffs, b.payload)
		if !d.Innovative(b.coeffs) {
			t.Fatalf("block %d: Innovative = false at rank %d", i, d.Rank())
		}
		if ok, err := d.Add(b.coeffs, b.payload); !ok || err != nil {
			t.Fatalf("Add = %v, %v", ok, err)
		}
		got = append(got, b)
	}
	snapshot := bytes.Clone(d.data)
	coeffSnap := bytes.Clone(d.coeffs)
	// Duplicates, the zero vector and combinations of what was received.
	junk := []block{got[3], newBlock(16, 1024)}
	for i := 0; i < 20; i++ {
		b := newBlock(16, 1024)
		for _, g := range got {
			c := byte(r.Uint32())
			gf256.MulAddSlice(c, g.coeffs, b.coeffs)
			gf256.MulAddSlice(c, g.payload, b.payload)
		}
		junk = append(junk, b)
	}
	for i, b := range junk {
		if d.Innovative(b.coeffs) {
			t.Errorf("junk %d: Innovative = true", i)
		}
		if ok, err := d.Add(b.coeffs, b.payload); ok || err != nil {
			t.Errorf("junk %d: Add = %v, %v, want false, nil", i, ok, err)
		}
	}
	if d.Rank() != 10 || !bytes.Equal(d.data, snapshot) || !bytes.Equal(d.coeffs, coeffSnap) {
		t.Errorf("non-innovative blocks changed the decoder")
	}
	if d.Data() != nil || d.Complete() {
		t.Errorf("incomplete decoder returned data")
	}
	// Complete it; afterwards nothing is innovative.
	for !d.Complete() {
		b := newBlock(16, 1024)
		e.Random(b.coeffs, b.payload)
		d.Add(b.coeffs, b.payload)
	}
	b := newBlock(16, 1024)
	e.Random(b.coeffs, b.payload)
	if d.Innovative(b.coeffs) {
		t.Errorf("Innovative = true at full rank")
	}
	if ok, _ := d.Add(b.coeffs, b.payload); ok {
		t.Errorf("Add = true at full rank")
	}
	if !bytes.Equal(d.Data(), data) {
		t.Errorf("decoded generation differs")
	}
	d.Reset()
	if d.Rank() != 0 || d.Data() != nil {
		t.Errorf("Reset left rank %d", d.Rank())
	}
}

// TestRREF checks the decoder's invariant after every Add: each stored row
// has a 1 at its pivot and 0 at every other stored pivot, and its payload is
// the combination of the source blocks given by its coefficients.
func TestRREF(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	p := Params{K: 12, BlockSize: 1024}
	data := randData(r, 11*1024+5)
	padded := make([]byte, 12*1024)
	copy(padded, data)
	e, _ := NewEncoder(p, data, r)
	d, _ := NewDecoder(p, 12)
	for d.Rank() < 12 {
		b := newBlock(12, 1024)
		if r.IntN(2) == 0 {
			e.Systematic(r.IntN(12), b.coeffs, b.payload)
		} else {
			e.Random(b.coeffs, b.payload)
			// Sparse: zero some coefficients.
			for i := range b.coeffs {
				if r.IntN(3) == 0 {
					b.coeffs[i] = 0
				}
			}
			e.Combine(b.coeffs, b.payload)
		}
		d.Add(b.coeffs, b.payload)
		checkRREF(t, d, padded)
	}
}

func checkRREF(t *testing.T, d *Decoder, padded []byte) {
	t.Helper()
	d.flush() // the payload arithmetic may still be queued
	n, bs := d.n, d.bs
	rank := 0
	for s := 0; s < n; s++ {
		if !d.has[s] {
			continue
		}
		rank++
		row := d.coeffs[s*n : (s+1)*n]
		for q := 0; q < n; q++ {
			if d.has[q] && row[q] != b2u(q == s) {
				t.Fatalf("row %d has %d in pivot column %d", s, row[q], q)
			}
		}
		want := make([]byte, bs)
		for i := 0; i < n; i++ {
			gf256.MulAddSlice(row[i], padded[i*bs:(i+1)*bs], want)
		}
		if !bytes.Equal(d.rows[s], want) {
			t.Fatalf("row %d payload does not match its coefficients", s)
		}
		if src, ok := d.Source(s); ok != (bytes.Count(row, []byte{0}) == n-1) || (ok && !bytes.Equal(src, padded[s*bs:(s+1)*bs])) {
			t.Fatalf("Source(%d) = %v", s, ok)
		}
	}
	if rank != d.Rank() {
		t.Fatalf("%d rows stored, Rank() = %d", rank, d.Rank())
	}
}

func b2u(b bool) byte {
	if b {
		return 1
	}
	return 0
}

// TestRecodingChain passes a generation through 10 peers, each recoding
// from a partial decoder fed by the previous one; the last one decodes it.
func TestRecodingChain(t *testing.T) {
	r := rand.New(rand.NewPCG(13, 14))
	p := Params{K: 24, BlockSize: 2048}
	data := randData(r, 23*2048+100)
	e, _ := NewEncoder(p, data, r)
	n := e.Blocks()
	const hops = 10
	peers := make([]*Decoder, hops)
	for i := range peers {
		peers[i], _ = NewDecoder(p, n)
	}
	b := newBlock(n, 2048)
	for round := 0; !peers[hops-1].Complete(); round++ {
		if round > 50*n {
			t.Fatalf("no progress: ranks stuck")
		}
		e.Random(b.coeffs, b.payload)
		peers[0].Add(b.coeffs, b.payload)
		for h := 1; h < hops; h++ {
			if peers[h-1].Rank() == 0 {
				break
			}
			if err := peers[h-1].Recode(r, b.coeffs, b.payload); err != nil {
				t.Fatal(err)
			}
			peers[h].Add(b.coeffs, b.payload)
			if peers[h].Rank() > peers[h-1].Rank() {
				t.Fatalf("hop %d has rank %d above its source's %d", h, peers[h].Rank(), peers[h-1].Rank())
			}
		}
	}
	if !bytes.Equal(peers[hops-1].Data()[:len(data)], data) {
		t.Fatalf("decoded generation after %d hops differs", hops)
	}
}

func TestRecodeBatch(t *testing.T) {
	r := rand.New(rand.NewPCG(15, 16))
	p := Params{K: 16, BlockSize: 1024}
	data := randData(r, 16*1024)
	e, _ := NewEncoder(p, data, r)
	src, _ := NewDecoder(p, 16)
	b := newBlock(16, 1024)
	for src.Rank() < 9 {
		e.Random(b.coeffs, b.payload)
		src.Add(b.coeffs, b.payload)
	}
	m := 12
	coeffs := make([]byte, m*16)
	payloads := make([][]byte, m)
	for j := range payloads {
		payloads[j] = make([]byte, 1024)
	}
	if err := src.RecodeBatch(r, coeffs, payloads); err != nil {
		t.Fatal(err)
	}
	dst, _ := NewDecoder(p, 16)
	for j := 0; j < m; j++ {
		c := coeffs[j*16 : (j+1)*16]
		want := make([]byte, 1024)
		for i := 0; i < 16; i++ {
			gf256.MulAddSlice(c[i], data[i*1024:(i+1)*1024], want)
		}
		if !bytes.Equal(payloads[j], want) {
			t.Fatalf("recoded block %d is not the combination of its coefficients", j)
		}
		dst.Add(c, payloads[j])
	}
	if dst.Rank() != 9 {
		t.Errorf("12 recoded blocks from rank 9 gave rank %d, want 9", dst.Rank())
	}
}

func TestErrors(t *testing.T) {
	p := Params{K: 8, BlockSize: 1024}
	if _, err := NewEncoder(p, nil, nil); !errors.Is(err, ErrDataLength) {
		t.Errorf("NewEncoder(empty) = %v", err)
	}
	if _, err := NewEncoder(p, make([]byte, 8*1024+1), nil); !errors.Is(err, ErrDataLength) {
		t.Errorf("NewEncoder(too long) = %v", err)
	}
	if _, err := NewEncoder(Params{}, make([]byte, 10), nil); !errors.Is(err, ErrK) {
		t.Errorf("NewEncoder(zero Params) = %v", err)
	}
	for _, n := range []int{0, 9, -1} {
		if _, err := NewDecoder(p, n); !errors.Is(err, ErrBlocks) {
			t.Errorf("NewDecoder(%d blocks) = %v", n, err)
		}
	}
	e, _ := NewEncoder(p, make([]byte, 3000), nil)
	d, _ := NewDecoder(p, 3)
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"Next short coeffs", e.Next(make([]byte, 2), make([]byte, 1024)), ErrCoeffLength},
		{"Random long payload", e.Random(make([]byte, 3), make([]byte, 1025)), ErrPayloadLength},
		{"Combine", e.Combine(make([]byte, 4), make([]byte, 1024)), ErrCoeffLength},
		{"Systematic index", e.Systematic(3, make([]byte, 3), make([]byte, 1024)), ErrBlockIndex},
		{"RandomBatch coeffs", e.RandomBatch(make([]byte, 5), [][]byte{make([]byte, 1024), make([]byte, 1024)}), ErrCoeffLength},
		{"CombineBatch payload", e.CombineBatch(make([]byte, 3), [][]byte{make([]byte, 10)}), ErrPayloadLength},
		{"Add coeffs", second(d.Add(make([]byte, 2), make([]byte, 1024))), ErrCoeffLength},
		{"Add payload", second(d.Add(make([]byte, 3), make([]byte, 1000))), ErrPayloadLength},
		{"Recode empty", d.Recode(rand.New(rand.NewPCG(1, 1)), make([]byte, 3), make([]byte, 1024)), ErrNothingToSend},
		{"Recode coeffs", d.Recode(rand.New(rand.NewPCG(1, 1)), make([]byte, 4), make([]byte, 1024)), ErrCoeffLength},
	}
	for _, tt := range tests {
		if !errors.Is(tt.err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, tt.err, tt.want)
		}
	}
	if d.Innovative(make([]byte, 2)) {
		t.Errorf("Innovative(wrong length) = true")
	}
}

func second(_ bool, err error) error { return err }

// TestDecoderIn decodes into a caller's buffer that holds junk (a reused
// one) and is larger than needed, and refuses one that is too small.
func TestDecoderIn(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	p := Params{K: 8, BlockSize: 1024}
	data := randData(r, 8*1024-300)
	e, _ := NewEncoder(p, data, r)
	rows := randData(r, 9*1024)
	d, err := NewDecoderIn(p, e.Blocks(), rows)
	if err != nil {
		t.Fatal(err)
	}
	b := newBlock(e.Blocks(), 1024)
	for !d.Complete() {
		if err := e.Random(b.coeffs, b.payload); err != nil {
			t.Fatal(err)
		}
		if _, err := d.Add(b.coeffs, b.payload); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(d.Data()[:len(data)], data) {
		t.Fatal("decoded bytes differ")
	}
	if &d.Data()[0] != &rows[0] || len(d.Data()) != 8*1024 {
		t.Errorf("Data is not the first %d bytes of the buffer given", 8*1024)
	}
	if _, err := NewDecoderIn(p, 8, make([]byte, 8*1024-1)); !errors.Is(err, ErrPayloadLength) {
		t.Errorf("NewDecoderIn(short buffer) = %v, want ErrPayloadLength", err)
	}
}

func TestNoAllocs(t *testing.T) {
	r := rand.New(rand.NewPCG(17, 18))
	p := Params{K: 16, BlockSize: 4096}
	data := randData(r, 15*4096+7)
	e, _ := NewEncoder(p, data, r)
	d, _ := NewDecoder(p, 16)
	peer, _ := NewDecoder(p, 16)
	b := newBlock(16, 4096)
	coeffs := make([]byte, 4*16)
	payloads := [][]byte{make([]byte, 4096), make([]byte, 4096), make([]byte, 4096), make([]byte, 4096)}
	// Warm up the scratch buffers once.
	e.RandomBatch(coeffs, payloads)
	peer.Add(b.coeffs, b.payload)
	for i := 0; i < 8; i++ {
		e.Random(b.coeffs, b.payload)
		peer.Add(b.coeffs, b.payload)
	}
	peer.RecodeBatch(r, coeffs, payloads)
	tests := []struct {
		name string
		f    func()
	}{
		{"Random", func() { e.Random(b.coeffs, b.payload) }},
		{"Next", func() { e.Next(b.coeffs, b.payload) }},
		{"RandomBatch", func() { e.RandomBatch(coeffs, payloads) }},
		{"Add+Reset", func() {
			e.Random(b.coeffs, b.payload)
			d.Add(b.coeffs, b.payload)
			if d.Complete() {
				d.Reset()
			}
		}},
		{"Innovative", func() { peer.Innovative(b.coeffs) }},
		{"Recode", func() { peer.Recode(r, b.coeffs, b.payload) }},
		{"RecodeBatch", func() { peer.RecodeBatch(r, coeffs, payloads) }},
	}
	for _, tt := range tests {
		if n := testing.AllocsPerRun(50, tt.f); n != 0 {
			t.Errorf("%s allocates %v times per block, want 0", tt.name, n)
		}
	}
}

// TestParallelGenerations codes independent generations on all cores at
// once (run with -race).
func TestParallelGenerations(t *testing.T) {
	p := Params{K: 16, BlockSize: 4096}
	size := 8*p.GenerationSize() - 1000
	data := randData(rand.New(rand.NewPCG(19, 20)), size)
	l, _ := NewLayout(int64(size), p)
	out := make([]byte, size)
	var wg sync.WaitGroup
	errs := make(chan error, l.Generations())
	for g := 0; g < l.Generations(); g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			gen, _ := l.Generation(g)
			src := data[gen.Offset : gen.Offset+int64(gen.Length)]
			e, err := NewEncoder(p, src, rand.New(rand.NewPCG(uint64(g), 1)))
			if err != nil {
				errs <- err
				return
			}
			d, _ := NewDecoder(p, gen.Blocks)
			b := newBlock(gen.Blocks, p.BlockSize)
			for !d.Complete() {
				e.Random(b.coeffs, b.payload)
				if _, err := d.Add(b.coeffs, b.payload); err != nil {
					errs <- err
					return
				}
			}
			copy(out[gen.Offset:], d.Data()[:gen.Length])
		}(g)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if !bytes.Equal(out, data) {
		t.Fatalf("file decoded in parallel differs")
	}
}
