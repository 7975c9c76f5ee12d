package origin

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"avalanche/internal/manifest"
)

// MaxConfigBytes bounds the size of a configuration file ParseConfig
// accepts.
const MaxConfigBytes = 1 << 20

// MinTokenLen is the shortest plain-text bearer token ParseToken accepts.
const MinTokenLen = 16

// maxTokenLen bounds a bearer token presented in a request or written in a
// configuration file.
const maxTokenLen = 1024

// Token is a bearer token as the origin keeps it: the SHA-256 of the
// secret. The secret itself is never stored in memory longer than a request
// and never logged.
type Token [sha256.Size]byte

// HashToken returns the Token of a secret.
func HashToken(secret string) Token { return sha256.Sum256([]byte(secret)) }

// String returns the token's configuration-file form, "sha256:<hex>". It
// reveals nothing about the secret.
func (t Token) String() string { return "sha256:" + hex.EncodeToString(t[:]) }

// ParseToken parses a token from a configuration file: either
// "sha256:<64 hex digits>" (the SHA-256 of the secret, so the file need not
// hold the secret) or the secret itself, at least MinTokenLen bytes of
// printable ASCII.
func ParseToken(s string) (Token, error) {
	if h, ok := strings.CutPrefix(s, "sha256:"); ok {
		var t Token
		if len(h) != 2*len(t) {
			return Token{}, fmt.Errorf("%w: a sha256: token needs %d hex digits", ErrConfig, 2*len(t))
		}
		if _, err := hex.Decode(t[:], []byte(h)); err != nil {
			return Token{}, fmt.Errorf("%w: sha256: token is not hex", ErrConfig)
		}
		return t, nil
	}
	if len(s) < MinTokenLen || len(s) > maxTokenLen {
		return Token{}, fmt.Errorf("%w: a token must be %d..%d characters (or sha256:<hex>)", ErrConfig, MinTokenLen, maxTokenLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return Token{}, fmt.Errorf("%w: a token must be printable ASCII without spaces", ErrConfig)
		}
	}
	return HashToken(s), nil
}

// NewToken returns a fresh random secret suitable as a bearer token:
// "avt_" followed by 43 base64url characters (256 bits).
func NewToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails on supported platforms
	return "avt_" + base64.RawURLEncoding.EncodeToString(b)
}

// Property is the configuration of one tenant on an origin.
type Property struct {
	// Name is the property's name (see manifest.CheckProperty).
	Name string
	// Tokens are the bearer tokens that may publish, list and delete the
	// property's content. No tokens: nobody can.
	Tokens []Token
	// Publishers are the ed25519 keys whose signed manifests the property
	// accepts. No keys: every manifest is refused.
	Publishers []ed25519.PublicKey
	// QuotaBytes limits the sum of file sizes and manifest lengths stored
	// for the property, complete or not. 0 means no limit.
	QuotaBytes int64
}

// fileConfig is the JSON form of a configuration file.
type fileConfig struct {
	Properties map[string]fileProperty `json:"properties"`
}

type fileProperty struct {
	Tokens     []string `json:"tokens"`
	Publishers []string `json:"publishers"`
	QuotaBytes int64    `json:"quota_bytes"`
}

// ParseConfig parses an origin configuration file (JSON, see
// docs/origin.md) into properties sorted by name:
//
//	{"properties": {"devtools": {
//	    "tokens": ["sha256:<hex>", "<plain secret>"],
//	    "publishers": ["<ed25519 public key, hex>"],
//	    "quota_bytes": 10737418240}}}
//
// Unknown fields, invalid names, keys or tokens, negative quotas and a
// token listed for two properties are errors wrapping ErrConfig.
func ParseConfig(data []byte) ([]Property, error) {
	if len(data) > MaxConfigBytes {
		return nil, fmt.Errorf("%w: longer than %d bytes", ErrConfig, MaxConfigBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var fc fileConfig
	if err := dec.Decode(&fc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%w: trailing data after the JSON object", ErrConfig)
	}
	props := make([]Property, 0, len(fc.Properties))
	for name, fp := range fc.Properties {
		p := Property{Name: name, QuotaBytes: fp.QuotaBytes}
		for _, s := range fp.Tokens {
			t, err := ParseToken(s)
			if err != nil {
				return nil, fmt.Errorf("property %q: %w", name, err)
			}
			p.Tokens = append(p.Tokens, t)
		}
		for _, s := range fp.Publishers {
			b, err := hex.DecodeString(s)
			if err != nil || len(b) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("%w: property %q: publisher %q is not a %d-digit hex ed25519 public key", ErrConfig, name, s, 2*ed25519.PublicKeySize)
			}
			p.Publishers = append(p.Publishers, ed25519.PublicKey(b))
		}
		props = append(props, p)
	}
	sort.Slice(props, func(i, j int) bool { return props[i].Name < props[j].Name })
	if err := checkProperties(props); err != nil {
		return nil, err
	}
	return props, nil
}

// checkProperties validates properties as New accepts them.
func checkProperties(props []Property) error {
	seenName := make(map[string]bool)
	seenToken := make(map[Token]string)
	for _, p := range props {
		if err := manifest.CheckProperty(p.Name); err != nil {
			return fmt.Errorf("%w: %v", ErrConfig, err)
		}
		if seenName[p.Name] {
			return fmt.Errorf("%w: property %q configured twice", ErrConfig, p.Name)
		}
		seenName[p.Name] = true
		if p.QuotaBytes < 0 {
			return fmt.Errorf("%w: property %q: negative quota", ErrConfig, p.Name)
		}
		for _, t := range p.Tokens {
			if other, ok := seenToken[t]; ok && other != p.Name {
				return fmt.Errorf("%w: the same token is listed for properties %q and %q", ErrConfig, other, p.Name)
			}
			seenToken[t] = p.Name
		}
		for _, k := range p.Publishers {
			if len(k) != ed25519.PublicKeySize {
				return fmt.Errorf("%w: property %q: publisher key has %d bytes", ErrConfig, p.Name, len(k))
			}
		}
	}
	return nil
}
