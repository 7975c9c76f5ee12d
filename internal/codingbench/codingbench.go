// Package codingbench measures the throughput of Avalanche's coding core —
// field kernels, encoding, recoding, decoding, per-packet verification and
// SHA-256 — on one core, beside reference implementations of the same
// arithmetic measured in the same run:
//
//   - reedsolomon: github.com/klauspost/reedsolomon computing one parity
//     shard from k data shards with a custom matrix row, which is exactly the
//     arithmetic of one coded block, and its LowLevel mul-add kernel;
//   - purego: our own pure-Go kernels, what a build with the purego tag runs;
//   - logexp: a from-scratch textbook RLNC with log/exp tables, one byte at a
//     time — the design of github.com/itzmeanjan/kodr, which could not be
//     fetched (its module proxy answers 403), so it stands in for it.
//
// The avalanche command prints the results as a table or JSON ("avalanche
// bench coding"). Every measurement runs in the calling goroutine, locked to
// its thread, and rates are per second of that thread's CPU time (see
// ClockName): MB/s per core.
package codingbench

import (
	"context"
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"time"

	"github.com/klauspost/reedsolomon"

	"avalanche/internal/gf256"
	"avalanche/internal/lincheck"
	"avalanche/internal/rlnc"
)

// Operations measured. Rates count payload bytes produced (muladd, encode,
// encodebatch, recode), source bytes recovered (decode) or bytes checked
// (verify, sha256).
const (
	OpMulAdd      = "muladd"      // out ^= c·in over one block
	OpEncode      = "encode"      // one dense coded block from k source blocks
	OpEncodeBatch = "encodebatch" // Config.Batch coded blocks in one pass
	OpRecode      = "recode"      // one block recoded from a decoder at rank k-1
	OpDecode      = "decode"      // a whole generation from k dense coded blocks
	OpVerify      = "verify"      // the per-packet linear checksum, Config.Checks checks
	OpSHA256      = "sha256"      // crypto/sha256 over one block, for comparison
)

// Implementations measured.
const (
	ImplAvalanche   = "avalanche"
	ImplReedSolomon = "reedsolomon"
	ImplPureGo      = "purego"
	ImplLogExp      = "logexp"
)

// tableOps lists the operations in the order of the table's rows;
// tableImpls the implementations in the order of its columns.
func tableOps() []string {
	return []string{OpMulAdd, OpSHA256, OpEncode, OpEncodeBatch, OpRecode, OpDecode, OpVerify}
}

func tableImpls() []string {
	return []string{ImplAvalanche, ImplReedSolomon, ImplPureGo, ImplLogExp}
}

// Config says what to measure. The zero Config measures the full matrix.
type Config struct {
	Ks         []int         // generation sizes; default 16, 32, 64, 128
	BlockSizes []int         // block sizes; default 16, 32 and 64 KiB
	Duration   time.Duration // time per measurement, over all rounds; default 120 ms
	Rounds     int           // rounds per measurement, the best counts; default 3
	Batch      int           // coded blocks per encodebatch call; default 16
	Checks     int           // checks per block for verify; default 4
}

// Result is one measurement. K is 0 for operations that do not depend on
// the generation size (muladd, sha256).
type Result struct {
	Op     string  `json:"op"`
	Impl   string  `json:"impl"`
	K      int     `json:"k"`
	Block  int     `json:"block"`
	MBPerS float64 `json:"mb_per_s"`
}

func (c Config) withDefaults() Config {
	if len(c.Ks) == 0 {
		c.Ks = []int{16, 32, 64, 128}
	}
	if len(c.BlockSizes) == 0 {
		c.BlockSizes = []int{16 << 10, 32 << 10, 64 << 10}
	}
	if c.Duration <= 0 {
		c.Duration = 120 * time.Millisecond
	}
	if c.Rounds <= 0 {
		c.Rounds = 3
	}
	if c.Batch <= 0 {
		c.Batch = 16
	}
	if c.Checks <= 0 {
		c.Checks = lincheck.DefaultChecks
	}
	return c
}

// item is one thing to time: run does one unit of work and returns the
// bytes it counts.
type item struct {
	op, impl string
	run      func() int
}

