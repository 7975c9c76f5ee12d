package cli

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"avalanche/internal/atomicfile"
	"avalanche/internal/identity"
	"avalanche/internal/manifest"
)

// codingFlags are the coding parameters shared by commands that cut files.
type codingFlags struct {
	k, block int
}

func (c *codingFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&c.k, "k", 64, "blocks per generation (1..255)")
	fs.IntVar(&c.block, "block", 32<<10, "block size in bytes (1 KiB..1 MiB, multiple of 64)")
}

func runManifest(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "manifest", "[flags] FILE", `
Cut FILE into generations, hash it, and sign the manifest with the publisher
key. Prints the content ID and a summary; with -o also writes the signed
manifest. Nothing is uploaded (this is "publish --dry-run").`)
	keyPath := fs.String("key", env.defaultPublisherKey(), "publisher key file (see avalanche keygen)")
	property := fs.String("property", "default", "property (tenant) the file belongs to")
	name := fs.String("name", "", "file name offered to users (default: FILE's base name)")
	out := fs.String("o", "", "write the signed manifest here")
	var cf codingFlags
	cf.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("manifest needs exactly one FILE: %w", errUsage)
	}
	m, err := buildManifest(fs.Arg(0), *keyPath, *property, *name, cf)
	if err != nil {
		return err
	}
	if *out != "" {
		if err := atomicfile.WriteFile(*out, m.Encoded(), 0o644); err != nil {
			return fmt.Errorf("manifest: %w", err)
		}
	}
	fmt.Fprint(env.Stdout, m.Summary())
	return nil
}

// buildManifest hashes path and signs its manifest with the key at keyPath.
func buildManifest(path, keyPath, property, name string, cf codingFlags) (*manifest.Manifest, error) {
	priv, err := identity.Load(keyPath)
	if err != nil {
		return nil, fmt.Errorf("publisher key: %w (create one with: avalanche keygen)", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = filepath.Base(path)
	}
	// The manifest's time is the file's modification time, so publishing an
	// unchanged build again signs the same manifest (ed25519 is
	// deterministic), gets the same content ID, and uploads nothing.
	m, err := manifest.FromReader(f, cf.k, cf.block, property, name, fi.ModTime())
	if err != nil {
		return nil, err
	}
	if err := m.Sign(priv); err != nil {
		return nil, err
	}
	return m, nil
}
