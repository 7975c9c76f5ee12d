package cli

// commands lists every subcommand, one line each. Keep it sorted by name.
var commands = []command{
	{"edge", "run an edge node: caching reverse proxy for properties", runEdge},
	{"version", "print the version", runVersion},
}
