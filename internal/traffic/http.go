package traffic

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Limits on the routing API's query.
const (
	maxQueryLen = 4096
	maxPathLen  = 2048
)

// Register adds the traffic manager's HTTP API to mux:
//
//	GET    /v1/route?property=P&path=X[&n=N][&client=IP]  ranked edges as JSON
//	GET    /{property}/{path...}                          302 to the best edge
//	POST   /v1/edges/heartbeat                            edge report (edge token)
//	GET    /v1/edges                                      registry and health (admin)
//	DELETE /v1/edges/{id}                                 forget an edge (admin)
//	PUT    /v1/edges/{id}/drain                           {"drained":true,"reason":"..."} (admin)
//	GET    /v1/properties                                 property names (admin)
//	GET    /v1/properties/{name}                          policy (admin or property token)
//	PUT    /v1/properties/{name}                          set policy (admin; property token if it exists)
//	DELETE /v1/properties/{name}                          remove (admin or property token)
//
// Tokens travel as "Authorization: Bearer <token>".
func (m *Manager) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/route", m.instrument("route", m.handleRoute))
	mux.HandleFunc("GET /{property}/{path...}", m.instrument("redirect", m.handleRedirect))
	mux.HandleFunc("POST /v1/edges/heartbeat", m.instrument("heartbeat", m.handleHeartbeat))
	mux.HandleFunc("GET /v1/edges", m.instrument("admin", m.handleEdges))
	mux.HandleFunc("DELETE /v1/edges/{id}", m.instrument("admin", m.handleDeleteEdge))
	mux.HandleFunc("PUT /v1/edges/{id}/drain", m.instrument("admin", m.handleDrain))
	mux.HandleFunc("GET /v1/properties", m.instrument("admin", m.handleProperties))
	mux.HandleFunc("GET /v1/properties/{name}", m.instrument("admin", m.handleGetPolicy))
	mux.HandleFunc("PUT /v1/properties/{name}", m.instrument("admin", m.handlePutPolicy))
	mux.HandleFunc("DELETE /v1/properties/{name}", m.instrument("admin", m.handleDeletePolicy))
}

// Handler returns the HTTP API on a mux of its own.
func (m *Manager) Handler() http.Handler {
	mux := http.NewServeMux()
	m.Register(mux)
	return mux
}

// handlerFunc is a handler that returns its error; instrument writes it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.code = code
	s.ResponseWriter.WriteHeader(code)
}

// instrument turns a handlerFunc into an http.HandlerFunc: it maps the
// returned error to a status and a JSON body, and counts the request.
func (m *Manager) instrument(endpoint string, h handlerFunc) http.HandlerFunc {
	counters := [6]interface{ Inc() }{}
	for i := 1; i <= 5; i++ {
		counters[i] = m.metrics.requests.WithLabelValues(endpoint, strconv.Itoa(i)+"xx")
	}
	hist := m.metrics.duration.WithLabelValues(endpoint)
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		defer func() { hist.Observe(time.Since(start).Seconds()) }()
		rec := &statusRecorder{ResponseWriter: w, code: http.StatusOK}
		if err := h(rec, r); err != nil {
			code := httpStatus(err)
			if code == http.StatusInternalServerError {
				m.log.Error("traffic: request failed", "path", r.URL.Path, "err", err)
			}
			writeJSON(rec, code, map[string]string{"error": err.Error()})
		}
		if c := rec.code / 100; c >= 1 && c <= 5 {
			counters[c].Inc()
		}
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func remoteAddr(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		host, _, err := net.SplitHostPort(r.RemoteAddr)
		if err != nil {
			return netip.Addr{}
		}
		a, _ := netip.ParseAddr(host)
		return a.Unmap()
	}
	return ap.Addr().Unmap()
}

