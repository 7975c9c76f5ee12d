package origin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"avalanche/internal/manifest"
)

// ErrUnreachable is returned by Publisher when the origin cannot be reached.
var ErrUnreachable = errors.New("origin: unreachable")

// RemoteError is an origin's refusal of a publish request.
type RemoteError struct {
	What    string // "manifest" or "file"
	Status  int    // HTTP status
	Message string // the origin's error message
}

func (e *RemoteError) Error() string {
	return fmt.Sprintf("origin refused the %s: %d %s: %s", e.What, e.Status, http.StatusText(e.Status), e.Message)
}

// Publisher is a client of an origin's publish API for one property.
type Publisher struct {
	// BaseURL is the origin, e.g. "http://127.0.0.1:7070". Required.
	BaseURL string
	// Property and Token name the property and its bearer token. Required.
	Property, Token string
	// HTTP sends the requests; default: a client without an overall
	// timeout (uploads take as long as they take; ctx ends them).
	HTTP *http.Client
	// UserAgent defaults to "avalanche-publish".
	UserAgent string
}

// NewPublishHTTPClient returns the HTTP client Publisher uses by default.
func NewPublishHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: 5 * time.Second,
			ForceAttemptHTTP2:     true,
		},
	}
}

// PutManifest uploads a signed manifest.
func (p *Publisher) PutManifest(ctx context.Context, m *manifest.Manifest) (*Object, error) {
	u := p.BaseURL + "/v1/properties/" + url.PathEscape(p.Property) + "/manifests"
	req, err := http.NewRequestWithContext(ctx, "PUT", u, bytes.NewReader(m.Encoded()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", ManifestContentType)
	return p.do(req, "manifest")
}

// PutContent uploads the file bytes of m (exactly m.Size of them) from body.
func (p *Publisher) PutContent(ctx context.Context, m *manifest.Manifest, body io.Reader) (*Object, error) {
	u := p.BaseURL + "/v1/properties/" + url.PathEscape(p.Property) + "/content/" + m.ID().String()
	req, err := http.NewRequestWithContext(ctx, "PUT", u, body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = m.Size
	if m.Size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	// Let the origin refuse (bad token, unknown manifest) before the body
	// is sent.
	req.Header.Set("Expect", "100-continue")
	return p.do(req, "file")
}

// Publish uploads m and, unless the origin already holds it, the bytes
// open returns. It reports whether the bytes were uploaded.
func (p *Publisher) Publish(ctx context.Context, m *manifest.Manifest, open func() (io.ReadCloser, error)) (*Object, bool, error) {
	obj, err := p.PutManifest(ctx, m)
	if err != nil || obj.Complete {
		return obj, false, err
	}
	r, err := open()
	if err != nil {
		return nil, false, err
	}
	defer r.Close()
	obj, err = p.PutContent(ctx, m, r)
	return obj, err == nil, err
}

// do sends req with the token and decodes the Object response.
func (p *Publisher) do(req *http.Request, what string) (*Object, error) {
	req.Header.Set("Authorization", "Bearer "+p.Token)
	ua := p.UserAgent
	if ua == "" {
		ua = "avalanche-publish"
	}
	req.Header.Set("User-Agent", ua)
	hc := p.HTTP
	if hc == nil {
		hc = NewPublishHTTPClient()
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, ctxErr
		}
		var opErr *net.OpError
		var dnsErr *net.DNSError
		if (errors.As(err, &opErr) && opErr.Op == "dial") || errors.As(err, &dnsErr) {
			return nil, fmt.Errorf("%w: %s: %w", ErrUnreachable, p.BaseURL, err)
		}
		return nil, fmt.Errorf("uploading %s: %w", what, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated {
		var obj Object
		if err := json.Unmarshal(body, &obj); err != nil {
			return nil, fmt.Errorf("unexpected answer from %s: %v", p.BaseURL, err)
		}
		return &obj, nil
	}
	msg := strings.TrimSpace(string(body))
	var eb struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &eb) == nil && eb.Error != "" {
		msg = eb.Error
	}
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	return nil, &RemoteError{What: what, Status: resp.StatusCode, Message: msg}
}
