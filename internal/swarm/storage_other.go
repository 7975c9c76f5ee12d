//go:build !linux

package swarm

import (
	"errors"
	"os"
)

// rawFile is Linux only: elsewhere storage uses the file's own methods.
type rawFile struct{}

func newRawFile(*os.File) rawFile { return rawFile{} }

func (rawFile) ok() bool { return false }

func (rawFile) pread([]byte, int64) error  { return errors.New("swarm: no raw file I/O here") }
func (rawFile) pwrite([]byte, int64) error { return errors.New("swarm: no raw file I/O here") }
