package tracker

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/netip"
	"time"
	"unicode/utf8"

	"avalanche/internal/identity"
	"avalanche/internal/manifest"
)

// SignatureHeader carries the base64 (standard, padded) ed25519 signature
// of an announce or report, made with the key named in the body.
const SignatureHeader = "Avalanche-Signature"

// signatureContext starts every signed message, so that a tracker
// signature can never be mistaken for one made for another purpose.
const signatureContext = "avalanche-tracker-v1 "

// Paths of the HTTP API.
const (
	AnnouncePath = "/v1/announce"
	ReportPath   = "/v1/report"
	StatsPath    = "/v1/stats"
)

// signedMessage returns the bytes signed for a request to path: the
// context string, the path, a newline, then the exact body.
func signedMessage(path string, body []byte) []byte {
	msg := make([]byte, 0, len(signatureContext)+len(path)+1+len(body))
	msg = append(msg, signatureContext...)
	msg = append(msg, path...)
	msg = append(msg, '\n')
	return append(msg, body...)
}

// Sign returns the SignatureHeader value for body sent to path (AnnouncePath
// or ReportPath) by the node whose key is priv. Client signs for itself;
// Sign is for other implementations and tests.
func Sign(priv ed25519.PrivateKey, path string, body []byte) string {
	return base64.StdEncoding.EncodeToString(ed25519.Sign(priv, signedMessage(path, body)))
}

// verify checks the SignatureHeader value sig of body sent to path against
// id's key.
func verify(id identity.ID, path string, body []byte, sig string) error {
	if sig == "" {
		return fmt.Errorf("%w: missing %s header", ErrSignature, SignatureHeader)
	}
	raw, err := base64.StdEncoding.DecodeString(sig)
	if err != nil || len(raw) != ed25519.SignatureSize {
		return fmt.Errorf("%w: %s is not a base64 ed25519 signature", ErrSignature, SignatureHeader)
	}
	if !ed25519.Verify(id.PublicKey(), signedMessage(path, body), raw) {
		return fmt.Errorf("%w: does not verify for peer %s", ErrSignature, id.Short())
	}
	return nil
}

// Event says why a node announces.
type Event string

// Events. An empty event is taken as EventProgress.
const (
	EventStarted   Event = "started"
	EventProgress  Event = "progress"
	EventCompleted Event = "completed"
	EventStopped   Event = "stopped"
)

// Valid reports whether e is one of the defined events.
func (e Event) Valid() bool {
	switch e {
	case EventStarted, EventProgress, EventCompleted, EventStopped:
		return true
	}
	return false
}

// AnnounceRequest is what a node tells the tracker about itself in one
// swarm. Client adds the peer ID and timestamp and signs it.
type AnnounceRequest struct {
	Content manifest.ID
	// Port is the node's peer-protocol TCP port; 0 means it accepts no
	// connections (it is then never handed out). The IP is the one the
	// tracker sees the request come from.
	Port  uint16
	Role  Role  // default RolePeer
	Event Event // default EventProgress
	Left  uint64
	Bytes Bytes // cumulative totals since the node started
	// Want is the number of peers wanted; 0 means the tracker's default.
	Want int
}

// AnnounceResponse is the tracker's answer to an announce.
type AnnounceResponse struct {
	// Interval is when to announce next.
	Interval time.Duration
	// YourAddr is the address the tracker saw the request come from.
	YourAddr netip.Addr
	// Peers are the peers to connect to, most preferred first: same ISP,
	// same region, anywhere; then origins and edges, which are always
	// present when the swarm has any, even when the list is full.
	Peers []PeerInfo
}

// PeerInfo is one handed-out peer.
type PeerInfo struct {
	ID       identity.ID
	Addr     netip.AddrPort
	Role     Role
	ISP      string
	Region   string
	Complete bool
}

// announceJSON is the body of POST /v1/announce.
type announceJSON struct {
	Content    string    `json:"content"`
	PeerID     string    `json:"peer_id"`
	Port       int       `json:"port"`
	Role       Role      `json:"role"`
	Event      Event     `json:"event"`
	Left       uint64    `json:"left"`
	Uploaded   uint64    `json:"uploaded"`
	Downloaded uint64    `json:"downloaded"`
	FromOrigin uint64    `json:"from_origin"`
	FromEdge   uint64    `json:"from_edge"`
	FromPeers  uint64    `json:"from_peers"`
	Want       int       `json:"want"`
	Timestamp  time.Time `json:"timestamp"`
}

