package origin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"syscall"
	"testing"

	"avalanche/internal/contentstore"
	"avalanche/internal/manifest"
)

func TestStatusOf(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("op: %w", err) }
	for _, tc := range []struct {
		err  error
		want int
	}{
		{ErrUnauthorized, 401},
		{wrap(ErrForbidden), 403},
		{wrap(manifest.ErrPublisher), 403},
		{wrap(contentstore.ErrNotFound), 404},
		{wrap(contentstore.ErrIncomplete), 404},
		{wrap(contentstore.ErrBusy), 409},
		{wrap(contentstore.ErrQuota), 413},
		{wrap(&http.MaxBytesError{Limit: 1}), 413},
		{&bodyError{&http.MaxBytesError{Limit: 1}}, 413},
		{wrap(manifest.ErrTooLarge), 413},
		{wrap(contentstore.ErrHashMismatch), 422},
		{wrap(&bodyError{os.ErrDeadlineExceeded}), 408},
		{wrap(&os.PathError{Op: "write", Path: "x", Err: syscall.ENOSPC}), 507},
		{contentstore.ErrClosed, 503},
		{wrap(&bodyError{io.ErrUnexpectedEOF}), 400},
		{wrap(context.Canceled), 400},
		{wrap(contentstore.ErrTooShort), 400},
		{wrap(contentstore.ErrTooLong), 400},
		{ErrPropertyMismatch, 400},
		{wrap(manifest.ErrSignature), 400},
		{manifest.ErrUnsigned, 400},
		{wrap(manifest.ErrMalformed), 400},
		{errors.New("disk on fire"), 500},
	} {
		t.Run(tc.err.Error(), func(t *testing.T) {
			if got := statusOf(tc.err); got != tc.want {
				t.Errorf("statusOf(%v) = %d, want %d", tc.err, got, tc.want)
			}
		})
	}
}
