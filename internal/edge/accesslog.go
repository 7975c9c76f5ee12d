package edge

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// LogLine is one access-log record, written as one JSON object per line.
// Field names are stable: billing and analytics parse them.
type LogLine struct {
	Time        string  `json:"time"` // RFC 3339, milliseconds, UTC
	Property    string  `json:"property"`
	Node        string  `json:"node"`
	Client      string  `json:"client"`
	Method      string  `json:"method"`
	Host        string  `json:"host"`
	Path        string  `json:"path"`
	Proto       string  `json:"proto"`
	Status      int     `json:"status"`
	BytesSent   int64   `json:"bytes_sent"` // header + body bytes
	BodyBytes   int64   `json:"body_bytes"`
	Duration    float64 `json:"duration"` // seconds
	CacheStatus string  `json:"cache_status"`
	Range       string  `json:"range,omitempty"`
	TraceID     string  `json:"trace_id"`
	UserAgent   string  `json:"user_agent,omitempty"`
}

// AccessLog writes LogLines to a writer, or to a file that it rotates by
// size. It is safe for concurrent use.
type AccessLog struct {
	mu      sync.Mutex
	w       io.Writer
	f       *os.File
	path    string
	size    int64
	maxSize int64
	keep    int
}

// NewAccessLog logs to w (not closed by Close).
func NewAccessLog(w io.Writer) *AccessLog { return &AccessLog{w: w} }

// OpenAccessLog logs to the file at path, rotating it when it exceeds
// maxSize bytes (zero means 100 MiB) and keeping keep old files
// (path.1 … path.keep; zero means 5).
func OpenAccessLog(path string, maxSize int64, keep int) (*AccessLog, error) {
	if maxSize <= 0 {
		maxSize = 100 << 20
	}
	if keep <= 0 {
		keep = 5
	}
	l := &AccessLog{path: path, maxSize: maxSize, keep: keep}
	if err := l.open(); err != nil {
		return nil, err
	}
	return l, nil
}

func (l *AccessLog) open() error {
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("edge: access log: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("edge: access log: %w", err)
	}
	l.f, l.w, l.size = f, f, st.Size()
	return nil
}

// rotate shifts path.N-1 → path.N … path → path.1 and reopens. Called with
// mu held.
func (l *AccessLog) rotate() error {
	l.f.Close()
	for i := l.keep; i > 1; i-- {
		_ = os.Rename(fmt.Sprintf("%s.%d", l.path, i-1), fmt.Sprintf("%s.%d", l.path, i))
	}
	_ = os.Rename(l.path, l.path+".1")
	return l.open()
}

// Reopen closes and reopens the file (after an external rotation).
func (l *AccessLog) Reopen() error {
	if l == nil || l.f == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.f.Close()
	return l.open()
}

// Write records one line.
func (l *AccessLog) Write(line *LogLine) {
	if l == nil {
		return
	}
	b, err := json.Marshal(line)
	if err != nil {
		return
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil && l.size+int64(len(b)) > l.maxSize {
		if err := l.rotate(); err != nil {
			return
		}
	}
	n, _ := l.w.Write(b)
	l.size += int64(n)
}

// Close closes the file, if the log owns one.
func (l *AccessLog) Close() error {
	if l == nil || l.f == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

func logTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z07:00") }
