package tracker

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"avalanche/internal/identity"
	"avalanche/internal/manifest"
)

// Handler returns the HTTP API: POST /v1/announce, POST /v1/report and
// GET /v1/stats (docs/tracker.md). It serves nothing else, so it can be
// mounted beside other handlers on one mux.
func (t *Tracker) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+AnnouncePath, t.serveAnnounce)
	mux.HandleFunc("POST "+ReportPath, t.serveReport)
	mux.HandleFunc("GET "+StatsPath, t.serveStats)
	return mux
}

func (t *Tracker) serveAnnounce(w http.ResponseWriter, r *http.Request) {
	now := t.now()
	resp, err := t.announce(r.Context(), w, r, now)
	if err != nil {
		t.fail(w, r, now, err)
		return
	}
	writeCompressed(w, r, http.StatusOK, resp)
}

func (t *Tracker) serveReport(w http.ResponseWriter, r *http.Request) {
	now := t.now()
	resp, err := t.report(r.Context(), w, r, now)
	if err != nil {
		t.fail(w, r, now, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (t *Tracker) serveStats(w http.ResponseWriter, r *http.Request) {
	now := t.now()
	if s := r.URL.Query().Get("content"); s != "" {
		c, err := manifest.ParseID(s)
		if err != nil {
			t.fail(w, r, now, fmt.Errorf("%w: content: %v", ErrBadRequest, err))
			return
		}
		st, err := t.SwarmStats(r.Context(), c)
		if err != nil {
			t.fail(w, r, now, err)
			return
		}
		writeJSON(w, http.StatusOK, statsToJSON(Stats{Swarms: []SwarmStats{st}, Totals: st, Counters: t.Counters()}))
		return
	}
	st, err := t.Stats(r.Context())
	if err != nil {
		t.fail(w, r, now, err)
		return
	}
	writeJSON(w, http.StatusOK, statsToJSON(st))
}

// announce handles one announce: it checks the request, records the peer,
// adds to the swarm's counters and builds the hand-out.
func (t *Tracker) announce(ctx context.Context, w http.ResponseWriter, r *http.Request, now time.Time) (*announceResponseJSON, error) {
	src, err := t.admit(r, now)
	if err != nil {
		return nil, err
	}
	body, err := readBody(w, r)
	if err != nil {
		return nil, err
	}
	a, err := parseAnnounce(body)
	if err != nil {
		return nil, err
	}
	if err := t.authenticate(a.peer, AnnouncePath, body, r, a.ts, now); err != nil {
		return nil, err
	}
	if ok, wait := t.peerLimit.allow(a.peer, now); !ok {
		return nil, &retryError{ErrRateLimited, wait}
	}
	if a.role.Infra() && !t.mayBeInfra(a.peer, src) {
		return nil, fmt.Errorf("%w: %s may not announce as %s", ErrRole, a.peer.Short(), a.role)
	}
	if t.cfg.KnownContent != nil {
		ok, err := t.cfg.KnownContent(ctx, a.content)
		if err != nil {
			return nil, fmt.Errorf("%w: content check: %v", ErrUnavailable, err)
		}
		if !ok {
			return nil, fmt.Errorf("%w: %s", ErrUnknownContent, a.content.Short())
		}
	}

	loc, _ := t.loc.Lookup(src)
	rec := Peer{
		ID:      a.peer,
		Addr:    netip.AddrPortFrom(src, a.port),
		Role:    a.role,
		ISP:     loc.ISP,
		ASN:     loc.ASN,
		Region:  loc.Region,
		Left:    a.left,
		Bytes:   a.bytes,
		Stamp:   a.ts.UnixMicro(),
		Stopped: a.event == EventStopped,
		Expires: now.Add(t.cfg.PeerTTL),
		Keep:    now.Add(t.cfg.Retain),
	}
	prev, found, err := t.store.Announce(ctx, a.content, rec, now)
	switch {
	case errors.Is(err, ErrStale), errors.Is(err, ErrBanned):
		return nil, err
	case err != nil:
		return nil, t.storeErr("announce", err)
	}
	d := Delta{Bytes: rec.Bytes, Announces: 1}
	if found {
		d.Bytes = rec.Bytes.Since(prev.Bytes)
	}
	if !rec.Role.Infra() && rec.Left == 0 && ((found && prev.Left > 0) || (!found && a.event == EventCompleted)) {
		d.Completed = 1
	}
	if err := t.store.Add(ctx, a.content, d, now); err != nil {
		return nil, t.storeErr("add counters", err)
	}
	t.ctr.announces.Add(1)
	t.log.Debug("announce", "content", a.content.Short(), "peer", a.peer.Short(), "addr", rec.Addr, "role", rec.Role, "event", a.event, "left", rec.Left, "isp", rec.ISPKey(), "region", rec.Region)

	resp := &announceResponseJSON{
		IntervalSeconds: t.cfg.Interval.Seconds(),
		YourAddr:        src.String(),
		Peers:           []peerJSON{},
	}
	if rec.Stopped {
		return resp, nil
	}
	want := a.want
	if want == 0 {
		want = t.cfg.DefaultWant
	}
	peers, err := t.handout(ctx, a.content, rec, loc, min(want, t.cfg.MaxWant), now)
	if err != nil {
		return nil, err
	}
	t.ctr.handed.Add(int64(len(peers)))
	resp.Peers = make([]peerJSON, len(peers))
	for i, p := range peers {
		isp := p.ISP
		if isp == "" && p.ASN != 0 {
			isp = p.ISPKey()
		}
		resp.Peers[i] = peerJSON{
			PeerID:   p.ID.String(),
			Addr:     p.Addr.String(),
			Role:     p.Role,
			ISP:      isp,
			Region:   p.Region,
			Complete: p.Complete(),
		}
	}
	return resp, nil
}

// report handles one report and bans the offender once enough distinct
// reporters agree.
func (t *Tracker) report(ctx context.Context, w http.ResponseWriter, r *http.Request, now time.Time) (*reportResponseJSON, error) {
	if _, err := t.admit(r, now); err != nil {
		return nil, err
	}
	body, err := readBody(w, r)
	if err != nil {
		return nil, err
	}
	rp, err := parseReport(body)
	if err != nil {
		return nil, err
	}
	if err := t.authenticate(rp.reporter, ReportPath, body, r, rp.ts, now); err != nil {
		return nil, err
	}
	if ok, wait := t.peerLimit.allow(rp.reporter, now); !ok {
		return nil, &retryError{ErrRateLimited, wait}
	}
	me, found, err := t.store.Get(ctx, rp.content, rp.reporter)
	if err != nil {
		return nil, t.storeErr("get reporter", err)
	}
	if !found || !me.Live(now) {
		return nil, fmt.Errorf("%w: %s has no live announce in %s", ErrNotMember, rp.reporter.Short(), rp.content.Short())
	}
	until := now.Add(t.cfg.BanDuration)
	tally, err := t.store.Report(ctx, rp.content, rp.offender, rp.reporter, me.Role.Infra(), until, now)
	if err != nil {
		return nil, t.storeErr("report", err)
	}
	t.ctr.reports.Add(1)
	t.log.Info("report", "content", rp.content.Short(), "reporter", rp.reporter.Short(), "role", me.Role, "offender", rp.offender.Short(), "reason", rp.reason, "peer_reporters", tally.Peers, "infra_reporters", tally.Infra)

	ban := (t.cfg.BanReporters > 0 && tally.Peers+tally.Infra >= t.cfg.BanReporters) ||
		(t.cfg.BanInfraReporters > 0 && tally.Infra >= t.cfg.BanInfraReporters)
	if ban {
		// Origins and edges are never banned by reports: a few malicious
		// peers must not be able to cut a swarm off from its seeds.
		off, found, err := t.store.Get(ctx, rp.content, rp.offender)
		if err != nil {
			return nil, t.storeErr("get offender", err)
		}
		if t.infra[rp.offender] || (found && off.Role.Infra()) {
			t.log.Warn("report against infrastructure node not acted on", "content", rp.content.Short(), "offender", rp.offender.Short())
			ban = false
		}
	}
	if ban {
		if err := t.store.Ban(ctx, rp.content, rp.offender, until, now); err != nil {
			return nil, t.storeErr("ban", err)
		}
		t.ctr.bans.Add(1)
		t.log.Warn("peer banned from swarm", "content", rp.content.Short(), "peer", rp.offender.Short(), "peer_reporters", tally.Peers, "infra_reporters", tally.Infra, "until", until)
	}
	return &reportResponseJSON{Banned: ban}, nil
}

// admit finds the request's source address and applies the per-address
// rate limit.
func (t *Tracker) admit(r *http.Request, now time.Time) (netip.Addr, error) {
	src, err := t.source(r)
	if err != nil {
		return netip.Addr{}, err
	}
	if ok, wait := t.addrLimit.allow(addrKey(src), now); !ok {
		return netip.Addr{}, &retryError{ErrRateLimited, wait}
	}
	return src, nil
}

// authenticate checks the freshness of ts and the request's signature by
// the peer id.
func (t *Tracker) authenticate(id identity.ID, path string, body []byte, r *http.Request, ts, now time.Time) error {
	if d := now.Sub(ts); d > t.cfg.MaxClockSkew || d < -t.cfg.MaxClockSkew {
		return fmt.Errorf("%w: timestamp is %v from the tracker's clock (at most %v)", ErrClockSkew, d.Round(time.Millisecond), t.cfg.MaxClockSkew)
	}
	return verify(id, path, body, r.Header.Get(SignatureHeader))
}

// source returns the peer's address: the TCP source address, or, for a
// request from a trusted proxy, the rightmost untrusted address in
// X-Forwarded-For.
func (t *Tracker) source(r *http.Request) (netip.Addr, error) {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: unusable source address %q", ErrBadRequest, r.RemoteAddr)
	}
	src := ap.Addr().Unmap().WithZone("")
	if !t.trusted(src) {
		return src, nil
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(h, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return netip.Addr{}, fmt.Errorf("%w: bad X-Forwarded-For entry %q", ErrBadRequest, truncate(hops[i]))
		}
		src = a.Unmap().WithZone("")
		if !t.trusted(src) {
			break
		}
	}
	return src, nil
}

func (t *Tracker) trusted(a netip.Addr) bool {
	return slices.ContainsFunc(t.cfg.TrustedProxies, func(p netip.Prefix) bool { return p.Contains(a) })
}

// readBody reads a request body of at most MaxBodySize bytes.
func readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodySize))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		return nil, fmt.Errorf("%w: at most %d bytes", ErrTooLarge, MaxBodySize)
	case err != nil:
		return nil, fmt.Errorf("%w: reading body: %v", ErrBadRequest, err)
	}
	return body, nil
}

