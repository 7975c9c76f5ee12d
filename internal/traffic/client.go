package traffic

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Client talks to a traffic manager's HTTP API: `avalanche get` and the
// peer engine ask it for their edge, edges send it heartbeats. The zero
// value is not usable: BaseURL is required. A Client is safe for concurrent
// use.
type Client struct {
	// BaseURL is the control node, e.g. "http://127.0.0.1:7070".
	BaseURL string
	// Token is sent as a bearer token (the edge token for heartbeats).
	// Default: none.
	Token string
	// HTTP sends the requests. Default: a client with a 10s timeout.
	HTTP *http.Client
}

var defaultHTTP = &http.Client{Timeout: 10 * time.Second}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return defaultHTTP
}

// Route asks where to fetch path of property from. The answer lists up to
// three edges, best first, or the origin when no edge is eligible. Errors
// wrap the package's sentinels (ErrUnknownProperty, ErrInvalid, ErrNoEdge,
// ErrRateLimited, ...) according to the HTTP status.
func (c *Client) Route(ctx context.Context, property, path string) (Decision, error) {
	v := url.Values{"property": {property}, "path": {path}}
	var d Decision
	err := c.do(ctx, http.MethodGet, "/v1/route?"+v.Encode(), nil, &d)
	return d, err
}

// RouteURL returns the single URL to fetch path of property from: the best
// edge's, or the origin's when no edge is eligible.
func (c *Client) RouteURL(ctx context.Context, property, path string) (string, error) {
	d, err := c.Route(ctx, property, path)
	if err != nil {
		return "", err
	}
	if len(d.Edges) > 0 {
		return d.Edges[0].URL, nil
	}
	if d.Origin != "" {
		return d.Origin, nil
	}
	return "", ErrNoEdge
}

// Heartbeat reports an edge to the traffic manager and returns how often it
// wants to hear from the edge.
func (c *Client) Heartbeat(ctx context.Context, e Edge) (time.Duration, error) {
	var rep heartbeatReply
	if err := c.do(ctx, http.MethodPost, "/v1/edges/heartbeat", e, &rep); err != nil {
		return 0, err
	}
	return time.Duration(rep.IntervalSeconds) * time.Second, nil
}

// PutPolicy sets a property's policy (admin or property token).
func (c *Client) PutPolicy(ctx context.Context, p *Policy) error {
	return c.do(ctx, http.MethodPut, "/v1/properties/"+url.PathEscape(p.Name), p, nil)
}

// Drain sets or clears an edge's drain flag (admin token).
func (c *Client) Drain(ctx context.Context, id string, drained bool, reason string) error {
	return c.do(ctx, http.MethodPut, "/v1/edges/"+url.PathEscape(id)+"/drain", DrainRequest{drained, reason}, nil)
}

// Edges lists the registry (admin token).
func (c *Client) Edges(ctx context.Context) ([]EdgeStatus, error) {
	var out []EdgeStatus
	err := c.do(ctx, http.MethodGet, "/v1/edges", nil, &out)
	return out, err
}

// statusErr maps an HTTP status back to the package's sentinel errors.
func statusErr(code int) error {
	switch code {
	case http.StatusBadRequest:
		return ErrInvalid
	case http.StatusRequestEntityTooLarge:
		return ErrTooLarge
	case http.StatusNotFound:
		return ErrUnknownProperty
	case http.StatusUnauthorized:
		return ErrUnauthorized
	case http.StatusTooManyRequests:
		return ErrRateLimited
	case http.StatusInsufficientStorage:
		return ErrFull
	case http.StatusServiceUnavailable:
		return ErrNoEdge
	}
	return fmt.Errorf("traffic: HTTP status %d", code)
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.BaseURL, "/")+path, body)
	if err != nil {
		return fmt.Errorf("traffic: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return fmt.Errorf("traffic: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	rd := io.LimitReader(resp.Body, 1<<20)
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		json.NewDecoder(rd).Decode(&e)
		return fmt.Errorf("%w (%s %s: %d %s)", statusErr(resp.StatusCode), method, path, resp.StatusCode, e.Error)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	if err := json.NewDecoder(rd).Decode(out); err != nil {
		return fmt.Errorf("traffic: %s %s: decoding the answer: %w", method, path, err)
	}
	return nil
}
