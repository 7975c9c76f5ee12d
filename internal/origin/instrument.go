package origin

import (
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"
)

// instrument wraps the mux: it counts requests and response bytes per
// route pattern and logs one structured line per request. It logs the
// method, path (never the query string), route, status, bytes, duration,
// remote address and user agent — never a header that could hold a token.
func (o *Origin) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &responseWriter{ResponseWriter: w}
		next.ServeHTTP(rw, r)
		route := r.Pattern // set by the mux on r
		if route == "" {
			route = "unmatched"
		}
		if rw.code == 0 {
			rw.code = http.StatusOK
		}
		d := time.Since(start)
		o.m.requests.WithLabelValues(route, strconv.Itoa(rw.code)).Inc()
		o.m.bytesSent.WithLabelValues(route).Add(float64(rw.n))
		o.m.duration.WithLabelValues(route).Observe(d.Seconds())
		o.log.LogAttrs(r.Context(), levelFor(rw.code), "http request",
			slog.String("method", r.Method),
			slog.String("path", r.URL.Path),
			slog.String("route", route),
			slog.Int("status", rw.code),
			slog.Int64("bytes", rw.n),
			slog.Duration("duration", d),
			slog.String("remote", r.RemoteAddr),
			slog.String("user_agent", r.UserAgent()),
		)
	})
}

// responseWriter records the status and the body bytes written. It keeps
// io.ReaderFrom (so that http.ServeContent can use sendfile) and exposes
// the original writer to http.ResponseController through Unwrap.
type responseWriter struct {
	http.ResponseWriter
	code int
	n    int64
}

func (w *responseWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *responseWriter) Write(p []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.n += int64(n)
	return n, err
}

func (w *responseWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	var n int64
	var err error
	if rf, ok := w.ResponseWriter.(io.ReaderFrom); ok {
		n, err = rf.ReadFrom(r)
	} else {
		n, err = io.Copy(struct{ io.Writer }{w.ResponseWriter}, r)
	}
	w.n += n
	return n, err
}

func (w *responseWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func levelFor(code int) slog.Level {
	if code >= 500 {
		return slog.LevelError
	}
	return slog.LevelInfo
}