// announceResponseJSON is the body of a successful announce.
type announceResponseJSON struct {
	IntervalSeconds float64    `json:"interval_seconds"`
	YourAddr        string     `json:"your_addr"`
	Peers           []peerJSON `json:"peers"`
}

type peerJSON struct {
	PeerID   string `json:"peer_id"`
	Addr     string `json:"addr"`
	Role     Role   `json:"role"`
	ISP      string `json:"isp,omitempty"`
	Region   string `json:"region,omitempty"`
	Complete bool   `json:"complete"`
}

// reportJSON is the body of POST /v1/report.
type reportJSON struct {
	Content   string    `json:"content"`
	Reporter  string    `json:"reporter"`
	Offender  string    `json:"offender"`
	Reason    string    `json:"reason"`
	Timestamp time.Time `json:"timestamp"`
}

type reportResponseJSON struct {
	Banned bool `json:"banned"`
}

// announce is a decoded, validated announce.
type announce struct {
	content manifest.ID
	peer    identity.ID
	port    uint16
	role    Role
	event   Event
	left    uint64
	bytes   Bytes
	want    int
	ts      time.Time
}

// parseAnnounce decodes and validates an announce body. It does not check
// the signature or the timestamp's freshness.
func parseAnnounce(body []byte) (announce, error) {
	var j announceJSON
	if err := json.Unmarshal(body, &j); err != nil {
		return announce{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	var a announce
	var err error
	if a.content, err = manifest.ParseID(j.Content); err != nil {
		return announce{}, fmt.Errorf("%w: content: %v", ErrBadRequest, err)
	}
	if a.peer, err = identity.ParseID(j.PeerID); err != nil {
		return announce{}, fmt.Errorf("%w: peer_id: %v", ErrBadRequest, err)
	}
	if j.Port < 0 || j.Port > 65535 {
		return announce{}, fmt.Errorf("%w: port %d out of range", ErrBadRequest, j.Port)
	}
	a.port = uint16(j.Port)
	a.role = j.Role
	if a.role == "" {
		a.role = RolePeer
	}
	if !a.role.Valid() {
		return announce{}, fmt.Errorf("%w: unknown role %q", ErrBadRequest, truncate(string(j.Role)))
	}
	a.event = j.Event
	if a.event == "" {
		a.event = EventProgress
	}
	if !a.event.Valid() {
		return announce{}, fmt.Errorf("%w: unknown event %q", ErrBadRequest, truncate(string(j.Event)))
	}
	if j.Want < 0 {
		return announce{}, fmt.Errorf("%w: want %d is negative", ErrBadRequest, j.Want)
	}
	if j.Timestamp.IsZero() {
		return announce{}, fmt.Errorf("%w: timestamp missing", ErrBadRequest)
	}
	a.left, a.want, a.ts = j.Left, j.Want, j.Timestamp
	a.bytes = Bytes{Uploaded: j.Uploaded, Downloaded: j.Downloaded, FromOrigin: j.FromOrigin, FromEdge: j.FromEdge, FromPeers: j.FromPeers}
	return a, nil
}

// report is a decoded, validated report.
type report struct {
	content            manifest.ID
	reporter, offender identity.ID
	reason             string
	ts                 time.Time
}

// parseReport decodes and validates a report body.
func parseReport(body []byte) (report, error) {
	var j reportJSON
	if err := json.Unmarshal(body, &j); err != nil {
		return report{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
	}
	var r report
	var err error
	if r.content, err = manifest.ParseID(j.Content); err != nil {
		return report{}, fmt.Errorf("%w: content: %v", ErrBadRequest, err)
	}
	if r.reporter, err = identity.ParseID(j.Reporter); err != nil {
		return report{}, fmt.Errorf("%w: reporter: %v", ErrBadRequest, err)
	}
	if r.offender, err = identity.ParseID(j.Offender); err != nil {
		return report{}, fmt.Errorf("%w: offender: %v", ErrBadRequest, err)
	}
	if r.reporter == r.offender {
		return report{}, fmt.Errorf("%w: a peer cannot report itself", ErrBadRequest)
	}
	if len(j.Reason) > MaxReasonLen || !utf8.ValidString(j.Reason) {
		return report{}, fmt.Errorf("%w: reason must be UTF-8 of at most %d bytes", ErrBadRequest, MaxReasonLen)
	}
	if j.Timestamp.IsZero() {
		return report{}, fmt.Errorf("%w: timestamp missing", ErrBadRequest)
	}
	r.reason, r.ts = j.Reason, j.Timestamp
	return r, nil
}

// truncate shortens client-supplied strings quoted in error messages.
func truncate(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}
