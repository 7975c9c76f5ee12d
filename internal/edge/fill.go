package edge

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"avalanche/internal/cachestore"
	"avalanche/internal/httpcache"
)

// store1 decides whether resp may be stored and, if so, starts filling the
// cache from it. ready yields once the entry can be served (for sliced
// objects as soon as the metadata is stored; slices follow).
func (s *Server) store1(ctx context.Context, r *http.Request, p *property, host, key string, old *entry, resp *http.Response,
	reqTime, respTime time.Time, rs *reqState) (*entry, <-chan error, error) {
	h := resp.Header.Clone()
	httpcache.StripHopByHop(h)
	pol := httpcache.ResponsePolicy(h, &s.hopts) // read once for every decision below
	reason := httpcache.CanStoreWith(pol, http.MethodGet, r.Header, resp.StatusCode, h)
	var ttl time.Duration
	if !pol.Explicit(h) {
		if t := mediaTTL(p, r.URL.Path, h); t > 0 {
			ttl = t
		} else {
			ttl = p.DefaultTTL
		}
	}
	if reason == httpcache.ReasonNoFreshness && ttl > 0 && resp.StatusCode < 400 {
		reason = httpcache.Storable
	}
	if reason != httpcache.Storable {
		return nil, nil, errUncacheable
	}
	m := &meta{Status: resp.StatusCode, Header: h, ReqTime: reqTime.UnixNano(), RespTime: respTime.UnixNano(),
		TTL: int64(ttl / time.Second), URL: r.Host + r.URL.RequestURI()}
	// a response without Date gets one (RFC 9110 §6.6.1) so Age works
	if m.Header.Get("Date") == "" {
		m.Header.Set("Date", respTime.UTC().Format(http.TimeFormat))
	}
	off, total := int64(0), resp.ContentLength
	partial := false
	if resp.StatusCode == http.StatusPartialContent {
		a, b, t, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || t < 0 {
			return nil, nil, errUncacheable
		}
		if resp.ContentLength >= 0 && resp.ContentLength != b-a+1 {
			return nil, nil, errUncacheable // framing disagrees with Content-Range: do not keep it
		}
		if rg, ok := parseRange(r.Header.Get("Range")); ok {
			if o, n, sat := rg.resolve(t); !sat || o < a || o+n-1 > b {
				return nil, nil, errUncacheable // not what was asked: hand it through untouched
			}
		}
		partial = true
		off, total = a, t
		m.Status = http.StatusOK
		m.Header.Del("Content-Range")
		m.Header.Del("Content-Length")
	}
	if m.Status == http.StatusPartialContent {
		return nil, nil, errUncacheable
	}
	if total > 1<<40 {
		return nil, nil, errUncacheable
	}
	// the key for this response: plain, or a variant behind a Vary stub
	entKey := key
	names, _ := httpcache.VaryNames(resp.Header)
	if len(names) > 0 {
		entKey = variantKey(key, httpcache.VaryKey(names, r.Header))
		stub := encodeMeta(&meta{Stub: true, Vary: names})
		if err := s.store.Put(ctx, cachestore.Item{Key: key, Group: p.Name, Meta: stub, Tags: surrogateKeys(resp.Header)}); err != nil {
			return nil, nil, errUncacheable
		}
	}
	// a plain response overwrites the entry (or Vary stub) at key when it is
	// stored; the old entry stays servable until then, so concurrent
	// requests during a refresh do not fall through to the origin.
	// Variants a stub pointed to become unreachable and age out.
	if old != nil && old.m.Sliced && old.key == entKey {
		s.dropSlices(old)
	}
	m.an = httpcache.AnalyzeWith(pol, m.Status, m.Header, reqTime, respTime, &s.hopts)
	ent := &entry{key: entKey, m: m, tags: surrogateKeys(resp.Header)}
	ready := make(chan error, 1)
	go s.fill(ctx, p, ent, resp.Body, off, total, partial, ready)
	return ent, ready, nil
}

func (s *Server) dropSlices(e *entry) {
	if e.m.SliceSize <= 0 {
		return
	}
	n := (e.m.Size + e.m.SliceSize - 1) / e.m.SliceSize
	for i := int64(0); i < n && i < 1<<20; i++ {
		s.store.Delete(sliceKey(e.key, e.m.Version, i))
	}
}

