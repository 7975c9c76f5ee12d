package origin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"avalanche/internal/contentstore"
	"avalanche/internal/manifest"
)

// immutable is the Cache-Control of everything addressed by content ID.
const immutable = "public, max-age=31536000, immutable"

// ManifestContentType is the media type of a signed manifest.
const ManifestContentType = "application/vnd.avalanche.manifest"

func (o *Origin) routes() {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/properties/{p}/manifests", o.putManifest)
	mux.HandleFunc("PUT /v1/properties/{p}/content/{id}", o.putContent)
	mux.HandleFunc("GET /v1/properties/{p}/content", o.listContent)
	mux.HandleFunc("GET /v1/properties/{p}/content/{id}", o.statContent)
	mux.HandleFunc("DELETE /v1/properties/{p}/content/{id}", o.deleteContent)
	mux.HandleFunc("GET /v1/manifest/{id}", o.getManifest)
	mux.HandleFunc("GET /v1/content/{id}", o.getContent)
	mux.HandleFunc("GET /d/{id}/{name}", o.download)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		io.WriteString(w, "ok\n")
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(o.reg, promhttp.HandlerOpts{}))
	o.mux = mux
	o.handler = o.instrument(mux)
}

// ---- errors: the one place where errors become HTTP statuses ----

// bodyError marks an error that came from reading the request body.
type bodyError struct{ err error }

