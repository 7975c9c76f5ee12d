package cli

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"

	"avalanche/internal/identity"
	"avalanche/internal/manifest"
	"avalanche/internal/origin"
	"avalanche/internal/seeder"
	"avalanche/internal/swarm"
	"avalanche/internal/tracker"
	"avalanche/internal/wire"
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
	peerListen := fs.String("peer-listen", "127.0.0.1:7072", `address for the peer protocol (the origin seeds every swarm); "-" disables`)
	trackerURL := fs.String("tracker", "", "tracker to announce every content to (e.g. http://127.0.0.1:7071)")
	upload := fs.String("upload-limit", "0", "peer-protocol upload cap, e.g. 20M (bytes/s) or 100mbit; 0 = none")
	seedCap := fs.Float64("seed-cap", 1.0, "decline peers' non-urgent requests for a generation once sent this many times its size (0 = no cap)")
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

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var sd *seeder.Seeder
	var o *origin.Origin
	cfg := origin.Config{
		DataDir:      *data,
		Properties:   props,
		Logger:       log,
		VerifyOnOpen: *verify,
		PublicURL:    *publicURL,
	}
	if *peerListen != "-" {
		upBps, err := parseRate(*upload)
		if err != nil {
			return fmt.Errorf("--upload-limit: %v: %w", err, errUsage)
		}
		sd, err = startOriginSeeder(ctx, env, log, *data, *peerListen, *trackerURL, upBps, *seedCap)
		if err != nil {
			return fmt.Errorf("origin: %w", err)
		}
		defer sd.Close()
		cfg.OnPublish = func(m *manifest.Manifest) {
			if err := sd.Publish(o, m.ID()); err != nil {
				log.Error("cannot seed new content", "content", m.ID().Short(), "err", err)
			}
		}
		cfg.OnDelete = sd.Remove
	}
	o, err := origin.New(ctx, cfg)
	if err != nil {
		return fmt.Errorf("origin: %w", err)
	}
	defer o.Close()
	if sd != nil {
		if err := sd.ServeOrigin(o); err != nil {
			return fmt.Errorf("origin: %w", err)
		}
		o.Handle("GET /v1/seeding", seedingStats(o, sd))
	}
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

// startOriginSeeder starts the origin's peer-protocol node and seeder.
// Its node key and checksum master key live in DATA-keys, beside the
// content store.
func startOriginSeeder(ctx context.Context, env *Env, log *slog.Logger, data, listen, trackerURL string, upBps int64, seedCap float64) (*seeder.Seeder, error) {
	keyDir := filepath.Clean(data) + "-keys"
	master, err := seeder.LoadOrCreateSecret(filepath.Join(keyDir, "master.key"))
	if err != nil {
		return nil, err
	}
	return startSeeder(ctx, env, log, seederSpec{
		keyPath: filepath.Join(keyDir, "node.key"), role: tracker.RoleOrigin, listen: listen,
		tracker: trackerURL, upload: upBps, master: master, seedCap: seedCap,
	})
}

// seederSpec describes a peer-protocol node that seeds complete content.
type seederSpec struct {
	keyPath string       // node key, created if missing
	role    tracker.Role // origin or edge
	listen  string
	tracker string // announce URL, or ""
	upload  int64  // bytes/s, 0 = unlimited
	master  []byte // checksum master key (origins)
	seedCap float64
}

// startSeeder starts a node that seeds with sp's role and its seeder.
func startSeeder(ctx context.Context, env *Env, log *slog.Logger, sp seederSpec) (*seeder.Seeder, error) {
	key, err := identity.LoadOrCreate(sp.keyPath)
	if err != nil {
		return nil, err
	}
	wr := wire.RoleOrigin
	if sp.role == tracker.RoleEdge {
		wr = wire.RoleEdge
	}
	node, err := swarm.NewNode(ctx, swarm.NodeConfig{Key: key, Role: wr, UploadLimit: sp.upload, Logger: log})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", sp.listen)
	if err != nil {
		node.Close()
		return nil, err
	}
	go node.Serve(ln)
	var tc *tracker.Client
	if sp.tracker != "" {
		if tc, err = tracker.NewClient(tracker.ClientConfig{URL: sp.tracker, Key: key}); err != nil {
			node.Close()
			return nil, err
		}
	}
	sd, err := seeder.New(seeder.Config{Node: node, Tracker: tc, Role: sp.role, MasterKey: sp.master, SeedCap: sp.seedCap, Logger: log})
	if err != nil {
		node.Close()
		return nil, err
	}
	go sd.Run(ctx)
	fmt.Fprintf(env.Stderr, "avalanche %s seeding on %s (node %s)\n", sp.role, ln.Addr(), node.ID())
	return sd, nil
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

// seedingStats answers GET /v1/seeding: what the origin's seeder has sent
// of each content over the peer protocol, live (the tracker hears it only
// every announce interval). The swarm lab reads it to make the seed leave
// after sending exactly 1.0x a file.
func seedingStats(o *origin.Origin, sd *seeder.Seeder) http.Handler {
	type content struct {
		Content   string `json:"content"`
		Size      int64  `json:"size"`
		Sent      int64  `json:"sent"`      // coded block payload bytes, coefficients and framing excluded
		Delivered int64  `json:"delivered"` // of those, acknowledged by the peers (an estimate that errs low)
		Peers     int    `json:"peers"`
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := struct {
			Contents []content `json:"contents"`
		}{Contents: []content{}}
		for _, e := range o.List() {
			if sw := sd.Swarm(e.ID); sw != nil {
				st := sw.Stats()
				out.Contents = append(out.Contents, content{Content: e.ID.String(), Size: e.Size, Sent: st.Sent, Delivered: st.Delivered, Peers: st.Peers})
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		json.NewEncoder(w).Encode(out)
	})
}
