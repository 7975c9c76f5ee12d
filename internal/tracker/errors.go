package tracker

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Errors of the HTTP API. The server maps each to a status and a code
// string (see statusOf); Client turns responses back into an *Error that
// wraps the same sentinel, so callers on both sides test with errors.Is.
var (
	// ErrBadRequest: the body is not valid JSON or a field is invalid (400).
	ErrBadRequest = errors.New("tracker: bad request")
	// ErrTooLarge: the body exceeds MaxBodySize (413).
	ErrTooLarge = errors.New("tracker: request body too large")
	// ErrSignature: the signature is missing or does not verify (401).
	ErrSignature = errors.New("tracker: bad signature")
	// ErrClockSkew: the timestamp is too far from the tracker's clock (401).
	ErrClockSkew = errors.New("tracker: timestamp outside the accepted window")
	// ErrRole: the node may not announce as origin or edge (403).
	ErrRole = errors.New("tracker: role not allowed for this node")
	// ErrNotMember: a report's reporter is not a live member of the swarm (403).
	ErrNotMember = errors.New("tracker: reporter is not in the swarm")
	// ErrUnknownContent: Config.KnownContent refused the content ID (404).
	ErrUnknownContent = errors.New("tracker: unknown content")
	// ErrRateLimited: too many requests from this address or peer (429).
	ErrRateLimited = errors.New("tracker: rate limit exceeded")
	// ErrUnavailable: the state store failed (503).
	ErrUnavailable = errors.New("tracker: state store unavailable")
)

// errorCodes is the one table that maps errors to HTTP statuses and to the
// "code" field of error bodies. ErrStale and ErrBanned come from store.go.
var errorCodes = []struct {
	err    error
	status int
	code   string
}{
	{ErrBadRequest, http.StatusBadRequest, "bad_request"},
	{ErrTooLarge, http.StatusRequestEntityTooLarge, "too_large"},
	{ErrSignature, http.StatusUnauthorized, "bad_signature"},
	{ErrClockSkew, http.StatusUnauthorized, "clock_skew"},
	{ErrStale, http.StatusConflict, "stale"},
	{ErrBanned, http.StatusForbidden, "banned"},
	{ErrRole, http.StatusForbidden, "role_not_allowed"},
	{ErrNotMember, http.StatusForbidden, "not_member"},
	{ErrUnknownContent, http.StatusNotFound, "unknown_content"},
	{ErrRateLimited, http.StatusTooManyRequests, "rate_limited"},
	{ErrUnavailable, http.StatusServiceUnavailable, "unavailable"},
}

// statusOf returns the HTTP status and code for err.
func statusOf(err error) (int, string) {
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			return e.status, e.code
		}
	}
	return http.StatusInternalServerError, "internal"
}

// sentinelFor returns the sentinel error for an error code, or nil.
func sentinelFor(code string) error {
	for _, e := range errorCodes {
		if e.code == code {
			return e.err
		}
	}
	return nil
}

// retryError carries how long a rate-limited client should wait.
type retryError struct {
	err   error
	after time.Duration
}

func (e *retryError) Error() string { return fmt.Sprintf("%v (retry in %v)", e.err, e.after) }
func (e *retryError) Unwrap() error { return e.err }

// Error is an error response received by Client. It wraps the sentinel
// error named by its Code, so errors.Is(err, ErrBanned) works on it.
type Error struct {
	Status     int           // HTTP status
	Code       string        // machine-readable code, e.g. "banned"
	Message    string        // the server's message
	RetryAfter time.Duration // from Retry-After, for 429
	ServerTime time.Time     // the tracker's clock when it answered, if sent
}

func (e *Error) Error() string {
	if strings.HasPrefix(e.Message, "tracker: ") {
		return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
	}
	if e.Message != "" {
		return fmt.Sprintf("tracker: HTTP %d: %s", e.Status, e.Message)
	}
	return fmt.Sprintf("tracker: HTTP %d", e.Status)
}

// Unwrap returns the sentinel error for e.Code, or nil for an unknown code.
func (e *Error) Unwrap() error { return sentinelFor(e.Code) }

// errorBody is the JSON body of every error response.
type errorBody struct {
	Error      string    `json:"error"`
	Code       string    `json:"code"`
	ServerTime time.Time `json:"server_time"`
}
