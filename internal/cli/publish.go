package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"avalanche/internal/origin"
)

func runPublish(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "publish", "[flags] FILE", `
Cut FILE into generations, hash it, sign its manifest with the publisher key
and upload both to an origin, which verifies every generation before the
file becomes downloadable. Prints the content ID and the download URL.

The bearer token comes from $AVALANCHE_TOKEN (preferred: it does not show
in ps) or -token. Publishing the same file again is harmless.

Exit codes: 0 published, 1 error, 2 usage, 3 origin unreachable,
4 token or publisher key refused.`)
	originURL := fs.String("origin", "http://127.0.0.1:7070", "origin base URL")
	property := fs.String("property", "default", "property (tenant) to publish to")
	keyPath := fs.String("key", env.defaultPublisherKey(), "publisher key file (see avalanche keygen)")
	token := fs.String("token", "", "bearer token for the property (default $AVALANCHE_TOKEN)")
	name := fs.String("name", "", "file name offered to users (default: FILE's base name)")
	dryRun := fs.Bool("dry-run", false, "only build and sign the manifest (like avalanche manifest)")
	var cf codingFlags
	cf.register(fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("publish needs exactly one FILE: %w", errUsage)
	}
	path := pos[0]
	base, err := parseOriginURL(*originURL)
	if err != nil {
		return err
	}
	tok := *token
	if tok == "" {
		tok = env.getenv("AVALANCHE_TOKEN")
	} else {
		fmt.Fprintln(env.Stderr, "avalanche: warning: -token is visible to other users in ps; prefer AVALANCHE_TOKEN")
	}
	if tok == "" && !*dryRun {
		return fmt.Errorf("publish: no token: set AVALANCHE_TOKEN or pass -token: %w", errUsage)
	}
	if fi, err := os.Stat(path); errors.Is(err, iofs.ErrNotExist) {
		return fmt.Errorf("publish: %s: no such file", path)
	} else if err != nil {
		return fmt.Errorf("publish: %w", err)
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("publish: %s is not a regular file", path)
	}

	start := time.Now()
	m, err := buildManifest(path, *keyPath, *property, *name, cf)
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	if *dryRun {
		fmt.Fprint(env.Stdout, m.Summary())
		fmt.Fprintln(env.Stdout, "dry run: nothing uploaded")
		return nil
	}
	hashed := time.Now()

	pub := &origin.Publisher{BaseURL: base, Property: *property, Token: tok}
	obj, uploaded, err := pub.Publish(ctx, m, func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil {
		return publishError(err, base, path)
	}
	already := !uploaded
	done := time.Now()

	fmt.Fprintf(env.Stdout, "content   %s\n", m.ID())
	fmt.Fprintf(env.Stdout, "url       %s\n", obj.URL)
	fmt.Fprintf(env.Stdout, "manifest  %s/v1/manifest/%s\n", base, m.ID())
	if already {
		fmt.Fprintf(env.Stdout, "already published: %s (%s) in property %q; nothing uploaded\n", m.Name, sizeString(m.Size), m.Property)
		return nil
	}
	up := done.Sub(hashed)
	fmt.Fprintf(env.Stdout, "published %s (%s, %d generations of %s) to property %q: hashed in %s, uploaded in %s (%s/s)\n",
		m.Name, sizeString(m.Size), m.Generations(), sizeString(m.GenerationSize()), m.Property,
		hashed.Sub(start).Round(time.Millisecond), up.Round(time.Millisecond), sizeString(int64(float64(m.Size)/max(up.Seconds(), 1e-3))))
	return nil
}

// parseInterleaved parses flags and returns the positional arguments.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	if err := parse(fs, args); err != nil {
		return nil, err
	}
	return fs.Args(), nil
}

func parseOriginURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("publish: -origin %q is not an http:// or https:// URL: %w", s, errUsage)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("publish: -origin %q: give a plain base URL: %w", s, errUsage)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

func sizeString(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}

// publishError turns a Publisher error into a message and an exit code.
func publishError(err error, base, path string) error {
	var re *origin.RemoteError
	switch {
	case errors.Is(err, origin.ErrUnreachable):
		return withCode(exitUnreachable, fmt.Errorf("publish: cannot reach origin %s: %w", base, err))
	case errors.As(err, &re) && re.Status == http.StatusUnauthorized:
		return withCode(exitRefused, fmt.Errorf("publish: %w (check AVALANCHE_TOKEN / -token)", err))
	case errors.As(err, &re) && re.Status == http.StatusForbidden:
		return withCode(exitRefused, fmt.Errorf("publish: %w", err))
	case errors.As(err, &re) && strings.Contains(re.Message, "does not match the manifest"):
		return fmt.Errorf("publish: %w (did %s change while publishing?)", err, path)
	}
	return fmt.Errorf("publish: %w", err)
}
