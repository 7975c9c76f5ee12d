package cli

// commands lists every subcommand, one line each. Keep it sorted by name.
var commands = []command{
	{"keygen", "create a publisher key for signing manifests", runKeygen},
	{"manifest", "hash and sign a file's manifest without uploading it", runManifest},
	{"tracker", "run the tracker alone (peer hand-out; part of control)", runTracker},
	{"version", "print the version", runVersion},
}