// Run measures everything cfg asks for and returns the results in table
// order. progress, if not nil, is called with each result as it is known.
// It stops early, with ctx's error, when ctx is done.
func Run(ctx context.Context, cfg Config, progress func(Result)) ([]Result, error) {
	cfg = cfg.withDefaults()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, k := range cfg.Ks {
		for _, bs := range cfg.BlockSizes {
			if err := (rlnc.Params{K: k, BlockSize: bs}).Validate(); err != nil {
				return nil, fmt.Errorf("codingbench: %w", err)
			}
		}
	}
	// The first figures of a run came out low whatever was measured first
	// (mul-add at 16 KiB 9-22 GB/s first, 71 GB/s last, in the same run):
	// run the first items untimed for a while so that the core is up to
	// speed before anything counts.
	warmUp(ctx, blockItems(cfg.BlockSizes[0]), warmUpTime)
	var out []Result
	emit := func(k, bs int, items []item, rates []float64) {
		for i, it := range items {
			r := Result{Op: it.op, Impl: it.impl, K: k, Block: bs, MBPerS: rates[i]}
			out = append(out, r)
			if progress != nil {
				progress(r)
			}
		}
	}
	for _, bs := range cfg.BlockSizes {
		items := blockItems(bs)
		rates, err := measure(ctx, cfg, items)
		if err != nil {
			return out, err
		}
		emit(0, bs, items, rates)
	}
	for _, k := range cfg.Ks {
		for _, bs := range cfg.BlockSizes {
			items, err := generationItems(cfg, rlnc.Params{K: k, BlockSize: bs})
			if err != nil {
				return out, err
			}
			rates, err := measure(ctx, cfg, items)
			if err != nil {
				return out, err
			}
			emit(k, bs, items, rates)
		}
	}
	return out, nil
}

// warmUpTime is how long Run exercises the code before measuring.
const warmUpTime = 100 * time.Millisecond

// warmUp runs items round-robin, untimed, for d of thread time.
func warmUp(ctx context.Context, items []item, d time.Duration) {
	start := threadClock()
	for threadClock()-start < d && ctx.Err() == nil {
		for _, it := range items {
			it.run()
		}
	}
}

// slice is the shortest stretch of repeated calls that is timed as one
// sample: long enough for the clock, short enough that many samples fit in
// a measurement.
const slice = 200 * time.Microsecond

// ClockName says how Run measures time: the measuring thread's CPU time on
// Linux, so that time the scheduler gives other processes does not count
// against the code measured, and wall-clock time elsewhere.
const ClockName = clockName

// measure times the items round-robin, so that load elsewhere on the
// machine hits them all alike. Each round runs an item for its share of the
// duration as back-to-back samples of at least one slice; an item's figure
// is the 90th percentile of its samples' rates. Cache contention from other
// processes only ever slows a sample down, so the upper samples are the
// machine's own speed, and the percentile ignores the odd lucky one. An
// item whose single call outlasts the whole duration (the textbook decoder
// at large k) runs once. The caller is locked to its thread.
func measure(ctx context.Context, cfg Config, items []item) ([]float64, error) {
	samples := make([][]float64, len(items))
	reps := make([]int, len(items))
	done := make([]bool, len(items))
	round := cfg.Duration / time.Duration(cfg.Rounds)
	rate := func(b int, d time.Duration) float64 { return float64(b) / max(d, time.Nanosecond).Seconds() / 1e6 }
	for r := 0; r < cfg.Rounds; r++ {
		for i, it := range items {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if done[i] {
				continue
			}
			start := threadClock()
			if reps[i] == 0 {
				// Calibrate: how many calls make a slice.
				b := it.run()
				el := threadClock() - start
				samples[i] = append(samples[i], rate(b, el))
				if el > cfg.Duration {
					done[i] = true
					continue
				}
				reps[i] = max(1, int(slice/max(el, time.Nanosecond))+1)
			}
			for threadClock()-start < round {
				t0 := threadClock()
				b := 0
				for j := 0; j < reps[i]; j++ {
					b += it.run()
				}
				samples[i] = append(samples[i], rate(b, threadClock()-t0))
			}
		}
	}
	out := make([]float64, len(items))
	for i, s := range samples {
		slices.Sort(s)
		out[i] = s[(len(s)-1)*9/10]
	}
	return out, nil
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		x := r.Uint64()
		for j := i; j < min(n, i+8); j++ {
			b[j] = byte(x)
			x >>= 8
		}
	}
	return b
}

// blockItems are the operations that depend only on the block size.
func blockItems(bs int) []item {
	r := rand.New(rand.NewPCG(1, uint64(bs)))
	in, out := randBytes(r, bs), randBytes(r, bs)
	var ll reedsolomon.LowLevel
	le := newLogExp()
	return []item{
		{OpMulAdd, ImplAvalanche, func() int { gf256.MulAddSlice(0x8e, in, out); return bs }},
		{OpMulAdd, ImplReedSolomon, func() int { ll.GalMulSliceXor(0x8e, in, out); return bs }},
		{OpMulAdd, ImplPureGo, func() int { gf256.MulAddSliceGeneric(0x8e, in, out); return bs }},
		{OpMulAdd, ImplLogExp, func() int { le.mulAdd(0x8e, in, out); return bs }},
		{OpSHA256, ImplAvalanche, func() int { sha256.Sum256(in); return bs }},
	}
}

