package cli

// commands lists every subcommand, one line each. Keep it sorted by name.
var commands = []command{
	{"version", "print the version", runVersion},
}
