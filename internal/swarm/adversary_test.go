package swarm

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"avalanche/internal/identity"
	"avalanche/internal/manifest"
	"avalanche/internal/wire"
)

// rawPeer is a hand-driven peer speaking the wire protocol directly, to
// play an adversary.
type rawPeer struct {
	t   *testing.T
	c   *tls.Conn
	buf []byte
	m   *manifest.Manifest
}

func dialRaw(t *testing.T, addr string, want identity.ID) *rawPeer {
	t.Helper()
	cfg, err := identity.ClientTLS(identity.Generate(), want, wire.ALPN)
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(10 * time.Second))
	return &rawPeer{t: t, c: c}
}

func (r *rawPeer) send(f wire.Frame) { r.c.Write(wire.Append(nil, f)) }

func (r *rawPeer) read() (wire.Frame, error) {
	body, nb, err := wire.ReadFrame(r.c, r.buf)
	r.buf = nb
	if err != nil {
		return nil, err
	}
	var l wire.Layout
	if r.m != nil {
		l = r.m
	}
	return wire.Decode(body, l)
}

// expectBye reads until the node says goodbye (or closes) and returns the
// goodbye.
func (r *rawPeer) expectBye() (wire.Bye, bool) {
	for {
		f, err := r.read()
		if err != nil {
			return wire.Bye{}, false
		}
		if b, ok := f.(wire.Bye); ok {
			return b, true
		}
	}
}

// logBuffer collects a node's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestMalformedInput: garbage on the wire closes that one connection with a
// logged reason; the node keeps serving everyone else.
func TestMalformedInput(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	data := randomData(300<<10, 9)
	m := testManifest(t, data, 8, 4096)
	var logs logBuffer
	// A slow uplink, so that wants pile up faster than they are served.
	on, err := NewNode(ctx, NodeConfig{Key: identity.Generate(), Role: wire.RoleOrigin, UploadLimit: 256 << 10, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer on.Close()
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go on.Serve(ln)
	if _, err := on.Join(Config{Manifest: m, Data: bytes.NewReader(data), MasterKey: []byte("k")}); err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	hello := wire.Hello{Version: wire.Version, Role: wire.RolePeer, Content: m.ID()}

	tests := []struct {
		name     string
		exchange func(r *rawPeer)
		wantCode wire.ByeCode
	}{
		{"oversized length", func(r *rawPeer) {
			r.c.Write([]byte{0x7f, 0xff, 0xff, 0xff})
		}, wire.ByeProtocol},
		{"unknown frame type before hello", func(r *rawPeer) {
			r.c.Write([]byte{0, 0, 0, 1, 200})
		}, wire.ByeProtocol},
		{"wrong content ID", func(r *rawPeer) {
			h := hello
			h.Content[0] ^= 1
			r.send(h)
		}, wire.ByeUnknown},
		{"unsupported version", func(r *rawPeer) {
			h := hello
			h.Version = 9
			r.send(h)
		}, wire.ByeProtocol},
		{"replayed hello", func(r *rawPeer) {
			r.send(hello)
			r.m = m
			r.send(wire.State{Ranks: make([]byte, m.Generations())})
			r.send(hello)
		}, wire.ByeProtocol},
		{"block for a generation out of range", func(r *rawPeer) {
			r.send(hello)
			r.m = m
			r.send(wire.State{Ranks: make([]byte, m.Generations())})
			var b []byte
			b = binary.BigEndian.AppendUint32(b, 5)
			b = append(b, byte(wire.TBlock), 0, 0, 0, 99)
			r.c.Write(b)
		}, wire.ByeProtocol},
		{"more cancels than wants", func(r *rawPeer) {
			r.send(hello)
			r.m = m
			r.send(wire.State{Ranks: make([]byte, m.Generations())})
			e0 := []byte{1, 0, 0, 0, 0, 0, 0, 0}
			r.send(wire.Want{Gen: 0, Coeffs: e0})
			r.send(wire.Cancel{Gen: 0, Coeffs: e0})
			r.send(wire.Cancel{Gen: 0, Coeffs: e0})
		}, wire.ByeProtocol},
		{"too many wants", func(r *rawPeer) {
			r.send(hello)
			r.m = m
			r.send(wire.State{Ranks: make([]byte, m.Generations())})
			// Write from another goroutine: the node answers with blocks
			// that we must read meanwhile.
			go func() {
				for i := 0; i < 3*maxQueuedWants; i++ {
					r.send(wire.Want{Gen: 0, Any: true, Coeffs: make([]byte, 8)})
				}
			}()
		}, wire.ByeProtocol},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, addr, on.ID())
			defer r.c.Close()
			tc.exchange(r)
			bye, ok := r.expectBye()
			if !ok {
				t.Fatal("connection closed without a goodbye")
			}
			if bye.Code != tc.wantCode || bye.Reason == "" {
				t.Errorf("bye = %d %q, want code %d with a reason", bye.Code, bye.Reason, tc.wantCode)
			}
		})
	}
	// The node still serves an honest peer.
	n, _ := testNode(t, ctx, wire.RolePeer, 0)
	out := &memFile{b: make([]byte, len(data))}
	s, err := n.Join(Config{Manifest: m, Data: out, Out: out})
	if err != nil {
		t.Fatal(err)
	}
	s.AddPeers([]PeerAddr{{ID: on.ID(), Addr: addr, Role: wire.RoleOrigin}})
	waitAll(t, ctx, []*Swarm{s})
	if !bytes.Equal(out.b, data) {
		t.Error("honest peer got wrong data")
	}
	if !strings.Contains(logs.String(), "closing connection") {
		t.Errorf("no reason logged; logs:\n%s", logs.String())
	}
}