// generationItems prepares one generation of random data and its coded
// blocks, checks that our decoder gets the data back (TestLogExp checks the
// textbook one, whose decode is too slow to run twice at large k), and
// returns the operations on it.
func generationItems(cfg Config, p rlnc.Params) ([]item, error) {
	k, bs := p.K, p.BlockSize
	r := rand.New(rand.NewPCG(uint64(k), uint64(bs)))
	data := randBytes(r, p.GenerationSize())
	blocks := make([][]byte, k)
	for i := range blocks {
		blocks[i] = data[i*bs : (i+1)*bs]
	}
	enc, err := rlnc.NewEncoder(p, data, r)
	if err != nil {
		return nil, err
	}
	// k+2 dense coded blocks; with GF(256) they reach full rank with
	// probability 1 - 2^-24 or so, and the check below makes sure.
	coded := make([][2][]byte, k+2)
	for i := range coded {
		coded[i] = [2][]byte{make([]byte, k), make([]byte, bs)}
		enc.Random(coded[i][0], coded[i][1])
	}
	coeffs, payload := make([]byte, k), make([]byte, bs)

	// Decoders, checked once.
	dec, _ := rlnc.NewDecoder(p, k)
	decode := func() int {
		dec.Reset()
		for _, c := range coded {
			dec.Add(c[0], c[1])
			if dec.Complete() {
				break
			}
		}
		return k * bs
	}
	decode()
	if !dec.Complete() || string(dec.Data()) != string(data) {
		return nil, fmt.Errorf("codingbench: k=%d B=%d: avalanche decoder did not recover the data", k, bs)
	}
	le := newLogExp()
	ld := newLogExpDecoder(le, k, bs)
	leDecode := func() int {
		ld.reset()
		for _, c := range coded {
			ld.add(c[0], c[1])
			if ld.complete() {
				break
			}
		}
		return k * bs
	}
	// Recoders at rank k-1: a peer that has almost everything.
	rec, _ := rlnc.NewDecoder(p, k)
	leRec := newLogExpDecoder(le, k, bs)
	for _, c := range coded[:k-1] {
		rec.Add(c[0], c[1])
		leRec.add(c[0], c[1])
	}
	if k == 1 {
		rec.Add(coded[0][0], coded[0][1])
		leRec.add(coded[0][0], coded[0][1])
	}

	// The reference: one parity shard from k data shards, with a custom
	// matrix row, on one goroutine.
	rs, err := reedsolomon.New(k, 1, reedsolomon.WithCustomMatrix([][]byte{coded[0][0]}), reedsolomon.WithMaxGoroutines(1))
	if err != nil {
		return nil, fmt.Errorf("codingbench: reedsolomon: %w", err)
	}
	shards := append(append([][]byte(nil), blocks...), make([]byte, bs))

	batchCoeffs := make([]byte, cfg.Batch*k)
	batch := make([][]byte, cfg.Batch)
	for j := range batch {
		batch[j] = make([]byte, bs)
	}

	chk, err := lincheck.NewChecker(lincheck.DeriveKey([]byte("bench"), []byte("peer")), p, cfg.Checks, 0)
	if err != nil {
		return nil, err
	}
	sums := make([]byte, k*cfg.Checks)
	chk.SourceSums(data, sums)
	if !chk.Verify(coded[0][0], coded[0][1], sums) {
		return nil, fmt.Errorf("codingbench: k=%d B=%d: an honest block failed verification", k, bs)
	}
	rng := rand.New(rand.NewPCG(3, 4))

	return []item{
		{OpEncode, ImplAvalanche, func() int { enc.Random(coeffs, payload); return bs }},
		{OpEncode, ImplReedSolomon, func() int { rs.Encode(shards); return bs }},
		{OpEncode, ImplPureGo, func() int {
			clear(payload)
			for i, b := range blocks {
				gf256.MulAddSliceGeneric(coded[1][0][i], b, payload)
			}
			return bs
		}},
		{OpEncode, ImplLogExp, func() int { le.encode(coded[1][0], blocks, payload); return bs }},
		{OpEncodeBatch, ImplAvalanche, func() int { enc.RandomBatch(batchCoeffs, batch); return cfg.Batch * bs }},
		{OpRecode, ImplAvalanche, func() int { rec.Recode(rng, coeffs, payload); return bs }},
		{OpRecode, ImplLogExp, func() int { leRec.recode(rng, coeffs, payload); return bs }},
		{OpDecode, ImplAvalanche, decode},
		{OpDecode, ImplLogExp, leDecode},
		{OpVerify, ImplAvalanche, func() int { chk.Verify(coded[0][0], coded[0][1], sums); return bs }},
	}, nil
}
