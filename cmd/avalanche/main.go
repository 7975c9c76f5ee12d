// Command avalanche is the single binary of the Avalanche edge content network:
// origin, control plane, edge, publisher tools and the download client, one
// subcommand per role. Run "avalanche help" for the list.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"avalanche/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
