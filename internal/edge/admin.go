package edge

import (
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// AdminHandler returns the admin API handler:
//
//	GET  /healthz                              liveness (no token)
//	GET  /metrics                              Prometheus metrics (no token)
//	GET  /v1/properties                        properties the token may see
//	GET  /v1/properties/{name}                 one property and its cache use
//	GET  /v1/properties/{name}/keys?prefix=&limit=   cached URLs
//	POST /v1/properties/{name}/purge           {"urls":[],"prefixes":[],"tags":[]}
//
// Calls under /v1 need "Authorization: Bearer <token>": the node's admin
// token, or the property's own token, which is valid for that property only.
func (s *Server) AdminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("ok\n"))
	})
	mux.Handle("GET /metrics", s.met.handler())
	mux.HandleFunc("GET /v1/properties", s.adminList)
	mux.HandleFunc("GET /v1/properties/{name}", s.adminProperty(s.adminGet))
	mux.HandleFunc("GET /v1/properties/{name}/keys", s.adminProperty(s.adminKeys))
	mux.HandleFunc("POST /v1/properties/{name}/purge", s.adminProperty(s.adminPurge))
	return mux
}

func bearer(r *http.Request) (string, bool) {
	a := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(a, "Bearer ")
	if !ok || tok == "" {
		return "", false
	}
	return tok, true
}

func tokenEq(a, b string) bool {
	return b != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// authorize checks the token for property name. A property that does not
// exist answers exactly like one the token may not see.
func (st *state) authorize(r *http.Request, name string) (*property, error) {
	tok, ok := bearer(r)
	if !ok {
		return nil, ErrUnauthorized
	}
	p := st.byName[name]
	if tokenEq(tok, st.adminToken) {
		if p == nil {
			return nil, ErrNotFound
		}
		return p, nil
	}
	if p == nil || !tokenEq(tok, p.Token) {
		return nil, ErrForbidden
	}
	return p, nil
}

func adminError(w http.ResponseWriter, err error) {
	code := statusOf(err)
	if errors.Is(err, ErrUnauthorized) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="avalanche-edge"`)
	}
	writeJSON(w, code, map[string]string{"error": err.Error()})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (s *Server) adminProperty(h func(http.ResponseWriter, *http.Request, *property)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, err := s.state.Load().authorize(r, r.PathValue("name"))
		if err != nil {
			adminError(w, err)
			return
		}
		h(w, r, p)
	}
}

type propertyView struct {
	Name       string   `json:"name"`
	Hosts      []string `json:"hosts"`
	PathPrefix string   `json:"path_prefix,omitempty"`
	Origin     string   `json:"origin"`
	CacheBytes int64    `json:"cache_bytes_budget"`
	UsedBytes  int64    `json:"cache_bytes_used"`
}

func (s *Server) view(p *property) propertyView {
	return propertyView{Name: p.Name, Hosts: p.hosts, PathPrefix: p.PathPrefix, Origin: p.Origin, CacheBytes: p.CacheBytes,
		UsedBytes: s.store.Stats().Groups[p.Name]}
}

func (s *Server) adminList(w http.ResponseWriter, r *http.Request) {
	st := s.state.Load()
	tok, ok := bearer(r)
	if !ok {
		adminError(w, ErrUnauthorized)
		return
	}
	out := []propertyView{}
	for _, p := range st.props {
		if tokenEq(tok, st.adminToken) || tokenEq(tok, p.Token) {
			out = append(out, s.view(p))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) adminGet(w http.ResponseWriter, r *http.Request, p *property) {
	writeJSON(w, http.StatusOK, s.view(p))
}

// keyURL turns a cache key back into the URL it was stored under.
func keyURL(key string) string {
	fam := key
	if i := strings.IndexByte(key, 0); i >= 0 {
		fam = key[:i]
	}
	parts := strings.Split(fam, keySep)
	if len(parts) < 2 {
		return fam
	}
	return "//" + parts[1] + parts[0]
}

func (s *Server) adminKeys(w http.ResponseWriter, r *http.Request, p *property) {
	limit := 1000
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 100000 {
			adminError(w, ErrBadRequest)
			return
		}
		limit = n
	}
	prefix := r.URL.Query().Get("prefix")
	seen := map[string]bool{}
	urls := []string{}
	for _, k := range s.store.Keys(p.Name, prefix, limit*4) {
		u := keyURL(k)
		if !seen[u] {
			seen[u] = true
			urls = append(urls, u)
		}
		if len(urls) >= limit {
			break
		}
	}
	sort.Strings(urls)
	writeJSON(w, http.StatusOK, map[string]any{"property": p.Name, "urls": urls})
}

// PurgeRequest is the body of a purge call. URLs are absolute
// ("https://host/path?q") or paths ("/path?q", every host of the property);
// prefixes are path prefixes; tags are Surrogate-Key values.
type PurgeRequest struct {
	URLs     []string `json:"urls"`
	Prefixes []string `json:"prefixes"`
	Tags     []string `json:"tags"`
}

// maxPurgeItems bounds one purge call.
const maxPurgeItems = 10000

func (s *Server) adminPurge(w http.ResponseWriter, r *http.Request, p *property) {
	var req PurgeRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		adminError(w, errors.Join(ErrBadRequest, err))
		return
	}
	if len(req.URLs)+len(req.Prefixes)+len(req.Tags) > maxPurgeItems {
		adminError(w, ErrBadRequest)
		return
	}
	n := s.Purge(p.Name, req)
	writeJSON(w, http.StatusOK, map[string]any{"property": p.Name, "purged": n})
}

// Purge removes cached objects of property prop. It returns how many
// objects (responses, variants and slices) were removed.
func (s *Server) Purge(prop string, req PurgeRequest) int {
	st := s.state.Load()
	p := st.byName[prop]
	if p == nil {
		return 0
	}
	n := 0
	for _, raw := range req.URLs {
		u, err := url.Parse(raw)
		if err != nil || u.Path == "" && u.RawQuery == "" {
			continue
		}
		uri := u.RequestURI()
		if u.Host != "" {
			n += s.store.DeleteFamily(primaryKey(p, hostOnly(u.Host), uri))
			continue
		}
		n += s.store.DeletePrefix(p.Name, uri+keySep)
	}
	for _, pre := range req.Prefixes {
		if pre == "" || pre[0] != '/' {
			continue
		}
		n += s.store.DeletePrefix(p.Name, pre)
	}
	for _, t := range req.Tags {
		if t != "" {
			n += s.store.DeleteTag(p.Name, t)
		}
	}
	s.met.purged.WithLabelValues(p.Name).Add(float64(n))
	return n
}
