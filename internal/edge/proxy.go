package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"strings"
	"time"

	"avalanche/internal/cachestore"
	"avalanche/internal/httpcache"
)

// countingWriter records the status and bytes written for the access log.
type countingWriter struct {
	http.ResponseWriter
	status int
	body   int64
	header int64
}

func (c *countingWriter) WriteHeader(code int) {
	if c.status == 0 {
		c.status = code
		c.header = 17
		for k, v := range c.ResponseWriter.Header() {
			for _, x := range v {
				c.header += int64(len(k) + len(x) + 4)
			}
		}
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *countingWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	n, err := c.ResponseWriter.Write(b)
	c.body += int64(n)
	return n, err
}

// ReadFrom keeps sendfile available for disk bodies.
func (c *countingWriter) ReadFrom(r io.Reader) (int64, error) {
	if c.status == 0 {
		c.WriteHeader(http.StatusOK)
	}
	n, err := io.Copy(c.ResponseWriter, r)
	c.body += n
	return n, err
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if m := s.local.Load(); m != nil {
		if _, pattern := m.Handler(r); pattern != "" {
			m.ServeHTTP(w, r) // the mux sets the path values
			return
		}
	}
	start := s.now()
	st := s.state.Load()
	cw := &countingWriter{ResponseWriter: w}
	rs := &reqState{incoming: r.Header.Get("Traceparent")}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				s.finish(st, r, cw, rs, start)
				panic(v)
			}
			s.log.Error("edge: panic serving request", "panic", v, "path", r.URL.Path)
			if cw.status == 0 {
				s.writeError(cw, fmt.Errorf("%w: internal error", ErrOrigin))
			}
		}
		s.finish(st, r, cw, rs, start)
	}()
	err := s.serve(cw, r, st, rs)
	if err != nil {
		rs.err = err
		s.log.Debug("edge: request failed", "method", r.Method, "uri", r.URL.RequestURI(), "err", err)
		if cw.status == 0 {
			s.writeError(cw, err)
		} else if !errors.Is(err, context.Canceled) {
			panic(http.ErrAbortHandler) // headers are out: cut the connection so the client sees a truncated body
		}
	}
}

