package edge

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"avalanche/internal/cachestore"
	"avalanche/internal/httpcache"
)

// byteRange is a parsed Range header: one range (count == 1) or several.
type byteRange struct {
	start, end int64 // end inclusive; start < 0 means suffix of length end
	open       bool  // "a-"
	count      int
}

// parseRange parses a bytes Range header. ok is false when it is absent
// or malformed (RFC 9110 says to ignore such a header).
func parseRange(h string) (byteRange, bool) {
	if h == "" || len(h) > 1024 {
		return byteRange{}, false
	}
	unit, spec, found := strings.Cut(h, "=")
	if !found || strings.TrimSpace(strings.ToLower(unit)) != "bytes" {
		return byteRange{}, false
	}
	parts := strings.Split(spec, ",")
	var first byteRange
	for i, part := range parts {
		part = strings.TrimSpace(part)
		a, b, ok := strings.Cut(part, "-")
		if !ok {
			return byteRange{}, false
		}
		var r byteRange
		switch {
		case a == "":
			n, err := strconv.ParseInt(b, 10, 64)
			if err != nil || n <= 0 {
				return byteRange{}, false
			}
			r = byteRange{start: -1, end: n}
		case b == "":
			n, err := strconv.ParseInt(a, 10, 64)
			if err != nil || n < 0 {
				return byteRange{}, false
			}
			r = byteRange{start: n, open: true}
		default:
			x, err1 := strconv.ParseInt(a, 10, 64)
			y, err2 := strconv.ParseInt(b, 10, 64)
			if err1 != nil || err2 != nil || x < 0 || y < x {
				return byteRange{}, false
			}
			r = byteRange{start: x, end: y}
		}
		if i == 0 {
			first = r
		}
	}
	first.count = len(parts)
	return first, true
}

// resolve turns the range into [off, off+n) for a body of size total;
// ok is false when it is not satisfiable.
func (r byteRange) resolve(total int64) (off, n int64, ok bool) {
	switch {
	case r.start < 0:
		n = min(r.end, total)
		return total - n, n, n > 0
	case r.start >= total:
		return 0, 0, false
	case r.open:
		return r.start, total - r.start, true
	default:
		return r.start, min(r.end, total-1) - r.start + 1, true
	}
}

// parseContentRange parses "bytes a-b/total" (total may be "*": -1).
func parseContentRange(h string) (a, b, total int64, ok bool) {
	rest, found := strings.CutPrefix(strings.TrimSpace(h), "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(rest, "/")
	if !found {
		return 0, 0, 0, false
	}
	x, y, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var err error
	if a, err = strconv.ParseInt(x, 10, 64); err != nil || a < 0 {
		return 0, 0, 0, false
	}
	if b, err = strconv.ParseInt(y, 10, 64); err != nil || b < a {
		return 0, 0, 0, false
	}
	total = -1
	if tot != "*" {
		if total, err = strconv.ParseInt(tot, 10, 64); err != nil || total <= b {
			return 0, 0, 0, false
		}
	}
	return a, b, total, true
}

// serveEntry answers a request from an entry: 304 for a matching
// conditional, 206 for one satisfiable range, else the whole response.
func (s *Server) serveEntry(w *countingWriter, r *http.Request, p *property, ent *entry, f httpcache.Freshness, rs *reqState) error {
	m := ent.m
	h := w.Header()
	downstreamHeader(h, m.Header)
	if !rs.cache.Stored {
		// a reused response omits the fields its qualified no-cache and
		// private directives name
		if m.an != nil && (len(m.an.Policy.Eff.NoCacheFields) > 0 || len(m.an.Policy.Eff.PrivateFields) > 0) {
			httpcache.StripQualified(h, m.an.Policy.Eff)
		}
	}
	h["Age"] = []string{strconv.FormatInt(int64(f.Age/time.Second), 10)}
	h.Add("Cache-Status", rs.cache.Format(s.node))
	if httpcache.NotModified(r.Method, r.Header, m.Header) && m.Status == http.StatusOK {
		delete(h, "Content-Length")
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	total := m.Size
	off, n := int64(0), total
	status := m.Status
	if rg, ok := parseRange(r.Header.Get("Range")); ok && status == http.StatusOK && rg.count == 1 && ifRangeMatches(r.Header.Get("If-Range"), m.Header) {
		o, c, sat := rg.resolve(total)
		if !sat {
			h.Set("Content-Range", "bytes */"+strconv.FormatInt(total, 10))
			delete(h, "Content-Length")
			return ErrRange
		}
		off, n, status = o, c, http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, total))
	}
	if status != http.StatusNotModified && status != http.StatusNoContent && status >= 200 {
		h["Content-Length"] = []string{strconv.FormatInt(n, 10)}
	} else {
		delete(h, "Content-Length")
	}
	if m.Sliced {
		// make sure the first slice is there before committing to a status
		if n > 0 && r.Method != http.MethodHead {
			idx := off / m.SliceSize
			if _, err := s.sliceData(r.Context(), r, p, ent, idx, off-idx*m.SliceSize, min(off+n, idx*m.SliceSize+m.SliceSize)-idx*m.SliceSize, rs); err != nil {
				for k := range h {
					delete(h, k)
				}
				return err
			}
		}
		w.WriteHeader(status)
		if r.Method == http.MethodHead || n == 0 {
			return nil
		}
		return s.writeSlices(w, r, p, ent, off, n, rs)
	}
	w.WriteHeader(status)
	if r.Method == http.MethodHead || n == 0 || status == http.StatusNoContent || status == http.StatusNotModified {
		return nil
	}
	s.armWrite(w, r, s.state.Load().limits, false)
	if ent.obj != nil {
		if b := ent.obj.Bytes(); b != nil {
			_, err := w.Write(b[off : off+n])
			return clientErr(err)
		}
		body, err := ent.obj.Open()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrOrigin, err)
		}
		defer body.Close()
		if _, err := body.Seek(off, io.SeekStart); err != nil {
			return err
		}
		_, err = w.ReadFrom(io.LimitReader(body, n))
		return clientErr(err)
	}
	_, err := w.Write(ent.body[off : off+n])
	return clientErr(err)
}

