// Package cli implements the avalanche command line: it parses flags,
// environment and configuration files, builds the configuration structs of
// the role packages and wires them together. It is the only package that
// reads flags or the environment.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// Env is what a subcommand may touch of the outside world. Tests build one
// with buffers so that commands run in-process.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads the environment; nil means os.Getenv.
	Getenv func(string) string
}

func (e *Env) getenv(k string) string {
	if e.Getenv == nil {
		return os.Getenv(k)
	}
	return e.Getenv(k)
}

// command is one subcommand. run receives the arguments after the
// subcommand's name.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env *Env, args []string) error
}

// exitError carries a specific process exit code out of a command.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// withCode attaches an exit code to err.
func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// Exit codes shared by every command: 0 success, 1 other errors, 2 usage.
const (
	exitNotFound    = 3 // the content (or property) does not exist
	exitUnreachable = 4 // no origin, edge or tracker could be reached
	exitIntegrity   = 5 // a signature or hash did not verify
	exitDisk        = 6 // the output could not be written
	exitRefused     = 7 // a token or publisher key was refused
)

// errUsage marks errors that are the user's fault on the command line.
var errUsage = errors.New("usage")

// Main runs the avalanche command line with args (without the program name)
// and returns the process exit code.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := &Env{Stdin: stdin, Stdout: stdout, Stderr: stderr}
	return run(ctx, env, args)
}

func run(ctx context.Context, env *Env, args []string) int {
	if len(args) == 0 {
		usage(env.Stderr)
		return 2
	}
	name := args[0]
	switch name {
	case "help", "-h", "-help", "--help":
		if len(args) > 1 {
			if c := lookup(args[1]); c != nil {
				return report(env, c.run(ctx, env, []string{"-h"}))
			}
			fmt.Fprintf(env.Stderr, "avalanche: unknown command %q\n", args[1])
			return 2
		}
		usage(env.Stdout)
		return 0
	}
	c := lookup(name)
	if c == nil {
		fmt.Fprintf(env.Stderr, "avalanche: unknown command %q (run \"avalanche help\")\n", name)
		return 2
	}
	return report(env, c.run(ctx, env, args[1:]))
}

func report(env *Env, err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(env.Stderr, "avalanche: %v\n", err)
		return 2
	}
	fmt.Fprintf(env.Stderr, "avalanche: %v\n", err)
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return 1
}

func lookup(name string) *command {
	for i := range commands {
		if commands[i].name == name {
			return &commands[i]
		}
	}
	return nil
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Avalanche: an edge content network with network-coded swarming.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Usage: avalanche <command> [flags] [arguments]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	cs := append([]command(nil), commands...)
	sort.Slice(cs, func(i, j int) bool { return cs[i].name < cs[j].name })
	for _, c := range cs {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run \"avalanche <command> -h\" for a command's flags.")
}

// newFlags returns a FlagSet for a subcommand whose usage text starts with
// synopsis and a description, then lists the flags.
func newFlags(env *Env, name, synopsis, description string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: avalanche %s %s\n\n", name, synopsis)
		fmt.Fprintln(w, strings.TrimSpace(description))
		fmt.Fprintln(w)
		hasFlags := false
		fs.VisitAll(func(*flag.Flag) { hasFlags = true })
		if hasFlags {
			fmt.Fprintln(w, "Flags:")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parse parses args into fs, turning flag errors into usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%s: %w", fs.Name(), errUsage)
	}
	return nil
}
