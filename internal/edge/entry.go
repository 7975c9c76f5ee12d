package edge

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"avalanche/internal/cachestore"
	"avalanche/internal/httpcache"
)

// meta is what the edge stores about a response, as the object's Meta
// (encoded by encodeMeta).
type meta struct {
	Status    int
	Header    http.Header
	ReqTime   int64 // unix nanoseconds
	RespTime  int64
	Size      int64 // body length
	Sliced    bool  // body in slice objects
	SliceSize int64
	Version   string // names this body's slices
	Stub      bool
	Vary      []string // stub: the Vary names
	TTL       int64
	URL       string

	an *httpcache.Analysis // computed once per stored version
}

// analyze fills m.an; call before sharing m.
func (m *meta) analyze(o *httpcache.Options) *meta {
	if !m.Stub {
		m.an = httpcache.Analyze(m.Status, m.Header, time.Unix(0, m.ReqTime), time.Unix(0, m.RespTime), o)
	}
	return m
}

func (s *Server) decodeMeta(o *cachestore.Object) any {
	m, err := decodeMetaBytes(o.Meta)
	if err != nil {
		return (*meta)(nil)
	}
	return m.analyze(&s.hopts)
}

func (s *Server) metaOf(o *cachestore.Object) *meta { return o.Memo(s.decodeFn).(*meta) }

// entry is a stored (or just fetched) response ready to serve.
type entry struct {
	key  string
	m    *meta
	obj  *cachestore.Object // inline body holder; nil when body is in inline
	body []byte             // inline body when not stored
	tags []string
}

// reqState carries per-request facts to logging and metrics.
type reqState struct {
	prop     string
	cache    httpcache.Status
	stub     bool   // a Vary stub exists for the key (vary-miss)
	incoming string // the client's traceparent
	tc       traceContext
	traced   bool
	err      error
}

// trace returns the request's trace context, continuing the client's
// traceparent or starting a trace, on first use (a cache hit that is not
// logged never needs one).
func (rs *reqState) trace() traceContext {
	if !rs.traced {
		rs.tc, rs.traced = newTrace(rs.incoming), true
	}
	return rs.tc
}

const keySep = "\x1f"

func primaryKey(p *property, host, uri string) string {
	return uri + keySep + host + keySep + p.Name
}

func variantKey(primary, vary string) string { return primary + "\x00v\x00" + vary }

func sliceKey(entKey, version string, idx int64) string {
	return entKey + "\x00s\x00" + version + "\x00" + strconv.FormatInt(idx, 10)
}

func hostOnly(h string) string {
	h = strings.ToLower(h)
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return strings.TrimSuffix(h, ".")
}