func (s *Server) writeError(w http.ResponseWriter, err error) {
	code := statusOf(err)
	h := w.Header()
	for k := range h {
		delete(h, k)
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	if code == http.StatusTooManyRequests {
		h.Set("Retry-After", "1")
	}
	w.WriteHeader(code)
	fmt.Fprintln(w, http.StatusText(code))
}

func (s *Server) finish(st *state, r *http.Request, cw *countingWriter, rs *reqState, start time.Time) {
	dur := s.now().Sub(start)
	prop := rs.prop
	if prop == "" {
		prop = "-"
	}
	short := rs.cache.Short()
	if rs.err != nil && rs.cache.Fwd == "" && !rs.cache.Hit {
		short = "error"
	}
	status := cw.status
	if status == 0 {
		status = http.StatusOK
	}
	s.met.requests.WithLabelValues(prop, short, codeClass(status)).Inc()
	s.met.respBytes.WithLabelValues(prop).Add(float64(cw.header + cw.body))
	s.met.duration.WithLabelValues(prop).Observe(dur.Seconds())
	al := st.accessLog
	if p := st.byName[rs.prop]; p != nil && p.AccessLog != nil {
		al = p.AccessLog
	}
	if al == nil {
		return
	}
	client, _ := clientPrefix(r.RemoteAddr)
	line := &LogLine{Time: logTime(start), Property: prop, Node: s.node, Client: client, Method: r.Method, Host: r.Host,
		Path: r.URL.RequestURI(), Proto: r.Proto, Status: status, BytesSent: cw.header + cw.body, BodyBytes: cw.body,
		Duration: dur.Seconds(), CacheStatus: short, Range: r.Header.Get("Range"), TraceID: rs.trace().traceID, UserAgent: r.UserAgent()}
	al.Write(line)
}

func (s *Server) serve(w *countingWriter, r *http.Request, st *state, rs *reqState) error {
	now := s.now()
	if !st.limits.Disabled {
		addr, prefix := clientPrefix(r.RemoteAddr)
		if !st.prefixLim.allow(prefix, now) {
			s.met.rateLimited.WithLabelValues("prefix").Inc()
			return ErrRateLimited
		}
		if !st.clientLim.allow(addr, now) {
			s.met.rateLimited.WithLabelValues("client").Inc()
			return ErrRateLimited
		}
	}
	if r.Host == "" || !strings.HasPrefix(r.URL.Path, "/") || r.URL.IsAbs() && r.Method == http.MethodConnect {
		return ErrBadRequest
	}
	host := hostOnly(r.Host)
	p := st.match(host, r.URL.Path)
	if p == nil {
		return ErrNoProperty
	}
	rs.prop = p.Name
	if p.lim != nil && !st.limits.Disabled {
		if addr, _ := clientPrefix(r.RemoteAddr); !p.lim.allow(addr, now) {
			s.met.rateLimited.WithLabelValues("property").Inc()
			return ErrRateLimited
		}
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return s.serveCacheable(w, r, st, p, host, rs)
	case http.MethodConnect:
		return ErrMethod
	default:
		return s.pass(w, r, st, p, host, rs)
	}
}

// originRequest builds the request sent to p's origin for r.
func (s *Server) originRequest(ctx context.Context, r *http.Request, p *property, method string, body io.Reader, rs *reqState, forCache bool) (*http.Request, error) {
	u := *p.origin
	u.Path = strings.TrimSuffix(p.origin.Path, "/") + r.URL.Path
	u.RawPath = ""
	if p.origin.Path != "" && r.URL.RawPath != "" {
		u.RawPath = strings.TrimSuffix(p.origin.Path, "/") + r.URL.RawPath
	} else if r.URL.RawPath != "" {
		u.RawPath = r.URL.RawPath
	}
	u.RawQuery = r.URL.RawQuery
	out, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	out.Header = r.Header.Clone()
	httpcache.StripHopByHop(out.Header)
	if forCache {
		for _, h := range []string{"If-None-Match", "If-Modified-Since", "If-Match", "If-Unmodified-Since", "If-Range", "Range"} {
			out.Header.Del(h)
		}
	}
	out.Header.Del("Traceparent")
	out.Header.Set("Traceparent", rs.trace().header())
	if ip, _ := clientPrefix(r.RemoteAddr); ip != "" {
		if prior := r.Header.Get("X-Forwarded-For"); prior != "" {
			ip = prior + ", " + ip
		}
		out.Header.Set("X-Forwarded-For", ip)
	}
	out.Header.Set("X-Forwarded-Host", r.Host)
	out.Header.Add("Via", "1.1 "+s.node)
	out.Header.Set("Surrogate-Capability", s.hopts.Target()+`="Surrogate/1.0"`)
	if r.ContentLength > 0 && body != nil {
		out.ContentLength = r.ContentLength
	}
	return out, nil
}

func (s *Server) roundTrip(p *property, req *http.Request) (*http.Response, error) {
	t0 := time.Now()
	resp, err := s.transport.RoundTrip(req)
	s.met.originFetch.WithLabelValues(p.Name).Observe(time.Since(t0).Seconds())
	if err != nil {
		if req.Context().Err() != nil && errors.Is(err, context.Canceled) {
			return nil, err
		}
		s.met.originErrs.WithLabelValues(p.Name).Inc()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, fmt.Errorf("%w: %v", ErrOriginSlow, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrOrigin, err)
	}
	return resp, nil
}

// downstreamHeader copies a header for the client, leaving out the
// fields addressed to surrogates. Stored headers are already free of
// hop-by-hop fields; pass-through responses are stripped by the caller.
func downstreamHeader(dst, src http.Header) {
	for k, v := range src {
		switch k {
		case "Surrogate-Control", "Surrogate-Key":
			continue
		}
		dst[k] = v
	}
}

// passHeader copies an origin response header for the client.
func passHeader(dst, src http.Header) {
	downstreamHeader(dst, src)
	httpcache.StripHopByHop(dst)
}

// pass forwards a request the cache does not answer (unsafe methods and
// the like) and invalidates what it changes.
func (s *Server) pass(w *countingWriter, r *http.Request, st *state, p *property, host string, rs *reqState) error {
	var body io.Reader
	if r.Body != nil && r.Body != http.NoBody {
		if r.ContentLength > st.limits.MaxBodyBytes {
			return ErrBodyTooLarge
		}
		body = http.MaxBytesReader(w, r.Body, st.limits.MaxBodyBytes)
		// the server sets no whole-request read timeout (it would cost
		// every request); bodies, which only pass-through requests have,
		// get one here
		_ = http.NewResponseController(w).SetReadDeadline(time.Now().Add(2 * st.limits.SlowClientTimeout))
	}
	out, err := s.originRequest(r.Context(), r, p, r.Method, body, rs, false)
	if err != nil {
		return err
	}
	reqTime := s.now()
	resp, err := s.roundTrip(p, out)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return ErrBodyTooLarge
		}
		return err
	}
	defer resp.Body.Close()
	rs.cache = httpcache.Status{Fwd: "method", FwdStatus: resp.StatusCode}
	if !isSafe(r.Method) && resp.StatusCode < 400 {
		s.invalidate(r, p, host, resp.Header)
	}
	if r.Method == http.MethodPost && reusablePOST(r, resp) {
		// RFC 9111 §4.4 / RFC 9110 §9.3.3: a POST response with explicit
		// freshness and Content-Location equal to the target URI may answer
		// later GETs of that URI
		get := r.Clone(r.Context())
		get.Method, get.Body, get.ContentLength = http.MethodGet, http.NoBody, 0
		key := primaryKey(p, host, r.URL.RequestURI())
		ent, ready, serr := s.store1(r.Context(), get, p, host, key, nil, resp, reqTime, s.now(), rs)
		if serr == nil {
			serr = <-ready
			if serr == nil {
				rs.cache.Stored = true
				return s.serveEntry(w, r, p, ent, s.freshness(ent.m, s.now()), rs)
			}
			if !errors.Is(serr, errNotStored) {
				return serr
			}
		}
	}
	passHeader(w.Header(), resp.Header)
	w.Header().Add("Cache-Status", rs.cache.Format(s.node))
	w.WriteHeader(resp.StatusCode)
	return s.copyBody(w, resp.Body, r)
}

