package seeder

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"avalanche/internal/atomicfile"
	"avalanche/internal/manifest"
	"avalanche/internal/origin"
)

// ServeOrigin seeds everything o has stored, and mounts GET /v1/swarm/{id}
// on o. New content is added by o's Config.OnPublish calling s.Publish.
func (s *Seeder) ServeOrigin(o *origin.Origin) error {
	o.Handle("GET /v1/swarm/{id}", s)
	for _, e := range o.List() {
		if err := s.Publish(o, e.ID); err != nil {
			return err
		}
	}
	return nil
}

// Publish starts seeding content id stored on o.
func (s *Seeder) Publish(o *origin.Origin, id manifest.ID) error {
	c, err := o.Open(id)
	if err != nil {
		return fmt.Errorf("seeder: %w", err)
	}
	if err := s.Add(c.Manifest(), c, c); err != nil {
		c.Close()
		return err
	}
	return nil
}

// LoadOrCreateSecret reads a 32-byte secret from path, creating it (mode
// 0600) if it does not exist. The origin keeps its checksum master key so.
func LoadOrCreateSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) != 32 {
			return nil, fmt.Errorf("seeder: %s: %d bytes, want 32", path, len(b))
		}
		return b, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	b = make([]byte, 32)
	rand.Read(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := atomicfile.WriteFile(path, b, 0o600); err != nil {
		return nil, err
	}
	return b, nil
}