// TestPolluterCaught: a peer that claims the whole content and answers with
// well-framed blocks carrying a wrong payload is caught on its first block,
// disconnected, banned and reported, and the victim writes no wrong byte.
func TestPolluterCaught(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	data := randomData(1<<20, 10)
	m := testManifest(t, data, 16, 4096)
	ts := startSwarm(t, ctx, data, m, 0, 0)

	// The victim knows only the origin (for its checksums) to start with,
	// and the origin is slow, so the victim asks the polluter for blocks.
	victimNode, victimAddr := testNode(t, ctx, wire.RolePeer, 0)
	out := &memFile{b: make([]byte, len(data))}
	reported := make(chan identity.ID, 1)
	victim, err := victimNode.Join(Config{Manifest: m, Data: out, Out: out, OnPolluter: func(id identity.ID, _ netip.AddrPort) { reported <- id }})
	if err != nil {
		t.Fatal(err)
	}

	// The polluter dials the victim and claims to hold everything.
	r := dialRaw(t, victimAddr, victimNode.ID())
	defer r.c.Close()
	r.send(wire.Hello{Version: wire.Version, Role: wire.RolePeer, Content: m.ID(), Complete: true})
	r.m = m
	full := make([]byte, m.Generations())
	for g := range full {
		full[g] = byte(m.GenerationBlocks(g))
	}
	r.send(wire.State{Ranks: full})
	victim.AddPeers([]PeerAddr{ts.originAddr})

	sent := 0
	for {
		f, err := r.read()
		if err != nil {
			if errors.Is(err, io.EOF) || sent > 0 {
				break
			}
			t.Fatalf("polluter: %v", err)
		}
		switch f := f.(type) {
		case wire.Want:
			bad := make([]byte, m.BlockSize) // well framed, wrong payload
			bad[0] = 1
			r.send(wire.Block{Gen: f.Gen, Coeffs: append([]byte(nil), f.Coeffs...), Payload: bad})
			sent++
		case wire.Bye:
			if f.Code != wire.ByePollution {
				t.Errorf("bye code %d, want pollution", f.Code)
			}
			goto closed
		}
	}
closed:
	select {
	case id := <-reported:
		_ = id
	case <-time.After(5 * time.Second):
		t.Error("polluter not reported")
	}
	st := victim.Stats()
	if st.Polluted != 1 {
		t.Errorf("victim saw %d polluted blocks, want exactly 1 (caught on the first)", st.Polluted)
	}
	waitAll(t, ctx, []*Swarm{victim})
	if !bytes.Equal(out.b, data) {
		t.Fatal("victim wrote wrong bytes")
	}
}

