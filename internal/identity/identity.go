// Package identity manages ed25519 keys — publisher keys that sign
// manifests and node keys that identify peers — and the TLS 1.3
// configuration that authenticates peer links by those keys.
//
// Keys are stored as PKCS#8 PEM files with mode 0600, written atomically.
package identity

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"avalanche/internal/atomicfile"
)

// ID identifies a node: its ed25519 public key.
type ID [ed25519.PublicKeySize]byte

// String returns the ID in hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short returns a 12-digit prefix for logs.
func (id ID) Short() string { return id.String()[:12] }

// IsZero reports whether id is unset.
func (id ID) IsZero() bool { return id == ID{} }

// PublicKey returns the key as an ed25519.PublicKey.
func (id ID) PublicKey() ed25519.PublicKey { return ed25519.PublicKey(id[:]) }

// ParseID parses a hex ID.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*len(id) {
		return id, fmt.Errorf("identity: ID must be %d hex digits", 2*len(id))
	}
	_, err := hex.Decode(id[:], []byte(s))
	if err != nil {
		return id, fmt.Errorf("identity: ID: %w", err)
	}
	return id, nil
}

// IDOf returns the ID of a public key.
func IDOf(pub ed25519.PublicKey) ID {
	var id ID
	copy(id[:], pub)
	return id
}

// Fingerprint returns a short SHA-256 based fingerprint of a public key.
func Fingerprint(pub ed25519.PublicKey) string {
	h := sha256.Sum256(pub)
	return hex.EncodeToString(h[:8])
}

var (
	// ErrExists is returned by Create when the key file already exists.
	ErrExists = errors.New("identity: key file already exists")
	// ErrBadKey is returned for unreadable key files.
	ErrBadKey = errors.New("identity: not an ed25519 private key")
)

// Generate returns a fresh private key.
func Generate() ed25519.PrivateKey {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return priv
}

// Encode returns the PKCS#8 PEM encoding of priv.
func Encode(priv ed25519.PrivateKey) []byte {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		panic(err) // cannot fail for a valid ed25519 key
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// Decode parses a PKCS#8 PEM ed25519 private key.
func Decode(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, ErrBadKey
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadKey, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, ErrBadKey
	}
	return priv, nil
}

// Create writes a new key to path (mode 0600, parent directories 0700) and
// returns it. It refuses to overwrite an existing file unless force is set.
func Create(path string, force bool) (ed25519.PrivateKey, error) {
	if !force {
		if _, err := os.Stat(path); err == nil {
			return nil, fmt.Errorf("%w: %s", ErrExists, path)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	priv := Generate()
	if err := atomicfile.WriteFile(path, Encode(priv), 0o600); err != nil {
		return nil, err
	}
	return priv, nil
}

// Load reads a key file.
func Load(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	priv, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return priv, nil
}

// LoadOrCreate reads the key at path, creating it first if it does not exist.
func LoadOrCreate(path string) (ed25519.PrivateKey, error) {
	priv, err := Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Create(path, false)
	}
	return priv, err
}

// ParsePublicKey accepts a public key as 64 hex digits.
func ParsePublicKey(s string) (ed25519.PublicKey, error) {
	id, err := ParseID(s)
	if err != nil {
		return nil, err
	}
	return id.PublicKey(), nil
}

// Self returns the ID of a private key.
func Self(priv ed25519.PrivateKey) ID { return IDOf(priv.Public().(ed25519.PublicKey)) }
