package cli

// commands lists every subcommand, one line each. Keep it sorted by name.
var commands = []command{
	{"bench", "measure performance: bench coding, bench route", runBench},
	{"control", "run a control node: traffic manager, DNS, /healthz, /metrics", runControl},
	{"demo", "run origin, tracker and N peers on this machine and report", runDemo},
	{"edge", "run an edge node: caching reverse proxy for properties", runEdge},
	{"get", "download content from its swarm, verified and resumable", runGet},
	{"keygen", "create a publisher key for signing manifests", runKeygen},
	{"lab", "compare Avalanche, BitTorrent and HTTP on emulated hosts (root)", runLab},
	{"manifest", "hash and sign a file's manifest without uploading it", runManifest},
	{"origin", "run an origin: content store, publish API and HTTP downloads", runOrigin},
	{"publish", "sign a file's manifest and upload both to an origin", runPublish},
	{"seed", "serve a file you hold to its swarm", runSeed},
	{"tracker", "run the tracker alone (peer hand-out; part of control)", runTracker},
	{"version", "print the version", runVersion},
}