// fail writes err as a JSON error response. It is the one place where
// errors become HTTP statuses.
func (t *Tracker) fail(w http.ResponseWriter, r *http.Request, now time.Time, err error) {
	status, code := statusOf(err)
	switch status {
	case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
		t.ctr.badRequests.Add(1)
	case http.StatusUnauthorized, http.StatusConflict:
		t.ctr.unauthorized.Add(1)
	case http.StatusForbidden, http.StatusNotFound:
		t.ctr.forbidden.Add(1)
	case http.StatusTooManyRequests:
		t.ctr.limited.Add(1)
	}
	var re *retryError
	if errors.As(err, &re) {
		w.Header().Set("Retry-After", strconv.Itoa(int(max(1, (re.after+time.Second-1)/time.Second))))
	}
	level := t.log.Debug
	if status >= 500 {
		level = t.log.Warn
	}
	level("tracker request failed", "path", r.URL.Path, "remote", r.RemoteAddr, "status", status, "err", err)
	writeJSON(w, status, errorBody{Error: err.Error(), Code: code, ServerTime: now.UTC()})
}

func writeJSON(w http.ResponseWriter, status int, v any) { writeCompressed(w, nil, status, v) }

// minGzip is the smallest JSON body writeCompressed compresses: below it
// the gzip header and trailer eat most of the gain.
const minGzip = 512

