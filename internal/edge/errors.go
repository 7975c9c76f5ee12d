package edge

import (
	"context"
	"errors"
	"net/http"
	"os"
)

// Errors a request can end with. statusOf maps them to HTTP status codes;
// it is the only place that does.
var (
	ErrNoProperty   = errors.New("edge: no property serves this host and path")
	ErrRateLimited  = errors.New("edge: rate limit exceeded")
	ErrBodyTooLarge = errors.New("edge: request body too large")
	ErrBadRequest   = errors.New("edge: malformed request")
	ErrMethod       = errors.New("edge: method not allowed")
	ErrOrigin       = errors.New("edge: origin unreachable")
	ErrOriginSlow   = errors.New("edge: origin timed out")
	ErrOnlyIfCached = errors.New("edge: not in cache and only-if-cached was requested")
	ErrUnauthorized = errors.New("edge: missing or malformed admin token")
	ErrForbidden    = errors.New("edge: token not valid for this property")
	ErrNotFound     = errors.New("edge: not found")
	ErrRange        = errors.New("edge: range not satisfiable")
	errChanged      = errors.New("edge: object changed at the origin while being filled")
)

// statusOf maps an error to the status code sent to the client.
func statusOf(err error) int {
	var mbe *http.MaxBytesError
	switch {
	case errors.Is(err, ErrNoProperty), errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrRateLimited):
		return http.StatusTooManyRequests
	case errors.Is(err, ErrBodyTooLarge), errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrBadRequest):
		return http.StatusBadRequest
	case errors.Is(err, ErrMethod):
		return http.StatusMethodNotAllowed
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrRange):
		return http.StatusRequestedRangeNotSatisfiable
	case errors.Is(err, ErrOnlyIfCached), errors.Is(err, ErrOriginSlow),
		errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return http.StatusGatewayTimeout
	case errors.Is(err, ErrOrigin):
		return http.StatusBadGateway
	case errors.Is(err, ErrConfig):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}
