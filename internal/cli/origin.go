package cli

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"

	"avalanche/internal/identity"
	"avalanche/internal/origin"
)

func runOrigin(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "origin", "[flags]", `
Run an origin: the authoritative content store, the publish API and plain
HTTP downloads (Range, If-Range, ETag). See docs/origin.md.

With -config, properties, their bearer tokens, allowed publisher keys and
quotas come from the JSON file. Without it the origin starts in a safe
local mode: one property, "default", whose token is $AVALANCHE_TOKEN or, if
unset, a fresh random token printed once on stderr, and whose only allowed
publisher is the local key (see avalanche keygen).`)
	listen := fs.String("listen", "127.0.0.1:7070", "address to serve HTTP on")
	data := fs.String("data", filepath.Join(env.dataDir(), "origin"), "content store directory")
	config := fs.String("config", "", "JSON configuration file (properties, tokens, publisher keys, quotas)")
	verify := fs.Bool("verify", false, "re-hash all stored content against its manifest at startup")
	publicURL := fs.String("public-url", "", "base URL to advertise in publish responses (default: from the request)")
	logJSON := fs.Bool("log-json", false, "write logs as JSON lines instead of text")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return fmt.Errorf("origin takes no arguments: %w", errUsage)
	}
	var handler slog.Handler = slog.NewTextHandler(env.Stderr, nil)
	if *logJSON {
		handler = slog.NewJSONHandler(env.Stderr, nil)
	}
	log := slog.New(handler)

	var props []origin.Property
	var zeroConfigToken string
	if *config != "" {
		b, err := readConfigFile(*config)
		if err != nil {
			return fmt.Errorf("origin: %w", err)
		}
		if props, err = origin.ParseConfig(b); err != nil {
			return fmt.Errorf("origin: %s: %w", *config, err)
		}
	} else {
		p, tok, err := zeroConfig(env)
		if err != nil {
			return err
		}
		props, zeroConfigToken = []origin.Property{p}, tok
	}

	o, err := origin.New(ctx, origin.Config{
		DataDir:      *data,
		Properties:   props,
		Logger:       log,
		VerifyOnOpen: *verify,
		PublicURL:    *publicURL,
	})
	if err != nil {
		return fmt.Errorf("origin: %w", err)
	}
	defer o.Close()
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("origin: %w", err)
	}
	url := "http://" + ln.Addr().String()
	fmt.Fprintf(env.Stderr, "avalanche origin listening on %s (data %s)\n", url, *data)
	if *config == "" {
		printZeroConfig(env, url, props[0], zeroConfigToken)
	}
	if err := o.Serve(ctx, ln); err != nil {
		return fmt.Errorf("origin: %w", err)
	}
	return nil
}

func readConfigFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > origin.MaxConfigBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, origin.MaxConfigBytes)
	}
	return os.ReadFile(path)
}

// zeroConfig returns the property of the zero-configuration mode and, if
// the token was generated here, its secret (to be shown once).
func zeroConfig(env *Env) (origin.Property, string, error) {
	p := origin.Property{Name: "default"}
	secret, generated := env.getenv("AVALANCHE_TOKEN"), ""
	if secret == "" {
		secret = origin.NewToken()
		generated = secret
	}
	tok, err := origin.ParseToken(secret)
	if err != nil {
		return p, "", fmt.Errorf("origin: AVALANCHE_TOKEN: %w", err)
	}
	p.Tokens = []origin.Token{tok}
	priv, err := identity.Load(env.defaultPublisherKey())
	switch {
	case err == nil:
		p.Publishers = []ed25519.PublicKey{priv.Public().(ed25519.PublicKey)}
	case errors.Is(err, fs.ErrNotExist):
		// No local key: the origin runs but refuses every manifest until
		// one exists and the origin is restarted.
	default:
		return p, "", fmt.Errorf("origin: publisher key: %w", err)
	}
	return p, generated, nil
}

func printZeroConfig(env *Env, url string, p origin.Property, generated string) {
	w := env.Stderr
	fmt.Fprintln(w, `No -config: property "default" only.`)
	if len(p.Publishers) == 1 {
		fmt.Fprintf(w, "  allowed publisher: %x (%s)\n", []byte(p.Publishers[0]), env.defaultPublisherKey())
	} else {
		fmt.Fprintf(w, "  no publisher key at %s: every manifest will be refused.\n  Create one with \"avalanche keygen\" and restart the origin.\n", env.defaultPublisherKey())
	}
	if generated != "" {
		fmt.Fprintf(w, "  publish token (shown only now, new at each start): %s\n", generated)
		fmt.Fprintf(w, "To publish:\n  AVALANCHE_TOKEN=%s avalanche publish FILE --origin %s\n", generated, url)
	} else {
		fmt.Fprintf(w, "  publish token: the value of AVALANCHE_TOKEN\nTo publish:\n  avalanche publish FILE --origin %s\n", url)
	}
}