func clientErr(err error) error {
	if err != nil {
		return fmt.Errorf("edge: client write: %w (%v)", context.Canceled, err)
	}
	return nil
}

// ifRangeMatches evaluates If-Range against the stored validators (strong
// comparison for entity tags, exact date match).
func ifRangeMatches(ir string, h http.Header) bool {
	if ir == "" {
		return true
	}
	if strings.HasPrefix(ir, `"`) {
		et := h.Get("ETag")
		return et != "" && !strings.HasPrefix(et, "W/") && et == ir
	}
	return h.Get("Last-Modified") == ir
}

// writeSlices writes [off, off+n) of a sliced entry, fetching slices that
// are missing.
func (s *Server) writeSlices(w *countingWriter, r *http.Request, p *property, ent *entry, off, n int64, rs *reqState) error {
	S := ent.m.SliceSize
	lim := s.state.Load().limits
	end := off + n
	for pos := off; pos < end; {
		idx := pos / S
		sliceEnd := min(end, idx*S+S)
		sd, err := s.sliceData(r.Context(), r, p, ent, idx, pos-idx*S, sliceEnd-idx*S, rs)
		if err != nil {
			return err
		}
		from := pos - (idx*S + sd.lo)
		to := sliceEnd - (idx*S + sd.lo)
		if from < 0 || to > int64(len(sd.data)) {
			return fmt.Errorf("%w: slice %d incomplete", ErrOrigin, idx)
		}
		s.armWrite(w, r, lim, true)
		if _, err := w.Write(sd.data[from:to]); err != nil {
			return clientErr(err)
		}
		pos += to - from
	}
	return nil
}

type sliceBytes struct {
	lo   int64 // offset of data within the slice
	data []byte
}

func (s *Server) storedSlice(key string) (sliceBytes, bool) {
	o, ok := s.store.Get(key)
	if !ok || len(o.Meta) != 8 {
		return sliceBytes{}, false
	}
	b, err := o.ReadAll()
	if err != nil {
		return sliceBytes{}, false
	}
	return sliceBytes{lo: int64(binary.LittleEndian.Uint64(o.Meta)), data: b[:o.Size]}, true
}

// sliceData returns slice idx of an entry covering at least bytes
// [from, to) of the slice, fetching from the origin (collapsed) when the
// stored part does not cover them. A stored part that lacks only a head or
// a tail (a range miss that filled part of the slice) is completed with
// just the missing bytes; otherwise the whole slice is fetched.
func (s *Server) sliceData(ctx context.Context, r *http.Request, p *property, ent *entry, idx, from, to int64, rs *reqState) (sliceBytes, error) {
	m := ent.m
	S := m.SliceSize
	need := min(S, m.Size-idx*S)
	key := sliceKey(ent.key, m.Version, idx)
	covers := func(sd sliceBytes) bool { return sd.lo <= from && sd.lo+int64(len(sd.data)) >= to }
	for attempt := 0; attempt < 3; attempt++ {
		have, ok := s.storedSlice(key)
		if ok && covers(have) {
			return have, nil
		}
		fl, leader := s.flights.begin("s" + key)
		if !leader {
			if err := fl.wait(ctx); err != nil && ctx.Err() != nil {
				return sliceBytes{}, err
			}
			continue
		}
		sd, err := s.completeSlice(ctx, r, p, ent, idx, need, have, rs)
		if err == nil {
			var lo [8]byte
			binary.LittleEndian.PutUint64(lo[:], uint64(sd.lo))
			_ = s.store.Put(ctx, cachestore.Item{Key: key, Group: p.Name, Tags: ent.tags, Meta: lo[:], Body: sd.data})
			if !covers(sd) {
				err = fmt.Errorf("%w: origin did not return the requested range", ErrOrigin)
			}
		}
		s.flights.end("s"+key, fl, err)
		return sd, err
	}
	sd, err := s.fetchSlice(ctx, r, p, ent, idx, 0, need, rs)
	if err == nil && !covers(sd) {
		err = fmt.Errorf("%w: origin did not return the requested range", ErrOrigin)
	}
	return sd, err
}

