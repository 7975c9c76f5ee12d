package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"avalanche/internal/manifest"
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

	c := &publishClient{base: base, property: *property, token: tok, http: newPublishHTTPClient()}
	obj, err := c.putManifest(ctx, m)
	if err != nil {
		return err
	}
	already := obj.Complete
	if !already {
		if obj, err = c.putContent(ctx, m, path); err != nil {
			return err
		}
	}
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

// parseInterleaved parses flags that may come before or after positional
// arguments ("publish FILE -origin URL") and returns the positionals.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := parse(fs, args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		rest := fs.Args()
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			return append(pos, rest...), nil // everything after "--" is positional
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
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

func newPublishHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ExpectContinueTimeout: 5 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		// No overall timeout: uploads of large files take as long as they
		// take; ctx (Ctrl-C) ends them.
	}
}

// publishClient talks to an origin's publish API.
type publishClient struct {
	base     string
	property string
	token    string
	http     *http.Client
}

func (c *publishClient) putManifest(ctx context.Context, m *manifest.Manifest) (*origin.Object, error) {
	u := c.base + "/v1/properties/" + url.PathEscape(c.property) + "/manifests"
	req, err := http.NewRequestWithContext(ctx, "PUT", u, bytes.NewReader(m.Encoded()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", origin.ManifestContentType)
	return c.do(req, "manifest")
}

func (c *publishClient) putContent(ctx context.Context, m *manifest.Manifest, path string) (*origin.Object, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	defer f.Close()
	u := c.base + "/v1/properties/" + url.PathEscape(c.property) + "/content/" + m.ID().String()
	req, err := http.NewRequestWithContext(ctx, "PUT", u, f)
	if err != nil {
		return nil, err
	}
	req.ContentLength = m.Size
	if m.Size == 0 {
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	// Let the origin refuse (bad token, unknown manifest) before the body
	// is sent.
	req.Header.Set("Expect", "100-continue")
	obj, err := c.do(req, "file")
	if err != nil && strings.Contains(err.Error(), "does not match the manifest") {
		err = fmt.Errorf("%w (did %s change while publishing?)", err, path)
	}
	return obj, err
}

// do sends req with the token and decodes the Object response, turning
// failures into errors with exit codes and the origin's own message.
func (c *publishClient) do(req *http.Request, what string) (*origin.Object, error) {
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("User-Agent", "avalanche-publish")
	resp, err := c.http.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, fmt.Errorf("publish: %w", ctxErr)
		}
		var opErr *net.OpError
		var dnsErr *net.DNSError
		if (errors.As(err, &opErr) && opErr.Op == "dial") || errors.As(err, &dnsErr) {
			return nil, withCode(exitUnreachable, fmt.Errorf("publish: cannot reach origin %s: %w", c.base, err))
		}
		return nil, fmt.Errorf("publish: uploading %s: %w", what, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusCreated {
		var obj origin.Object
		if err := json.Unmarshal(body, &obj); err != nil {
			return nil, fmt.Errorf("publish: unexpected answer from %s: %v", c.base, err)
		}
		return &obj, nil
	}
	msg := strings.TrimSpace(string(body))
	var eb struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &eb) == nil && eb.Error != "" {
		msg = eb.Error
	}
	if len(msg) > 500 {
		msg = msg[:500] + "…"
	}
	err = fmt.Errorf("publish: origin refused the %s: %s: %s", what, resp.Status, msg)
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return nil, withCode(exitRefused, fmt.Errorf("%w (check AVALANCHE_TOKEN / -token)", err))
	case http.StatusForbidden:
		return nil, withCode(exitRefused, err)
	}
	return nil, err
}
