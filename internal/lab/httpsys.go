package lab

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"
)

// SystemHTTP is plain HTTP: every leecher downloads the file from one
// server on the seed host ("avalanche lab serve-http"), with "avalanche lab
// fetch", which checks the file's SHA-256.
const SystemHTTP = "http"

type httpSystem struct{}

func (httpSystem) name() string { return SystemHTTP }

const httpPort = 8080

func (httpSystem) startSeed(ctx context.Context, r *run) error {
	h := r.tb.seed
	p, err := r.start(procSpec{name: "seed-http", role: procSeed, host: h, dir: r.hostDir(h),
		args: []string{r.lab.cfg.Binary, "lab", "serve-http", "--listen", fmt.Sprintf("%s:%d", h.ip, httpPort), "--file", r.pl.path}})
	if err != nil {
		return err
	}
	hc := r.httpClient(h)
	return waitFor(ctx, "the HTTP server", 15*time.Second, p, func() bool {
		return httpOK(ctx, hc, fmt.Sprintf("http://%s:%d/stats", h.ip, httpPort))
	})
}

func (httpSystem) startLeecher(ctx context.Context, r *run, l *leecher) (*proc, error) {
	return r.start(procSpec{name: l.host.name + "-fetch", role: procLeecher, host: l.host, dir: l.dir,
		args: []string{r.lab.cfg.Binary, "lab", "fetch", "--json", "--sha256", r.pl.sha256,
			"-o", filepath.Join(l.dir, filepath.Base(r.pl.path)),
			fmt.Sprintf("http://%s:%d/%s", r.tb.seed.ip, httpPort, filepath.Base(r.pl.path))},
		onLine: jsonLines(l, r.now)})
}

func (httpSystem) seedUploaded(ctx context.Context, r *run) (int64, bool) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	var st ServerStats
	h := r.tb.seed
	if err := getJSON(ctx, r.httpClient(h), fmt.Sprintf("http://%s:%d/stats", h.ip, httpPort), &st); err != nil {
		return 0, false
	}
	return st.BytesSent, true
}

// ServerStats is the answer of the file server's GET /stats.
type ServerStats struct {
	BytesSent int64 `json:"bytes_sent"` // response body bytes written
	Requests  int64 `json:"requests"`
}

// ServeFile serves one file over HTTP at /NAME (with Range support, as
// http.ServeContent does) and its counters at /stats, until ctx ends.
func ServeFile(ctx context.Context, ln net.Listener, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	var sent, reqs atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(ServerStats{BytesSent: sent.Load(), Requests: reqs.Load()})
	})
	mux.HandleFunc("GET /"+filepath.Base(path), func(w http.ResponseWriter, r *http.Request) {
		reqs.Add(1)
		http.ServeContent(&countingWriter{ResponseWriter: w, n: &sent}, r, st.Name(), st.ModTime(), io.NewSectionReader(f, 0, st.Size()))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("lab: %w", err)
	}
	return nil
}

// countingWriter counts body bytes as they are written to the connection.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w *countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n.Add(int64(n))
	return n, err
}

// FetchConfig configures Fetch.
type FetchConfig struct {
	URL    string
	Output string // file to write
	SHA256 string // hex; empty skips the check
	// Progress receives JSON lines ({"event":"progress",...} every half
	// second, then {"event":"complete",...}); nil prints nothing.
	Progress io.Writer
}

// ErrMismatch is returned by Fetch when the file's SHA-256 is not the one
// expected.
var ErrMismatch = errors.New("lab: SHA-256 mismatch")

// Fetch downloads a URL to a file with one GET, hashing as it goes, and
// reports progress in the JSON lines avalanche get prints.
func Fetch(ctx context.Context, cfg FetchConfig) error {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.URL, nil)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("lab: GET %s: %s", cfg.URL, resp.Status)
	}
	out, err := os.Create(cfg.Output)
	if err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	defer out.Close()
	h := sha256.New()
	enc := json.NewEncoder(io.Discard)
	if cfg.Progress != nil {
		enc = json.NewEncoder(cfg.Progress)
	}
	line := func(event string, done int64) {
		enc.Encode(map[string]any{"event": event, "done_bytes": done, "size": resp.ContentLength,
			"from_origin": done, "seconds": time.Since(start).Seconds()})
	}
	buf := make([]byte, 256<<10)
	var done int64
	last := time.Now()
	for {
		// Whole buffers: a slow link hands Read one segment at a time, and
		// the syscalls would cost more CPU than the transfer.
		n, rerr := io.ReadFull(resp.Body, buf)
		if rerr == io.ErrUnexpectedEOF {
			rerr = io.EOF
		}
		if n > 0 {
			if _, err := out.Write(buf[:n]); err != nil {
				return fmt.Errorf("lab: %w", err)
			}
			h.Write(buf[:n])
			done += int64(n)
			if time.Since(last) >= 500*time.Millisecond {
				last = time.Now()
				line("progress", done)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("lab: %w", rerr)
		}
	}
	if resp.ContentLength >= 0 && done != resp.ContentLength {
		return fmt.Errorf("lab: short body: %d of %d bytes", done, resp.ContentLength)
	}
	if cfg.SHA256 != "" && hex.EncodeToString(h.Sum(nil)) != cfg.SHA256 {
		return ErrMismatch
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("lab: %w", err)
	}
	line("complete", done)
	return nil
}
