package cli

import (
	"context"
	"fmt"
	"time"
)

func runSeed(ctx context.Context, env *Env, args []string) error {
	fs := newFlags(env, "seed", "[flags] CONTENT-ID|URL FILE", `
Serve a file you already hold to its swarm, within the upload limit you set.
FILE is checked against the signed manifest first (a FILE that is missing or
incomplete is downloaded, then seeded). Runs until interrupted, or for
--seed-time / until --seed-ratio when given.`)
	var g getFlags
	g.register(env, fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return fmt.Errorf("seed needs CONTENT-ID|URL and FILE: %w", errUsage)
	}
	id, src, err := parseTarget(fs.Arg(0))
	if err != nil {
		return err
	}
	if src != "" {
		g.sources = append([]string{src}, g.sources...)
	}
	g.out = fs.Arg(1)
	if g.seedTime == 0 && g.seedRatio == 0 {
		g.seedTime = 100 * 365 * 24 * time.Hour
	}
	return download(ctx, env, &g, id, "seed")
}
