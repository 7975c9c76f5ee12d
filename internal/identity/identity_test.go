package identity

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestCreateLoad(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "key")
	k, err := Create(p, false)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if _, err := Create(p, false); !errors.Is(err, ErrExists) {
		t.Errorf("Create over existing = %v", err)
	}
	got, err := LoadOrCreate(p)
	if err != nil || !got.Equal(k) {
		t.Fatalf("LoadOrCreate = %v", err)
	}
	os.WriteFile(p, []byte("junk"), 0o600)
	if _, err := Load(p); !errors.Is(err, ErrBadKey) {
		t.Errorf("Load(junk) = %v", err)
	}
}

func TestTLSAuthenticatesKeys(t *testing.T) {
	server, client, other := Generate(), Generate(), Generate()
	srvCfg, _ := ServerTLS(server, "avalanche/1")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", srvCfg)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan ID, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := c.(*tls.Conn)
			if tc.Handshake() == nil {
				id, _ := PeerID(tc.ConnectionState())
				got <- id
			}
			c.Close()
		}
	}()
	dial := func(want ID) error {
		cfg, _ := ClientTLS(client, want, "avalanche/1")
		c, err := tls.DialWithDialer(&net.Dialer{}, "tcp", ln.Addr().String(), cfg)
		if err != nil {
			return err
		}
		c.Close()
		return nil
	}
	if err := dial(Self(server)); err != nil {
		t.Fatalf("dial right key: %v", err)
	}
	if id := <-got; id != Self(client) {
		t.Errorf("server saw %s, want client key", id.Short())
	}
	if err := dial(Self(other)); !errors.Is(err, ErrPeerKey) {
		t.Errorf("dial wrong key = %v, want ErrPeerKey", err)
	}
}