// writeCompressed is writeJSON, gzipped when r (nil: never) accepts it
// (Go's HTTP client asks for gzip and inflates by itself). An announce answer is
// mostly peer IDs in hex and the same keys over and over: 2.4 KB for 16
// peers, 0.85 KB gzipped. It leaves on the uplink of the tracker's host,
// which in a flash crowd may be the origin's own: in the swarm lab, where
// the control node runs on the seed host, plain answers were 0.23% of the
// content on the seed's uplink, the bottleneck of the whole swarm.
func writeCompressed(w http.ResponseWriter, r *http.Request, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":"tracker: encoding response","code":"internal"}`)
	}
	b = append(b, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	if r != nil && len(b) >= minGzip && acceptsGzip(r.Header.Values("Accept-Encoding")) {
		var buf bytes.Buffer
		zw := gzipWriters.Get().(*gzip.Writer)
		zw.Reset(&buf)
		zw.Write(b)
		zw.Close()
		gzipWriters.Put(zw)
		b = buf.Bytes()
		h.Set("Content-Encoding", "gzip")
		h.Add("Vary", "Accept-Encoding")
	}
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

// gzipWriters keeps compressors for reuse: each holds hundreds of
// kilobytes of tables, which a new one per announce would allocate and
// clear (in the swarm lab's 32-peer scenario that tripled the tracker's
// CPU time).
var gzipWriters = sync.Pool{New: func() any { return gzip.NewWriter(nil) }}

// acceptsGzip reports whether Accept-Encoding values name gzip with a
// non-zero quality (RFC 9110, 12.5.3).
func acceptsGzip(values []string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			coding, params, _ := strings.Cut(part, ";")
			if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
				continue
			}
			name, q, ok := strings.Cut(strings.TrimSpace(params), "=")
			if ok && strings.EqualFold(strings.TrimSpace(name), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(q), 64); err == nil && f == 0 {
					return false
				}
			}
			return true
		}
	}
	return false
}

