package codingbench

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes the results as a JSON array of records.
func WriteJSON(w io.Writer, rs []Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rs)
}

// WriteTable writes the results as a table, one row per operation and
// shape and one column per implementation, followed by the targets at
// k = 64, B = 32 KiB when those were measured.
func WriteTable(w io.Writer, rs []Result) error {
	type key struct {
		op       string
		k, block int
	}
	rate := make(map[key]map[string]float64)
	var rows []key
	for _, r := range rs {
		kk := key{r.Op, r.K, r.Block}
		if rate[kk] == nil {
			rate[kk] = make(map[string]float64)
			rows = append(rows, kk)
		}
		rate[kk][r.Impl] = r.MBPerS
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "op\tk\tblock\t%s\t\n", strings.Join(tableImpls(), "\t"))
	for _, op := range tableOps() {
		for _, kk := range rows {
			if kk.op != op {
				continue
			}
			k := "-"
			if kk.k > 0 {
				k = fmt.Sprint(kk.k)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t", op, k, kk.block)
			for _, impl := range tableImpls() {
				if v, ok := rate[kk][impl]; ok {
					fmt.Fprintf(tw, "%.0f\t", v)
				} else {
					fmt.Fprint(tw, "-\t")
				}
			}
			fmt.Fprintln(tw)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	ts := Targets(rs)
	if len(ts) == 0 {
		return nil
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Targets at k=64, B=32768, one core:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, t := range ts {
		verdict := "met"
		if !t.Met() {
			verdict = "MISSED"
		}
		fmt.Fprintf(tw, "  %s\t%.2f%s\t(target ≥ %g%s)\t%s\n", t.Name, t.Value, t.Unit, t.Want, t.Unit, verdict)
	}
	return tw.Flush()
}

// Target is one of the performance targets of the coding core, evaluated
// on a set of results.
type Target struct {
	Name  string
	Value float64
	Want  float64
	Unit  string // "×" for ratios, " GB/s" for rates
}

// Met reports whether the target is reached.
func (t Target) Met() bool { return t.Value >= t.Want }

// Targets evaluates the targets at k = 64, B = 32 KiB: encode ≥ 1.0× the
// reedsolomon reference, decode ≥ 0.8× our encode, verify ≥ 3 GB/s, encode
// and decode ≥ 1.5× the pure-Go logexp reference. It returns nothing when
// that shape was not measured.
func Targets(rs []Result) []Target {
	get := func(op, impl string) float64 {
		for _, r := range rs {
			if r.Op == op && r.Impl == impl && r.K == 64 && r.Block == 32<<10 {
				return r.MBPerS
			}
		}
		return 0
	}
	enc, dec := get(OpEncode, ImplAvalanche), get(OpDecode, ImplAvalanche)
	if enc == 0 {
		return nil
	}
	ratio := func(a, b float64) float64 {
		if b == 0 {
			return 0
		}
		return a / b
	}
	return []Target{
		{"encode / reedsolomon encode", ratio(enc, get(OpEncode, ImplReedSolomon)), 1.0, "×"},
		{"decode / encode", ratio(dec, enc), 0.8, "×"},
		{"verify", get(OpVerify, ImplAvalanche) / 1000, 3, " GB/s"},
		{"encode / logexp encode", ratio(enc, get(OpEncode, ImplLogExp)), 1.5, "×"},
		{"decode / logexp decode", ratio(dec, get(OpDecode, ImplLogExp)), 1.5, "×"},
	}
}