// reusablePOST reports whether a POST response may be stored for GETs of
// the same URI: a final 200 or 203 with explicit freshness and a
// Content-Location naming the request's own URI.
func reusablePOST(r *http.Request, resp *http.Response) bool {
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNonAuthoritativeInfo ||
		!httpcache.ResponsePolicy(resp.Header, nil).Explicit(resp.Header) {
		return false
	}
	cl := resp.Header.Get("Content-Location")
	if cl == "" {
		return false
	}
	u, err := r.URL.Parse(cl)
	return err == nil && u.RequestURI() == r.URL.RequestURI()
}

func isSafe(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions || m == http.MethodTrace
}

// invalidate drops the stored responses for the request URI and for
// same-origin Location and Content-Location targets (RFC 9111 §4.4).
func (s *Server) invalidate(r *http.Request, p *property, host string, h http.Header) {
	n := s.store.DeleteFamily(primaryKey(p, host, r.URL.RequestURI()))
	for _, f := range []string{"Location", "Content-Location"} {
		v := h.Get(f)
		if v == "" {
			continue
		}
		u, err := r.URL.Parse(v)
		if err != nil {
			continue
		}
		if u.Host != "" && !strings.EqualFold(hostOnly(u.Host), host) && !strings.EqualFold(u.Host, p.origin.Host) {
			continue
		}
		n += s.store.DeleteFamily(primaryKey(p, host, u.RequestURI()))
	}
	if n > 0 {
		s.met.purged.WithLabelValues(p.Name).Add(float64(n))
	}
}