// fill reads an origin body into the cache. Bodies that are complete and
// at most one slice long are stored inline with the metadata; anything
// else (large or partial) is stored as aligned slices. ready is signalled
// once the entry is servable.
func (s *Server) fill(ctx context.Context, p *property, ent *entry, body io.Reader, off, total int64, partial bool, ready chan<- error) {
	S := s.slice
	signalled := false
	signal := func(err error) {
		if !signalled {
			signalled = true
			ready <- err
		}
	}
	defer signal(fmt.Errorf("%w: fill ended early", ErrOrigin))
	m := ent.m
	putMeta := func(inline []byte) error {
		mb := encodeMeta(m)
		err := s.store.Put(ctx, cachestore.Item{Key: ent.key, Group: p.Name, Tags: ent.tags, Meta: mb, Body: inline})
		if err == nil {
			if o, ok := s.store.Get(ent.key); ok {
				ent.obj = o
			}
		}
		return err
	}
	if !partial && total <= S {
		// small (or unknown length): buffer up to one slice
		buf, err := io.ReadAll(io.LimitReader(body, S+1))
		if err != nil {
			signal(fmt.Errorf("%w: reading body: %v", ErrOrigin, err))
			return
		}
		if int64(len(buf)) <= S {
			if total >= 0 && int64(len(buf)) != total {
				signal(fmt.Errorf("%w: body shorter than Content-Length", ErrOrigin))
				return
			}
			m.Size = int64(len(buf))
			ent.body = buf
			if err := putMeta(buf); err != nil {
				s.log.Debug("edge: not stored", "key", ent.key, "err", err)
				ent.obj = nil
			} else {
				ent.body = nil
				if ent.obj == nil {
					ent.body = buf
				}
			}
			signal(nil)
			return
		}
		// longer than a slice with unknown length: slice it, metadata at the end
		body = io.MultiReader(strings.NewReader(string(buf)), body)
	}
	m.Sliced, m.SliceSize, m.Version = true, S, randHex(8)
	pos := off
	// claim the first slice before the entry becomes visible, so readers
	// wait for this fill instead of fetching the slice themselves
	pending, pendingLeader := s.flights.begin("s" + sliceKey(ent.key, m.Version, pos/S))
	if !pendingLeader {
		pending = nil
	}
	if total >= 0 {
		m.Size = total
		if err := putMeta(nil); err != nil {
			if pending != nil {
				s.flights.end("s"+sliceKey(ent.key, m.Version, pos/S), pending, errNotStored)
			}
			signal(errNotStored)
			return
		}
		signal(nil)
	}
	defer func() {
		if pending != nil {
			s.flights.end("s"+sliceKey(ent.key, m.Version, pos/S), pending, errUncacheable)
		}
	}()
	for {
		idx := pos / S
		sliceStart := idx * S
		want := sliceStart + S - pos
		if total >= 0 && sliceStart+S > total {
			want = total - pos
		}
		if want <= 0 {
			break
		}
		sk := sliceKey(ent.key, m.Version, idx)
		fl, leader := pending, pendingLeader
		if fl == nil {
			fl, leader = s.flights.begin("s" + sk)
		}
		pending = nil
		buf := make([]byte, want)
		n, err := io.ReadFull(body, buf)
		buf = buf[:n]
		var perr error
		if n > 0 {
			var lo [8]byte
			binary.LittleEndian.PutUint64(lo[:], uint64(pos-sliceStart))
			perr = s.store.Put(ctx, cachestore.Item{Key: sk, Group: p.Name, Tags: ent.tags, Meta: lo[:], Body: buf})
		}
		pos += int64(n)
		if n == len(buf) && (total < 0 || pos < total) {
			// claim the next slice before releasing this one, so a reader
			// right behind us waits for the fill instead of fetching it
			pending, pendingLeader = s.flights.begin("s" + sliceKey(ent.key, m.Version, pos/S))
			if !pendingLeader {
				pending = nil
			}
		}
		if leader {
			s.flights.end("s"+sk, fl, perr)
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			if total < 0 {
				m.Size = pos
				if err := putMeta(nil); err != nil {
					signal(errUncacheable)
					return
				}
				signal(nil)
			}
			return
		}
		if err != nil {
			return
		}
	}
}
