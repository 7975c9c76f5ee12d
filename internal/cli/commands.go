package cli

// commands lists every subcommand, one line each. Keep it sorted by name.
var commands = []command{
	{"bench-route", "benchmark routing decisions, /v1/route latency and failover", runBenchRoute},
	{"control", "run a control node: traffic manager, DNS, /healthz, /metrics", runControl},
	{"version", "print the version", runVersion},
}
