package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// ErrPeerKey is returned by the TLS handshake when the other side's key is
// not the expected one or not ed25519.
var ErrPeerKey = errors.New("identity: unexpected peer key")

// Certificate returns a self-signed TLS certificate for priv. Peers
// authenticate each other by the key inside, not by a CA.
func Certificate(priv ed25519.PrivateKey) (tls.Certificate, error) {
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "avalanche-" + IDOf(priv.Public().(ed25519.PublicKey)).Short()},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, priv.Public(), priv)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv}, nil
}

// PeerID extracts the ed25519 key of the other side of a completed TLS
// connection.
func PeerID(cs tls.ConnectionState) (ID, error) {
	if len(cs.PeerCertificates) == 0 {
		return ID{}, fmt.Errorf("%w: no certificate", ErrPeerKey)
	}
	pub, ok := cs.PeerCertificates[0].PublicKey.(ed25519.PublicKey)
	if !ok {
		return ID{}, fmt.Errorf("%w: not ed25519", ErrPeerKey)
	}
	return IDOf(pub), nil
}

// verifyKey checks that the presented chain is a single certificate whose
// ed25519 key signed it and, when want is non-zero, equals want.
func verifyKey(want ID) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) != 1 {
			return fmt.Errorf("%w: %d certificates", ErrPeerKey, len(raw))
		}
		c, err := x509.ParseCertificate(raw[0])
		if err != nil {
			return fmt.Errorf("%w: %v", ErrPeerKey, err)
		}
		pub, ok := c.PublicKey.(ed25519.PublicKey)
		if !ok {
			return fmt.Errorf("%w: not ed25519", ErrPeerKey)
		}
		if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
			return fmt.Errorf("%w: %v", ErrPeerKey, err)
		}
		if !want.IsZero() && IDOf(pub) != want {
			return fmt.Errorf("%w: got %s, want %s", ErrPeerKey, IDOf(pub).Short(), want.Short())
		}
		return nil
	}
}

// ServerTLS returns a TLS 1.3 server configuration that presents priv and
// requires the client to present an ed25519 key of its own (any key: the
// application decides whom to serve).
func ServerTLS(priv ed25519.PrivateKey, alpn string) (*tls.Config, error) {
	cert, err := Certificate(priv)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:            tls.VersionTLS13,
		Certificates:          []tls.Certificate{cert},
		ClientAuth:            tls.RequireAnyClientCert,
		VerifyPeerCertificate: verifyKey(ID{}),
		NextProtos:            []string{alpn},
	}, nil
}

// ClientTLS returns a TLS 1.3 client configuration that presents priv and
// accepts the server only if its key is want (any key if want is zero).
func ClientTLS(priv ed25519.PrivateKey, want ID, alpn string) (*tls.Config, error) {
	cert, err := Certificate(priv)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion:            tls.VersionTLS13,
		Certificates:          []tls.Certificate{cert},
		InsecureSkipVerify:    true, // the key check below replaces CA verification
		VerifyPeerCertificate: verifyKey(want),
		NextProtos:            []string{alpn},
		ServerName:            "avalanche",
	}, nil
}