// Stats as JSON (GET /v1/stats).

type bytesJSON struct {
	Origin     uint64 `json:"origin"`
	Edge       uint64 `json:"edge"`
	Peers      uint64 `json:"peers"`
	Uploaded   uint64 `json:"uploaded"`
	Downloaded uint64 `json:"downloaded"`
}

type swarmJSON struct {
	Content   string    `json:"content,omitempty"`
	Size      int       `json:"size"`
	Seeds     int       `json:"seeds"`
	Origins   int       `json:"origins"`
	Edges     int       `json:"edges"`
	Completed int64     `json:"completed"`
	Announces int64     `json:"announces"`
	Banned    int       `json:"banned"`
	Bytes     bytesJSON `json:"bytes"`
}

type totalsJSON struct {
	Swarms int `json:"swarms"`
	swarmJSON
}

type statsJSON struct {
	Swarms   []swarmJSON `json:"swarms"`
	Totals   totalsJSON  `json:"totals"`
	Counters Counters    `json:"counters"`
}

func swarmToJSON(s SwarmStats) swarmJSON {
	return swarmJSON{
		Size: s.Size, Seeds: s.Seeds, Origins: s.Origins, Edges: s.Edges,
		Completed: s.Completed, Announces: s.Announces, Banned: s.Banned,
		Bytes: bytesJSON{Origin: s.Bytes.FromOrigin, Edge: s.Bytes.FromEdge, Peers: s.Bytes.FromPeers, Uploaded: s.Bytes.Uploaded, Downloaded: s.Bytes.Downloaded},
	}
}

func (j swarmJSON) stats() SwarmStats {
	return SwarmStats{
		Size: j.Size, Seeds: j.Seeds, Origins: j.Origins, Edges: j.Edges,
		Completed: j.Completed, Announces: j.Announces, Banned: j.Banned,
		Bytes: Bytes{FromOrigin: j.Bytes.Origin, FromEdge: j.Bytes.Edge, FromPeers: j.Bytes.Peers, Uploaded: j.Bytes.Uploaded, Downloaded: j.Bytes.Downloaded},
	}
}

func statsToJSON(st Stats) statsJSON {
	out := statsJSON{
		Swarms:   make([]swarmJSON, len(st.Swarms)),
		Totals:   totalsJSON{Swarms: len(st.Swarms), swarmJSON: swarmToJSON(st.Totals)},
		Counters: st.Counters,
	}
	for i, s := range st.Swarms {
		out.Swarms[i] = swarmToJSON(s)
		out.Swarms[i].Content = s.Content.String()
	}
	return out
}

func sortSwarms(s []SwarmStats) {
	slices.SortFunc(s, func(a, b SwarmStats) int { return strings.Compare(string(a.Content[:]), string(b.Content[:])) })
}
