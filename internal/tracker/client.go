package tracker

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"avalanche/internal/identity"
	"avalanche/internal/manifest"
)

// ClientConfig configures a Client.
type ClientConfig struct {
	// URL is the tracker's base URL, e.g. "http://127.0.0.1:7071". Required.
	URL string
	// Key is the node's private key; announces and reports are signed
	// with it and name its public key as the peer ID. Required.
	Key ed25519.PrivateKey
	// HTTPClient sends the requests. Default: a client with a 10 s timeout.
	HTTPClient *http.Client
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Client talks to a tracker on behalf of one node. It is safe for
// concurrent use.
//
// Timestamps it sends increase strictly, as the tracker requires. When the
// tracker refuses a timestamp as too far from its clock, Client adopts the
// tracker's clock offset and retries once.
type Client struct {
	base *url.URL
	key  ed25519.PrivateKey
	id   identity.ID
	hc   *http.Client
	now  func() time.Time

	mu     sync.Mutex
	last   time.Time     // last timestamp sent
	offset time.Duration // tracker clock minus local clock
}

// maxResponseSize bounds responses read by Client.
const maxResponseSize = 4 << 20

// NewClient returns a Client for cfg.
func NewClient(cfg ClientConfig) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tracker: client: bad tracker URL %q", cfg.URL)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	if len(cfg.Key) != ed25519.PrivateKeySize {
		return nil, errors.New("tracker: client: missing or invalid node key")
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Client{base: u, key: cfg.Key, id: identity.Self(cfg.Key), hc: cfg.HTTPClient, now: cfg.Now}, nil
}

// ID returns the node's ID, the peer ID in its announces.
func (c *Client) ID() identity.ID { return c.id }

// Announce tells the tracker about the node's state in req.Content and
// returns the peers to connect to. Errors from the tracker are *Error
// values wrapping this package's sentinels (ErrBanned, ErrRateLimited, ...).
func (c *Client) Announce(ctx context.Context, req AnnounceRequest) (AnnounceResponse, error) {
	var out announceResponseJSON
	err := c.signedPost(ctx, AnnouncePath, func(ts time.Time) any {
		return announceJSON{
			Content:    req.Content.String(),
			PeerID:     c.id.String(),
			Port:       int(req.Port),
			Role:       req.Role,
			Event:      req.Event,
			Left:       req.Left,
			Uploaded:   req.Bytes.Uploaded,
			Downloaded: req.Bytes.Downloaded,
			FromOrigin: req.Bytes.FromOrigin,
			FromEdge:   req.Bytes.FromEdge,
			FromPeers:  req.Bytes.FromPeers,
			Want:       req.Want,
			Timestamp:  ts,
		}
	}, &out)
	if err != nil {
		return AnnounceResponse{}, err
	}
	resp := AnnounceResponse{
		Interval: time.Duration(out.IntervalSeconds * float64(time.Second)),
		Peers:    make([]PeerInfo, 0, len(out.Peers)),
	}
	resp.YourAddr, _ = netip.ParseAddr(out.YourAddr)
	for _, p := range out.Peers {
		id, err := identity.ParseID(p.PeerID)
		if err != nil {
			return AnnounceResponse{}, fmt.Errorf("tracker: announce response: %w", err)
		}
		addr, err := netip.ParseAddrPort(p.Addr)
		if err != nil {
			return AnnounceResponse{}, fmt.Errorf("tracker: announce response: peer address: %w", err)
		}
		resp.Peers = append(resp.Peers, PeerInfo{ID: id, Addr: addr, Role: p.Role, ISP: p.ISP, Region: p.Region, Complete: p.Complete})
	}
	return resp, nil
}

// Report tells the tracker that offender misbehaved in swarm content (sent
// a block that failed verification, say). The tracker stops handing
// offender to this node at once and bans it from the swarm when enough
// distinct nodes agree; banned reports whether that has happened. The node
// must be a live member of the swarm.
func (c *Client) Report(ctx context.Context, content manifest.ID, offender identity.ID, reason string) (banned bool, err error) {
	var out reportResponseJSON
	err = c.signedPost(ctx, ReportPath, func(ts time.Time) any {
		return reportJSON{Content: content.String(), Reporter: c.id.String(), Offender: offender.String(), Reason: reason, Timestamp: ts}
	}, &out)
	return out.Banned, err
}

// Stats returns the statistics of every swarm the tracker knows.
func (c *Client) Stats(ctx context.Context) (Stats, error) {
	return c.stats(ctx, "")
}

// SwarmStats returns the statistics of one swarm.
func (c *Client) SwarmStats(ctx context.Context, content manifest.ID) (SwarmStats, error) {
	st, err := c.stats(ctx, "?content="+content.String())
	if err != nil {
		return SwarmStats{}, err
	}
	if len(st.Swarms) != 1 {
		return SwarmStats{}, fmt.Errorf("tracker: stats: %d swarms in answer, want 1", len(st.Swarms))
	}
	return st.Swarms[0], nil
}

func (c *Client) stats(ctx context.Context, query string) (Stats, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base.String()+StatsPath+query, nil)
	if err != nil {
		return Stats{}, fmt.Errorf("tracker: stats: %w", err)
	}
	var j statsJSON
	if err := c.do(req, &j); err != nil {
		return Stats{}, err
	}
	st := Stats{Totals: j.Totals.stats(), Counters: j.Counters}
	for _, s := range j.Swarms {
		ss := s.stats()
		id, err := manifest.ParseID(s.Content)
		if err != nil {
			return Stats{}, fmt.Errorf("tracker: stats: %w", err)
		}
		ss.Content = id
		st.Swarms = append(st.Swarms, ss)
	}
	return st, nil
}

// timestamp returns a timestamp on the tracker's clock, strictly after the
// last one sent, at the microsecond precision the tracker compares.
func (c *Client) timestamp() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ts := c.now().Add(c.offset).Truncate(time.Microsecond).UTC()
	if !ts.After(c.last) {
		ts = c.last.Add(time.Microsecond)
	}
	c.last = ts
	return ts
}

// signedPost sends body(ts) as JSON to path, signed, and decodes the answer
// into out. On a clock-skew refusal it adopts the tracker's clock and tries
// once more.
func (c *Client) signedPost(ctx context.Context, path string, body func(ts time.Time) any, out any) error {
	for attempt := 0; ; attempt++ {
		b, err := json.Marshal(body(c.timestamp()))
		if err != nil {
			return fmt.Errorf("tracker: encoding request: %w", err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base.String()+path, bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("tracker: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set(SignatureHeader, Sign(c.key, path, b))
		sent := c.now()
		err = c.do(req, out)
		var te *Error
		if attempt == 0 && errors.As(err, &te) && te.Code == "clock_skew" && !te.ServerTime.IsZero() {
			c.mu.Lock()
			c.offset = te.ServerTime.Sub(sent)
			c.last = time.Time{}
			c.mu.Unlock()
			continue
		}
		return err
	}
}

// do sends req and decodes a 200 answer into out, or returns an *Error.
func (c *Client) do(req *http.Request, out any) error {
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("tracker: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseSize))
	if err != nil {
		return fmt.Errorf("tracker: reading response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		e := &Error{Status: resp.StatusCode, Message: http.StatusText(resp.StatusCode)}
		var eb errorBody
		if json.Unmarshal(body, &eb) == nil && eb.Error != "" {
			e.Message, e.Code, e.ServerTime = eb.Error, eb.Code, eb.ServerTime
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
			e.RetryAfter = time.Duration(s) * time.Second
		}
		return e
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("tracker: decoding response: %w", err)
	}
	return nil
}