// completeSlice fetches what slice idx (need bytes long) lacks beyond the
// stored part have, and returns the whole slice.
func (s *Server) completeSlice(ctx context.Context, r *http.Request, p *property, ent *entry, idx, need int64, have sliceBytes, rs *reqState) (sliceBytes, error) {
	lo, hi := have.lo, have.lo+int64(len(have.data))
	if len(have.data) == 0 || lo > 0 && hi < need || hi > need {
		return s.fetchSlice(ctx, r, p, ent, idx, 0, need, rs)
	}
	gapLo, gapHi := hi, need // a tail is missing
	if lo > 0 {
		gapLo, gapHi = 0, lo // a head is missing
	}
	got, err := s.fetchSlice(ctx, r, p, ent, idx, gapLo, gapHi, rs)
	if err != nil {
		return got, err
	}
	if got.lo > gapLo || got.lo+int64(len(got.data)) < gapHi {
		return sliceBytes{}, fmt.Errorf("%w: origin did not return the requested range", ErrOrigin)
	}
	whole := make([]byte, need)
	copy(whole[gapLo:gapHi], got.data[gapLo-got.lo:])
	copy(whole[lo:hi], have.data)
	return sliceBytes{data: whole}, nil
}

// fetchSlice asks the origin for bytes [from, to) of slice idx, with
// If-Range so a changed object is detected rather than mixed.
func (s *Server) fetchSlice(ctx context.Context, r *http.Request, p *property, ent *entry, idx, from, to int64, rs *reqState) (sliceBytes, error) {
	m := ent.m
	start := idx * m.SliceSize
	out, err := s.originRequest(ctx, r, p, http.MethodGet, nil, rs, true)
	if err != nil {
		return sliceBytes{}, err
	}
	out.Header.Set("Range", fmt.Sprintf("bytes=%d-%d", start+from, start+to-1))
	if v := httpcache.StrongValidator(m.Header); v != "" {
		out.Header.Set("If-Range", v)
	}
	resp, err := s.roundTrip(p, out)
	if err != nil {
		return sliceBytes{}, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusPartialContent:
		a, b, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || total != m.Size || !sameValidators(resp.Header, m.Header) && httpcache.StrongValidator(m.Header) != "" {
			s.store.DeleteFamily(cachestore.Family(ent.key))
			return sliceBytes{}, errChanged
		}
		if a < start || b >= start+m.SliceSize {
			return sliceBytes{}, fmt.Errorf("%w: origin returned bytes %d-%d for slice at %d", ErrOrigin, a, b, start)
		}
		buf := make([]byte, b-a+1)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			return sliceBytes{}, fmt.Errorf("%w: slice body: %v", ErrOrigin, err)
		}
		return sliceBytes{lo: a - start, data: buf}, nil
	case http.StatusOK:
		// the origin ignored the range: accept it only if it is the same object
		if resp.ContentLength != m.Size || !sameValidators(resp.Header, m.Header) {
			s.store.DeleteFamily(cachestore.Family(ent.key))
			return sliceBytes{}, errChanged
		}
		if _, err := io.CopyN(io.Discard, resp.Body, start+from); err != nil {
			return sliceBytes{}, fmt.Errorf("%w: %v", ErrOrigin, err)
		}
		buf := make([]byte, to-from)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			return sliceBytes{}, fmt.Errorf("%w: %v", ErrOrigin, err)
		}
		return sliceBytes{lo: from, data: buf}, nil
	}
	return sliceBytes{}, fmt.Errorf("%w: slice fetch got status %d", ErrOrigin, resp.StatusCode)
}

func sameValidators(a, b http.Header) bool {
	ea, eb := a.Get("ETag"), b.Get("ETag")
	if ea != "" || eb != "" {
		return ea == eb
	}
	la, lb := a.Get("Last-Modified"), b.Get("Last-Modified")
	return la != "" && la == lb
}
