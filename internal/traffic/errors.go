package traffic

import (
	"errors"
	"net/http"
)

// Errors of the traffic manager. Handlers map them to HTTP status codes in
// one place, httpStatus.
var (
	// ErrInvalid is returned (wrapped) for malformed input: bad JSON, bad
	// names, values out of range.
	ErrInvalid = errors.New("traffic: invalid input")
	// ErrTooLarge is returned (wrapped) for input over a size limit.
	ErrTooLarge = errors.New("traffic: input too large")
	// ErrUnknownProperty is returned for a property without a policy.
	ErrUnknownProperty = errors.New("traffic: unknown property")
	// ErrUnknownEdge is returned for an edge that is not registered.
	ErrUnknownEdge = errors.New("traffic: unknown edge")
	// ErrNoEdge is returned when no edge is eligible and the property has
	// no origin to fall back to.
	ErrNoEdge = errors.New("traffic: no eligible edge and no origin")
	// ErrUnauthorized is returned for a missing or wrong token.
	ErrUnauthorized = errors.New("traffic: unauthorized")
	// ErrRateLimited is returned when a client prefix sends too many
	// requests.
	ErrRateLimited = errors.New("traffic: rate limited")
	// ErrFull is returned when a registry limit (edges, properties) is
	// reached.
	ErrFull = errors.New("traffic: registry full")
)

// httpStatus maps an error of this package to an HTTP status code.
func httpStatus(err error) int {
	switch {
	case err == nil:
		return http.StatusOK
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, ErrTooLarge):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, ErrUnknownProperty), errors.Is(err, ErrUnknownEdge):
		return http.StatusNotFound
	case errors.Is(err, ErrUnauthorized):
		return http.StatusUnauthorized
	case errors.Is(err, ErrRateLimited):
		return http.StatusTooManyRequests
	case errors.Is(err, ErrFull):
		return http.StatusInsufficientStorage
	case errors.Is(err, ErrNoEdge):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}