// copyBody streams an origin body to the client, bounding each write by
// the slow-client timeout.
func (s *Server) copyBody(w *countingWriter, src io.Reader, r *http.Request) error {
	if r.Method == http.MethodHead {
		return nil
	}
	lim := s.state.Load().limits
	buf := make([]byte, 64<<10)
	for first := true; ; first = false {
		n, err := src.Read(buf)
		if n > 0 {
			s.armWrite(w, r, lim, !first)
			if _, werr := w.Write(buf[:n]); werr != nil {
				return fmt.Errorf("edge: client write: %w", context.Canceled)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: reading body: %v", ErrOrigin, err)
		}
	}
}

// mediaTTL returns the default lifetime for HLS/DASH playlists and
// segments lacking freshness information, or 0.
func mediaTTL(p *property, urlPath string, h http.Header) time.Duration {
	ct := strings.ToLower(h.Get("Content-Type"))
	switch ext := strings.ToLower(path.Ext(urlPath)); {
	case ext == ".m3u8" || ext == ".mpd" || strings.Contains(ct, "mpegurl") || strings.Contains(ct, "dash+xml"):
		return p.PlaylistTTL
	case ext == ".ts" || ext == ".m4s" || ext == ".m4a" || ext == ".m4v" || ext == ".aac" || ext == ".cmfv" ||
		ext == ".cmfa" || ext == ".vtt" || ext == ".webvtt" || ext == ".mp4" && strings.Contains(urlPath, "/seg"):
		return p.SegmentTTL
	}
	return 0
}

// freshness evaluates an entry now, applying the property's default TTL.
func (s *Server) freshness(m *meta, now time.Time) httpcache.Freshness {
	an := m.an
	if an == nil {
		an = httpcache.Analyze(m.Status, m.Header, time.Unix(0, m.ReqTime), time.Unix(0, m.RespTime), &s.hopts)
	}
	f := an.At(now)
	if m.TTL > 0 && f.Lifetime == 0 && !f.NoCache {
		f.Lifetime = time.Duration(m.TTL) * time.Second
		f.Fresh = f.Age < f.Lifetime
	}
	return f
}

// lookup finds the stored entry for a request: the object at the primary
// key, or through a Vary stub the matching variant.
func (s *Server) lookup(key string, r *http.Request) (ent *entry, vkey string, varyMiss bool) {
	o, ok := s.store.Get(key)
	if !ok {
		return nil, key, false
	}
	m := s.metaOf(o)
	if m == nil {
		s.store.Delete(key)
		return nil, key, false
	}
	if m.Stub {
		vkey = variantKey(key, httpcache.VaryKey(m.Vary, r.Header))
		vo, ok := s.store.Get(vkey)
		if !ok {
			return nil, vkey, true
		}
		vm := s.metaOf(vo)
		if vm == nil {
			return nil, vkey, true
		}
		return &entry{key: vkey, m: vm, obj: vo, tags: vo.Tags}, vkey, false
	}
	return &entry{key: key, m: m, obj: o, tags: o.Tags}, key, false
}

func (s *Server) serveCacheable(w *countingWriter, r *http.Request, st *state, p *property, host string, rs *reqState) error {
	key := primaryKey(p, host, r.URL.RequestURI())
	ccLines := r.Header["Cache-Control"]
	rcc := httpcache.ParseCacheControl(ccLines)
	pragma := len(ccLines) == 0 && len(r.Header["Pragma"]) > 0 && httpcache.IsPragmaNoCache(r.Header)
	collapsed := false
	for attempt := 0; ; attempt++ {
		now := s.now()
		ent, vkey, varyMiss := s.lookup(key, r)
		if ent != nil {
			f := s.freshness(ent.m, now)
			if httpcache.RequestDirectivesAllow(rcc, pragma, f) {
				rs.cache = httpcache.Status{Hit: true, HasTTL: true, TTL: int64((f.Lifetime - f.Age) / time.Second), Collapsed: collapsed}
				return s.serveEntry(w, r, p, ent, f, rs)
			}
			reqForbidsStale := rcc.NoCache || rcc.MaxAge >= 0
			if !f.Fresh && !f.MustRevalidate && f.StaleWhileRevalidate > 0 && f.Staleness() <= f.StaleWhileRevalidate && !reqForbidsStale {
				s.revalidateAsync(r, p, host, key, ent, rs)
				rs.cache = httpcache.Status{Hit: true, HasTTL: true, TTL: int64((f.Lifetime - f.Age) / time.Second), Detail: "stale-while-revalidate"}
				return s.serveEntry(w, r, p, ent, f, rs)
			}
			if rcc.OnlyIfCached {
				return ErrOnlyIfCached
			}
			fl, leader := s.flights.begin("r" + vkey)
			if !leader && attempt == 0 {
				_ = fl.wait(r.Context())
				collapsed = true
				continue
			}
			err := s.revalidate(w, r, p, host, key, ent, f, rs)
			if leader {
				s.flights.end("r"+vkey, fl, err)
			}
			return err
		}
		if rcc.OnlyIfCached {
			return ErrOnlyIfCached
		}
		fl, leader := s.flights.begin("m" + key)
		if !leader && attempt == 0 {
			if err := fl.wait(r.Context()); err != nil && r.Context().Err() != nil {
				return err
			}
			collapsed = true
			continue
		}
		fwd := "uri-miss"
		if varyMiss {
			fwd = "vary-miss"
		}
		rs.cache = httpcache.Status{Fwd: fwd}
		rs.stub = varyMiss
		err := s.fetch(w, r, p, host, key, nil, rs, func(err error) {
			if leader {
				s.flights.end("m"+key, fl, err)
				leader = false
			}
		})
		if leader {
			s.flights.end("m"+key, fl, err)
		}
		return err
	}
}

// fetch forwards a miss (or, with stale set, a revalidation) to the
// origin, stores what may be stored and serves the client. done is called
// once the stored entry is visible to other requests (or on failure).
func (s *Server) fetch(w *countingWriter, r *http.Request, p *property, host, key string, stale *entry, rs *reqState, done func(error)) error {
	ctx := r.Context()
	out, err := s.originRequest(ctx, r, p, http.MethodGet, nil, rs, true)
	if err != nil {
		done(err)
		return err
	}
	clientRange := r.Header.Get("Range")
	if rg, ok := parseRange(clientRange); ok && stale == nil && r.Method == http.MethodGet && rg.count == 1 && r.Header.Get("If-Range") == "" {
		out.Header.Set("Range", clientRange) // fetch only what was asked; slices fill the rest on demand
	}
	if stale != nil {
		if et := stale.m.Header.Get("ETag"); et != "" {
			out.Header.Set("If-None-Match", et)
		}
		if lm := stale.m.Header.Get("Last-Modified"); lm != "" {
			out.Header.Set("If-Modified-Since", lm)
		}
	}
	reqTime := s.now()
	resp, err := s.roundTrip(p, out)
	if err != nil {
		done(err)
		return err
	}
	respTime := s.now()
	defer resp.Body.Close()
	rs.cache.FwdStatus = resp.StatusCode
	if stale != nil && resp.StatusCode == http.StatusNotModified {
		ent := s.refresh(p, stale, resp.Header, reqTime, respTime)
		done(nil)
		f := s.freshness(ent.m, s.now())
		return s.serveEntry(w, r, p, ent, f, rs)
	}
	if stale != nil && resp.StatusCode >= 500 {
		f := s.freshness(stale.m, s.now())
		if canServeStaleOnError(f, r.Header) {
			done(nil)
			rs.cache.Detail = "stale-if-error"
			rs.cache.Fwd, rs.cache.Hit = "", true
			return s.serveEntry(w, r, p, stale, f, rs)
		}
	}
	ent, ready, storeErr := s.store1(ctx, r, p, host, key, stale, resp, reqTime, respTime, rs)
	if storeErr == nil {
		if err = <-ready; errors.Is(err, errNotStored) {
			storeErr = err // nothing of the body was consumed: hand it through
		}
	}
	if storeErr != nil {
		if stale != nil && resp.StatusCode < 500 {
			s.store.Delete(stale.key) // the origin no longer lets us keep it
		}
		// not storable: hand the response through as it is
		done(errUncacheable)
		if resp.StatusCode == http.StatusNotModified && stale == nil {
			// only possible when the origin ignored our unconditional request
			resp.StatusCode = http.StatusBadGateway
		}
		passHeader(w.Header(), resp.Header)
		w.Header().Add("Cache-Status", rs.cache.Format(s.node))
		w.WriteHeader(resp.StatusCode)
		return s.copyBody(w, resp.Body, r)
	}
	done(err)
	if err != nil {
		return err
	}
	rs.cache.Stored = true
	f := s.freshness(ent.m, s.now())
	return s.serveEntry(w, r, p, ent, f, rs)
}

func canServeStaleOnError(f httpcache.Freshness, req http.Header) bool {
	if f.StaleIfError > 0 && f.Staleness() <= f.StaleIfError {
		return true
	}
	rc := httpcache.ParseCacheControl(req.Values("Cache-Control"))
	if rc.StaleIfError > 0 && f.Staleness() <= time.Duration(rc.StaleIfError)*time.Second {
		return true
	}
	// RFC 9111 §4.2.4: a disconnected cache may serve stale unless told not to
	return !f.MustRevalidate && !f.NoCache
}

// revalidate validates a stale entry with the origin, serving stale on
// failure where allowed.
func (s *Server) revalidate(w *countingWriter, r *http.Request, p *property, host, key string, ent *entry, f httpcache.Freshness, rs *reqState) error {
	rs.cache = httpcache.Status{Fwd: "stale"}
	err := s.fetch(w, r, p, host, key, ent, rs, func(error) {})
	if err != nil && w.status == 0 && (errors.Is(err, ErrOrigin) || errors.Is(err, ErrOriginSlow)) && canServeStaleOnError(f, r.Header) {
		rs.cache = httpcache.Status{Hit: true, Fwd: "", Detail: "stale-if-error"}
		return s.serveEntry(w, r, p, ent, s.freshness(ent.m, s.now()), rs)
	}
	return err
}

// revalidateAsync refreshes an entry in the background
// (stale-while-revalidate); at most one refresh per entry runs at a time.
func (s *Server) revalidateAsync(r *http.Request, p *property, host, key string, ent *entry, rs *reqState) {
	fk := "r" + ent.key
	fl, leader := s.flights.begin(fk)
	if !leader {
		return
	}
	tc := rs.trace()
	r2 := r.Clone(s.bgCtx)
	r2.Method = http.MethodGet
	r2.Header.Del("Range")
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		ctx, cancel := context.WithTimeout(s.bgCtx, s.originTO+30*time.Second)
		defer cancel()
		r2 = r2.WithContext(ctx)
		brs := &reqState{tc: tc, traced: true, prop: p.Name}
		err := s.fetch(&countingWriter{ResponseWriter: discardWriter{h: http.Header{}}}, r2, p, host, key, ent, brs, func(error) {})
		s.flights.end(fk, fl, err)
	}()
}