func (e *bodyError) Error() string { return "reading request body: " + e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// statusOf maps an error to the HTTP status the client gets.
func statusOf(err error) int {
	var maxBytes *http.MaxBytesError
	var body *bodyError
	switch {
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, ErrForbidden), errors.Is(err, manifest.ErrPublisher):
		return http.StatusForbidden
	case errors.Is(err, contentstore.ErrNotFound), errors.Is(err, contentstore.ErrIncomplete):
		return http.StatusNotFound
	case errors.Is(err, contentstore.ErrBusy):
		return http.StatusConflict
	case errors.As(err, &maxBytes), errors.Is(err, contentstore.ErrQuota), errors.Is(err, manifest.ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, contentstore.ErrHashMismatch):
		return http.StatusUnprocessableEntity
	case errors.Is(err, os.ErrDeadlineExceeded):
		return http.StatusRequestTimeout
	case errors.Is(err, syscall.ENOSPC):
		return http.StatusInsufficientStorage
	case errors.Is(err, contentstore.ErrClosed):
		return http.StatusServiceUnavailable
	case errors.As(err, &body), errors.Is(err, context.Canceled), // the client went away mid-request
		errors.Is(err, contentstore.ErrTooLong), errors.Is(err, contentstore.ErrTooShort),
		errors.Is(err, ErrPropertyMismatch), errors.Is(err, ErrBadRequest),
		errors.Is(err, manifest.ErrMalformed), errors.Is(err, manifest.ErrSignature),
		errors.Is(err, manifest.ErrUnsigned), errors.Is(err, manifest.ErrVersion),
		errors.Is(err, manifest.ErrBadParams), errors.Is(err, manifest.ErrBadName),
		errors.Is(err, manifest.ErrBadProperty):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

// errorBody is the JSON body of every error response.
type errorBody struct {
	Error  string `json:"error"`
	Status int    `json:"status"`
}

// fail writes err as a JSON error response. Server-side errors are logged
// and not detailed to the client.
func (o *Origin) fail(w http.ResponseWriter, r *http.Request, err error) {
	code := statusOf(err)
	msg := err.Error()
	if code >= 500 && code != http.StatusInsufficientStorage && code != http.StatusServiceUnavailable {
		o.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		msg = "internal server error"
	}
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="avalanche"`)
	}
	writeJSON(w, code, errorBody{Error: msg, Status: code})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	w.Write(append(b, '\n'))
}

// ---- authorization ----

// bearer returns the token of an "Authorization: Bearer" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	if tok == "" || len(tok) > maxTokenLen {
		return "", false
	}
	return tok, true
}

// authorize checks that the request's bearer token belongs to property p.
// The presented token is hashed and compared with every configured token
// in constant time, without stopping at the first match, so timing reveals
// neither the token nor which property it belongs to.
func (o *Origin) authorize(r *http.Request, p string) (*Property, error) {
	tok, ok := bearer(r)
	if !ok {
		return nil, ErrUnauthorized
	}
	h := sha256.Sum256([]byte(tok))
	var match *Property
	for i := range o.props {
		for _, t := range o.props[i].Tokens {
			if subtle.ConstantTimeCompare(h[:], t[:]) == 1 {
				match = &o.props[i]
			}
		}
	}
	switch {
	case match == nil:
		return nil, ErrUnauthorized
	case match.Name != p:
		return nil, fmt.Errorf("%w %q", ErrForbidden, p)
	}
	return match, nil
}

// ---- publish API ----

// Object is the JSON description of stored content in API responses.
type Object struct {
	ID       string    `json:"id"`
	Property string    `json:"property"`
	Name     string    `json:"name"`
	Size     int64     `json:"size"`
	Created  time.Time `json:"created"`
	Complete bool      `json:"complete"`
	Stored   time.Time `json:"stored,omitzero"`
	// URL is where the content can be downloaded once complete.
	URL string `json:"url,omitempty"`
}

// Listing is the JSON response of GET /v1/properties/{p}/content.
type Listing struct {
	Property   string   `json:"property"`
	Objects    int      `json:"objects"`
	Bytes      int64    `json:"bytes"`
	QuotaBytes int64    `json:"quota_bytes,omitempty"`
	Content    []Object `json:"content"`
}

func (o *Origin) baseURL(r *http.Request) string {
	if o.cfg.PublicURL != "" {
		return strings.TrimSuffix(o.cfg.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (o *Origin) objectOf(r *http.Request, e contentstore.Entry) Object {
	return Object{
		ID:       e.ID.String(),
		Property: e.Property,
		Name:     e.Name,
		Size:     e.Size,
		Created:  e.Created,
		Complete: e.Complete,
		Stored:   e.Stored,
		URL:      o.baseURL(r) + downloadPath(e.ID, e.Name),
	}
}

func downloadPath(id manifest.ID, name string) string {
	return "/d/" + id.String() + "/" + url.PathEscape(name)
}

func (o *Origin) putManifest(w http.ResponseWriter, r *http.Request) {
	p := r.PathValue("p")
	prop, err := o.authorize(r, p)
	if err != nil {
		o.fail(w, r, err)
		return
	}
	m, err := o.readManifest(w, r)
	if err == nil && m.Property != p {
		err = fmt.Errorf("%w: manifest is for property %q, not %q", ErrPropertyMismatch, m.Property, p)
	}
	if err == nil {
		if err = m.CheckPublisher(prop.Publishers...); err != nil {
			err = fmt.Errorf("%w (publisher key %x)", err, []byte(m.Publisher))
		}
	}
	var created bool
	if err == nil {
		created, err = o.store.PutManifest(m, prop.QuotaBytes)
	}
	if err != nil {
		o.m.publishes.WithLabelValues(p, "manifest", "rejected").Inc()
		o.fail(w, r, err)
		return
	}
	e, _, err := o.store.Stat(m.ID())
	if err != nil { // deleted meanwhile
		o.fail(w, r, err)
		return
	}
	code, result := http.StatusCreated, "created"
	if !created {
		code, result = http.StatusOK, "exists"
	}
	o.m.publishes.WithLabelValues(p, "manifest", result).Inc()
	o.log.Info("manifest published", "property", p, "id", m.ID().String(), "name", m.Name, "size", m.Size, "new", created)
	writeJSON(w, code, o.objectOf(r, e))
}

// readManifest reads and verifies the signed manifest in the request body.
func (o *Origin) readManifest(w http.ResponseWriter, r *http.Request) (*manifest.Manifest, error) {
	if r.ContentLength > o.cfg.MaxManifestBytes {
		return nil, fmt.Errorf("%w: manifest of %d bytes, limit %d", manifest.ErrTooLarge, r.ContentLength, o.cfg.MaxManifestBytes)
	}
	var buf bytes.Buffer
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	body := &idleReader{r: http.MaxBytesReader(w, r.Body, o.cfg.MaxManifestBytes), rc: http.NewResponseController(w), idle: o.cfg.UploadIdleTimeout}
	if _, err := buf.ReadFrom(body); err != nil {
		return nil, err
	}
	return manifest.Parse(buf.Bytes())
}

// lookup parses the {id} path value and returns the entry and manifest of
// stored content that belongs to property p (any other property's content
// is reported as not found).
func (o *Origin) lookup(r *http.Request, p string) (contentstore.Entry, *manifest.Manifest, error) {
	id, err := manifest.ParseID(r.PathValue("id"))
	if err != nil {
		return contentstore.Entry{}, nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	e, m, err := o.store.Stat(id)
	if err == nil && e.Property != p {
		err = fmt.Errorf("%w: %s in property %q", contentstore.ErrNotFound, id.Short(), p)
	}
	return e, m, err
}

func (o *Origin) putContent(w http.ResponseWriter, r *http.Request) {
	p := r.PathValue("p")
	if _, err := o.authorize(r, p); err != nil {
		o.fail(w, r, err)
		return
	}
	e, m, err := o.lookup(r, p)
	if err == nil && !e.Complete && r.ContentLength >= 0 && r.ContentLength != m.Size {
		err = fmt.Errorf("%w: Content-Length %d, manifest size %d", ErrBadRequest, r.ContentLength, m.Size)
	}
	if err != nil {
		o.m.publishes.WithLabelValues(p, "content", "rejected").Inc()
		o.fail(w, r, err)
		return
	}
	var created bool
	if !e.Complete {
		body := &idleReader{r: r.Body, rc: http.NewResponseController(w), idle: o.cfg.UploadIdleTimeout}
		created, err = o.store.Upload(r.Context(), e.ID, body)
		if err != nil {
			o.m.publishes.WithLabelValues(p, "content", "rejected").Inc()
			o.log.Warn("upload refused", "property", p, "id", e.ID.String(), "err", err)
			o.fail(w, r, err)
			return
		}
	}
	code, result := http.StatusOK, "exists"
	if created {
		code, result = http.StatusCreated, "created"
		o.m.uploaded.WithLabelValues(p).Add(float64(m.Size))
		o.log.Info("content published", "property", p, "id", e.ID.String(), "name", m.Name, "size", m.Size)
		if o.cfg.OnPublish != nil {
			o.cfg.OnPublish(m)
		}
	}
	o.m.publishes.WithLabelValues(p, "content", result).Inc()
	e, _, err = o.store.Stat(e.ID)
	if err != nil {
		o.fail(w, r, err)
		return
	}
	writeJSON(w, code, o.objectOf(r, e))
}

// idleReader extends the connection's read deadline before every read, so
// an upload may take as long as it needs but may not stall.
type idleReader struct {
	r    io.Reader
	rc   *http.ResponseController
	idle time.Duration
}

func (ir *idleReader) Read(p []byte) (int, error) {
	ir.rc.SetReadDeadline(time.Now().Add(ir.idle)) // unsupported in some tests' writers: then no deadline
	n, err := ir.r.Read(p)
	if err != nil && err != io.EOF {
		err = &bodyError{err}
	}
	return n, err
}

func (o *Origin) listContent(w http.ResponseWriter, r *http.Request) {
	p := r.PathValue("p")
	prop, err := o.authorize(r, p)
	if err != nil {
		o.fail(w, r, err)
		return
	}
	u := o.store.Usage(p)
	l := Listing{Property: p, Objects: u.Objects, Bytes: u.Bytes, QuotaBytes: prop.QuotaBytes, Content: []Object{}}
	for _, e := range o.store.List(p) {
		l.Content = append(l.Content, o.objectOf(r, e))
	}
	writeJSON(w, http.StatusOK, l)
}

func (o *Origin) statContent(w http.ResponseWriter, r *http.Request) {
	p := r.PathValue("p")
	if _, err := o.authorize(r, p); err != nil {
		o.fail(w, r, err)
		return
	}
	e, _, err := o.lookup(r, p)
	if err != nil {
		o.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, o.objectOf(r, e))
}

func (o *Origin) deleteContent(w http.ResponseWriter, r *http.Request) {
	p := r.PathValue("p")
	if _, err := o.authorize(r, p); err != nil {
		o.fail(w, r, err)
		return
	}
	e, _, err := o.lookup(r, p)
	if err == nil {
		err = o.store.Delete(e.ID)
	}
	if err != nil {
		o.fail(w, r, err)
		return
	}
	o.m.publishes.WithLabelValues(p, "delete", "created").Inc()
	o.log.Info("content deleted", "property", p, "id", e.ID.String(), "name", e.Name)
	if o.cfg.OnDelete != nil {
		o.cfg.OnDelete(e.ID)
	}
	w.WriteHeader(http.StatusNoContent)
}

// ---- public reads ----

// openPublic opens committed content named by the {id} path value.
func (o *Origin) openPublic(r *http.Request) (*contentstore.Content, error) {
	id, err := manifest.ParseID(r.PathValue("id"))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	return o.store.Open(id)
}

func (o *Origin) getManifest(w http.ResponseWriter, r *http.Request) {
	c, err := o.openPublic(r)
	if err != nil {
		o.fail(w, r, err)
		return
	}
	c.Close()
	m := c.Manifest()
	h := w.Header()
	h.Set("Content-Type", ManifestContentType)
	h.Set("ETag", `"`+m.ID().String()+`"`)
	h.Set("Cache-Control", immutable)
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, "", m.Created, bytes.NewReader(m.Encoded()))
}

func (o *Origin) getContent(w http.ResponseWriter, r *http.Request) {
	o.serveContent(w, r, false)
}

func (o *Origin) download(w http.ResponseWriter, r *http.Request) {
	o.serveContent(w, r, true)
}

// serveContent serves a content's bytes with Range, If-Range and
// conditional requests (http.ServeContent), ETag = the quoted content ID.
// As a download (/d/{id}/{name}) it names the file with Content-Disposition
// and redirects to the canonical name if {name} is not the manifest's.
func (o *Origin) serveContent(w http.ResponseWriter, r *http.Request, asDownload bool) {
	c, err := o.openPublic(r)
	if err != nil {
		o.fail(w, r, err)
		return
	}
	defer c.Close()
	m := c.Manifest()
	h := w.Header()
	if asDownload && r.PathValue("name") != m.Name {
		http.Redirect(w, r, downloadPath(m.ID(), m.Name), http.StatusPermanentRedirect)
		return
	}
	ctype := "application/octet-stream"
	if asDownload {
		if t := mime.TypeByExtension(path.Ext(m.Name)); t != "" {
			ctype = t
		}
		cd := mime.FormatMediaType("attachment", map[string]string{"filename": m.Name})
		if cd == "" {
			cd = "attachment"
		}
		h.Set("Content-Disposition", cd)
	}
	h.Set("Content-Type", ctype)
	h.Set("ETag", `"`+m.ID().String()+`"`)
	h.Set("Cache-Control", immutable)
	h.Set("X-Content-Type-Options", "nosniff")
	// Publishers' files are served from the origin's domain: never let a
	// browser run them as a page.
	h.Set("Content-Security-Policy", "sandbox; default-src 'none'")
	if rng := r.Header.Get("Range"); rng != "" && strings.Count(rng, ",") >= o.cfg.MaxRanges {
		r.Header.Del("Range") // too many ranges: serve the whole content (RFC 9110 allows ignoring Range)
	}
	// The *os.File itself, so that the server can use sendfile.
	http.ServeContent(w, r, "", m.Created, c.File())
}
