// Package redistest starts throw-away redis-server processes for tests.
//
// Start launches a fresh server on a free loopback port with persistence
// switched off, waits until it answers PING and stops it when the test ends.
// When redis-server is not installed or cannot be started, the test is
// skipped with a message that says how to install it
// (scripts/install-test-deps.sh). The package speaks just enough RESP to
// check liveness, so it depends on no Redis client library.
package redistest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Binary is the name of the server executable looked up in $PATH.
const Binary = "redis-server"

// startTimeout bounds how long Start waits for a server to answer.
const startTimeout = 10 * time.Second

// Start runs a new redis-server on 127.0.0.1 for the duration of t and
// returns its address ("127.0.0.1:port"). The server keeps no data on disk.
// It calls t.Skip when redis-server is missing or does not come up, and
// never returns an address of a server that did not answer PING.
func Start(t testing.TB) string {
	t.Helper()
	addr, err := start(t)
	if err != nil {
		t.Skipf("redistest: cannot start %s (%v); install it with scripts/install-test-deps.sh", Binary, err)
	}
	return addr
}

func start(t testing.TB) (string, error) {
	path, err := exec.LookPath(Binary)
	if err != nil {
		return "", err
	}
	var lastErr error
	// A port found free may be taken before the server binds it; retry a
	// few times with a new one.
	for range 3 {
		port, err := freePort()
		if err != nil {
			return "", err
		}
		addr, err := launch(t, path, port)
		if err == nil {
			return addr, nil
		}
		lastErr = err
	}
	return "", lastErr
}

func launch(t testing.TB, path string, port int) (string, error) {
	dir := t.TempDir()
	cmd := exec.Command(path,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--dir", dir,
		"--save", "",
		"--appendonly", "no",
		"--protected-mode", "yes",
		"--daemonize", "no",
		"--loglevel", "warning",
	)
	var out strings.Builder
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-exited
	}

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for {
		if err := ping(ctx, addr); err == nil {
			break
		}
		select {
		case err := <-exited:
			exited <- err // let stop's receive finish
			return "", fmt.Errorf("exited (%v): %s", err, strings.TrimSpace(out.String()))
		case <-ctx.Done():
			stop()
			return "", fmt.Errorf("no answer on %s within %v: %s", addr, startTimeout, strings.TrimSpace(out.String()))
		case <-time.After(10 * time.Millisecond):
		}
	}
	t.Cleanup(stop)
	return addr, nil
}

// ping sends one RESP PING and expects +PONG.
func ping(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return errors.New("unexpected reply " + strconv.Quote(line))
	}
	return nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
