package cli

import (
	"os"
	"path/filepath"
)

// configDir returns the directory for avalanche's keys and configuration:
// $AVALANCHE_HOME, else the user's configuration directory + "/avalanche".
func (e *Env) configDir() string {
	if h := e.getenv("AVALANCHE_HOME"); h != "" {
		return h
	}
	if d, err := os.UserConfigDir(); err == nil {
		return filepath.Join(d, "avalanche")
	}
	return ".avalanche"
}

// dataDir returns the directory for stored content: $AVALANCHE_DATA, else
// $XDG_DATA_HOME/avalanche, else ~/.local/share/avalanche.
func (e *Env) dataDir() string {
	if d := e.getenv("AVALANCHE_DATA"); d != "" {
		return d
	}
	if d := e.getenv("XDG_DATA_HOME"); d != "" {
		return filepath.Join(d, "avalanche")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "share", "avalanche")
	}
	return ".avalanche-data"
}

func (e *Env) defaultPublisherKey() string { return filepath.Join(e.configDir(), "publisher.key") }
func (e *Env) defaultNodeKey() string      { return filepath.Join(e.configDir(), "node.key") }