// listeningDownloader starts a node that accepts links and downloads m
// (into memory) with cfg, and returns it and its address.
func listeningDownloader(t *testing.T, ctx context.Context, m *manifest.Manifest, cfg Config) (*Node, string) {
	t.Helper()
	n, addr := testNode(t, ctx, wire.RolePeer, 0)
	out := &memFile{b: make([]byte, m.Size)}
	cfg.Manifest, cfg.Data, cfg.Out = m, out, out
	if _, err := n.Join(cfg); err != nil {
		t.Fatal(err)
	}
	return n, addr
}

// TestFullNodeLetsInThoseFarBehind: a downloader that holds as many links
// as it accepts refuses one more neighbour, unless that neighbour's hello
// says it is far behind (wire.Hello.Behind), for which it keeps half as
// many links more.
func TestFullNodeLetsInThoseFarBehind(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	m := testManifest(t, randomData(64<<10, 12), 4, 4096)
	// MaxPeers 2: it dials 2 and accepts up to 3 partial neighbours.
	n, addr := listeningDownloader(t, ctx, m, Config{MaxPeers: 2})
	join := func(behind bool) (admitted bool) {
		r := dialRaw(t, addr, n.ID())
		t.Cleanup(func() { r.c.Close() })
		r.m = m
		r.send(wire.Hello{Version: wire.Version, Role: wire.RolePeer, Content: m.ID(), Behind: behind})
		f, err := r.read()
		if err != nil {
			t.Fatalf("no answer to hello: %v", err)
		}
		switch f := f.(type) {
		case wire.Hello:
			r.send(wire.State{Ranks: make([]byte, m.Generations())})
			return true
		case wire.Bye:
			if f.Code != wire.ByeBusy {
				t.Fatalf("bye %+v, want busy", f)
			}
			return false
		}
		t.Fatalf("answer to hello: %T", f)
		return false
	}
	for i := range 3 {
		if !join(false) {
			t.Fatalf("neighbour %d refused below the limit", i+1)
		}
	}
	if join(false) {
		t.Error("a fourth neighbour was let in")
	}
	if !join(true) {
		t.Error("a neighbour far behind was refused")
	}
	if join(false) {
		t.Error("a neighbour not behind was let in past the limit")
	}
}

// TestFakeOrigin: a neighbour that claims to be the origin without having
// been introduced as one cannot hand out checksum keys.
func TestFakeOrigin(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	m := testManifest(t, randomData(64<<10, 11), 4, 4096)
	n, addr := listeningDownloader(t, ctx, m, Config{})
	r := dialRaw(t, addr, n.ID())
	defer r.c.Close()
	full := make([]byte, m.Generations())
	for g := range full {
		full[g] = byte(m.GenerationBlocks(g))
	}
	r.send(wire.Hello{Version: wire.Version, Role: wire.RoleOrigin, Content: m.ID(), Complete: true})
	r.m = m
	r.send(wire.State{Ranks: full})
	r.send(wire.Key{Key: [32]byte{1}, Checks: 4})
	bye, ok := r.expectBye()
	if !ok || bye.Code != wire.ByeProtocol || !strings.Contains(bye.Reason, "non-origin") {
		t.Errorf("bye = %+v, %v; want a protocol violation about a non-origin key", bye, ok)
	}
}
