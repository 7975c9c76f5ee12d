package cli

// commands lists every subcommand, one line each. Keep it sorted by name.
var commands = []command{
	{"bench", "measure performance (bench coding: the coding core)", runBench},
	{"version", "print the version", runVersion},
}
