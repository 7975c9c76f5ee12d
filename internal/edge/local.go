package edge

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strconv"
)

// ReadRange returns bytes [off, off+n) of the object at rawURL
// ("http://host/path?q", routed to a property like client traffic) through
// the cache: served from stored slices when present, else fetched from the
// origin slice by slice (collapsed with client traffic) and stored. It
// also returns the object's total size. n <= 0 means "to the end".
//
// It is the in-process entry point for components that serve published
// content from the same cache, such as a swarm super-seed: with SliceSize
// equal to the generation size (k·B, 2 MiB by default), slice i of a
// published file is generation i.
func (s *Server) ReadRange(ctx context.Context, rawURL string, off, n int64) ([]byte, int64, error) {
	if off < 0 {
		return nil, 0, fmt.Errorf("%w: negative offset", ErrBadRequest)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	rng := "bytes=" + strconv.FormatInt(off, 10) + "-"
	if n > 0 {
		rng += strconv.FormatInt(off+n-1, 10)
	}
	req.Header.Set("Range", rng)
	req.RemoteAddr = "127.0.0.1:0"
	rec := &bufferWriter{h: http.Header{}}
	st := s.state.Load()
	cw := &countingWriter{ResponseWriter: rec}
	rs := &reqState{}
	lim := st.limits
	lim.Disabled = true // in-process callers are not rate limited
	st2 := *st
	st2.limits = lim
	if err := s.serve(cw, req, &st2, rs); err != nil {
		return nil, 0, err
	}
	switch rec.code {
	case http.StatusPartialContent:
		_, _, total, ok := parseContentRange(rec.h.Get("Content-Range"))
		if !ok {
			return nil, 0, fmt.Errorf("%w: bad Content-Range", ErrOrigin)
		}
		return rec.body.Bytes(), total, nil
	case http.StatusOK:
		// the whole (small) object, or a response that is not rangeable
		b := rec.body.Bytes()
		total := int64(len(b))
		if off >= total {
			return nil, total, ErrRange
		}
		end := total
		if n > 0 && off+n < total {
			end = off + n
		}
		return b[off:end], total, nil
	}
	return nil, 0, fmt.Errorf("%w: status %d", ErrOrigin, rec.code)
}

// bufferWriter is a ResponseWriter that keeps the response in memory.
type bufferWriter struct {
	h    http.Header
	code int
	body bytes.Buffer
}

func (b *bufferWriter) Header() http.Header { return b.h }

func (b *bufferWriter) WriteHeader(code int) {
	if b.code == 0 {
		b.code = code
	}
}

func (b *bufferWriter) Write(p []byte) (int, error) {
	if b.code == 0 {
		b.code = http.StatusOK
	}
	return b.body.Write(p)
}