// discardWriter is a ResponseWriter for background fetches.
type discardWriter struct{ h http.Header }

func (d discardWriter) Header() http.Header         { return d.h }
func (d discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d discardWriter) WriteHeader(int)             {}

// refresh applies a 304 to a stored entry and stores the result.
func (s *Server) refresh(p *property, ent *entry, h http.Header, reqTime, respTime time.Time) *entry {
	m := *ent.m
	m.Header = ent.m.Header.Clone()
	httpcache.Update304(m.Header, h)
	m.ReqTime, m.RespTime = reqTime.UnixNano(), respTime.UnixNano()
	m.analyze(&s.hopts)
	ne := &entry{key: ent.key, m: &m, tags: surrogateKeys(m.Header)}
	var body []byte
	if !m.Sliced {
		if ent.obj != nil {
			b, err := ent.obj.ReadAll()
			if err != nil {
				return ent
			}
			body = b[:ent.obj.Size]
		} else {
			body = ent.body
		}
		ne.body = body
	}
	mb := encodeMeta(&m)
	if err := s.store.Put(context.Background(), cachestore.Item{Key: ent.key, Group: p.Name, Tags: ne.tags, Meta: mb, Body: body}); err == nil {
		if o, ok := s.store.Get(ent.key); ok {
			ne.obj, ne.body = o, nil
		}
	}
	return ne
}

func surrogateKeys(h http.Header) []string {
	var tags []string
	for _, v := range h.Values("Surrogate-Key") {
		for _, t := range strings.Fields(v) {
			if len(t) <= 256 && len(tags) < 64 {
				tags = append(tags, t)
			}
		}
	}
	return tags
}