func (m *Manager) trusted(a netip.Addr) bool {
	for _, p := range m.cfg.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "Bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// tokenOK checks the request's bearer token against want; with no token
// configured only loopback clients pass.
func tokenOK(r *http.Request, want string) bool {
	if want == "" {
		return remoteAddr(r).IsLoopback()
	}
	got := bearer(r)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

func (m *Manager) admin(r *http.Request) error {
	if !tokenOK(r, m.cfg.AdminToken) {
		return fmt.Errorf("%w: admin token required", ErrUnauthorized)
	}
	return nil
}

// routeQuery parses and checks the routing parameters of r.
func (m *Manager) routeQuery(r *http.Request, property, path string) (Query, error) {
	remote := remoteAddr(r)
	trusted := m.trusted(remote)
	if !trusted && m.limiter != nil && !m.limiter.Allow(remote, m.now()) {
		return Query{}, ErrRateLimited
	}
	if len(r.URL.RawQuery) > maxQueryLen {
		return Query{}, fmt.Errorf("%w: query longer than %d bytes", ErrInvalid, maxQueryLen)
	}
	if !ValidProperty(property) {
		return Query{}, fmt.Errorf("%w: property %.80q is not a valid name", ErrInvalid, property)
	}
	if len(path) > maxPathLen {
		return Query{}, fmt.Errorf("%w: path longer than %d bytes", ErrInvalid, maxPathLen)
	}
	for i := 0; i < len(path); i++ {
		if path[i] < 0x20 || path[i] == 0x7f {
			return Query{}, fmt.Errorf("%w: control character in path", ErrInvalid)
		}
	}
	q := Query{Property: property, Path: path, Client: remote}
	if s := r.URL.Query().Get("client"); s != "" {
		if !trusted {
			return Query{}, fmt.Errorf("%w: the client parameter is honoured only from trusted proxies", ErrUnauthorized)
		}
		a, err := netip.ParseAddr(s)
		if err != nil {
			return Query{}, fmt.Errorf("%w: client %.60q is not an IP address", ErrInvalid, s)
		}
		q.Client = a
	}
	if s := r.URL.Query().Get("n"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxAnswers {
			return Query{}, fmt.Errorf("%w: n must be 1-%d", ErrInvalid, maxAnswers)
		}
		q.Max = n
	} else {
		q.Max = 3
	}
	return q, nil
}

func (m *Manager) handleRoute(w http.ResponseWriter, r *http.Request) error {
	vals := r.URL.Query()
	q, err := m.routeQuery(r, vals.Get("property"), vals.Get("path"))
	if err != nil {
		return err
	}
	d, err := m.Route(r.Context(), q)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "private, max-age="+strconv.Itoa(d.TTLSeconds))
	writeJSON(w, http.StatusOK, d)
	return nil
}

func (m *Manager) handleRedirect(w http.ResponseWriter, r *http.Request) error {
	property := r.PathValue("property")
	q, err := m.routeQuery(r, property, r.PathValue("path"))
	if err != nil {
		return err
	}
	q.Max = 1
	d, err := m.Route(r.Context(), q)
	if err != nil {
		return err
	}
	target := d.Origin
	if len(d.Edges) > 0 {
		target = d.Edges[0].URL
	}
	// Keep the object's own query string, minus our routing parameter.
	vals := r.URL.Query()
	vals.Del("client")
	if enc := vals.Encode(); enc != "" {
		target += "?" + enc
	}
	w.Header().Set("Cache-Control", "private, max-age="+strconv.Itoa(d.TTLSeconds))
	http.Redirect(w, r, target, http.StatusFound)
	return nil
}

// heartbeatReply tells an edge how often to report.
type heartbeatReply struct {
	IntervalSeconds int `json:"interval_seconds"`
}

func (m *Manager) handleHeartbeat(w http.ResponseWriter, r *http.Request) error {
	if !tokenOK(r, m.cfg.EdgeToken) {
		return fmt.Errorf("%w: edge token required", ErrUnauthorized)
	}
	var e Edge
	if err := decodeBody(w, r, maxHeartbeatBody, &e, false); err != nil {
		return err
	}
	if err := m.Heartbeat(r.Context(), e); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, heartbeatReply{IntervalSeconds: max(int(m.cfg.HeartbeatTimeout.Seconds()/3), 1)})
	return nil
}

func decodeBody(w http.ResponseWriter, r *http.Request, limit int64, v any, strict bool) error {
	body := http.MaxBytesReader(w, r.Body, limit)
	dec := json.NewDecoder(body)
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return fmt.Errorf("%w: body larger than %d bytes", ErrTooLarge, limit)
		}
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

func (m *Manager) handleEdges(w http.ResponseWriter, r *http.Request) error {
	if err := m.admin(r); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m.Edges())
	return nil
}

func (m *Manager) handleDeleteEdge(w http.ResponseWriter, r *http.Request) error {
	if err := m.admin(r); err != nil {
		return err
	}
	if err := m.DeleteEdge(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// DrainRequest is the body of PUT /v1/edges/{id}/drain.
type DrainRequest struct {
	Drained bool   `json:"drained"`
	Reason  string `json:"reason,omitempty"`
}

func (m *Manager) handleDrain(w http.ResponseWriter, r *http.Request) error {
	if err := m.admin(r); err != nil {
		return err
	}
	var req DrainRequest
	if err := decodeBody(w, r, 4096, &req, true); err != nil {
		return err
	}
	if err := m.Drain(r.Context(), r.PathValue("id"), req.Drained, req.Reason); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (m *Manager) handleProperties(w http.ResponseWriter, r *http.Request) error {
	if err := m.admin(r); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, m.Properties())
	return nil
}

// propertyAuth allows the admin, or the holder of the property's token.
// Unknown properties are reported as unauthorized to non-admins, so that
// names cannot be probed.
func (m *Manager) propertyAuth(r *http.Request, name string) (*Policy, error) {
	p, err := m.Policy(name)
	if m.admin(r) == nil {
		return p, err
	}
	if err == nil && p.checkToken(bearer(r)) {
		return p, nil
	}
	return nil, fmt.Errorf("%w: admin or property token required", ErrUnauthorized)
}

func (m *Manager) handleGetPolicy(w http.ResponseWriter, r *http.Request) error {
	p, err := m.propertyAuth(r, r.PathValue("name"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (m *Manager) handlePutPolicy(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if _, err := m.propertyAuth(r, name); err != nil && !(errors.Is(err, ErrUnknownProperty)) {
		return err
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxPolicyBytes))
	if err != nil {
		return fmt.Errorf("%w: policy larger than %d bytes", ErrTooLarge, MaxPolicyBytes)
	}
	p, err := ParsePolicy(body)
	if err != nil {
		return err
	}
	if p.Name != name {
		return fmt.Errorf("%w: policy name %q does not match the URL's %q", ErrInvalid, p.Name, name)
	}
	if err := m.PutPolicy(r.Context(), p); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (m *Manager) handleDeletePolicy(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if _, err := m.propertyAuth(r, name); err != nil {
		return err
	}
	if err := m.DeletePolicy(r.Context(), name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
