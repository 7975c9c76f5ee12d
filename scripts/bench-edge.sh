#!/bin/sh
# Throughput of `avalanche edge` against nginx proxy_cache, side by side
# with wrk (1 KiB hits, 1 MiB hits, misses), same origin, same pinning.
# Installs nginx and wrk from Debian when run as root; otherwise skips with
# a message. Prints a table and JSON (also written to
# bench/results/edge.json). Env: DURATION (default 10s), ROUNDS (3), PIN (true),
# MEM (edge memory budget, 256MiB).
set -eu
cd "$(dirname "$0")/.."
have() { command -v "$1" >/dev/null 2>&1; }
need=""
have nginx || need="$need nginx"
have wrk || need="$need wrk"
if [ -n "$need" ]; then
	if [ "$(id -u)" = 0 ] && have apt-get; then
		export DEBIAN_FRONTEND=noninteractive
		apt-get update -qq >/dev/null 2>&1 || true
		apt-get install -y -qq --no-install-recommends $need >/dev/null 2>&1 || true
		# the Debian package starts a system nginx; the benchmark runs its own
		systemctl stop nginx >/dev/null 2>&1 || service nginx stop >/dev/null 2>&1 || true
	fi
	for c in nginx wrk; do
		have $c || { echo "bench-edge: skipped: $c not installed (needs root and apt-get)"; exit 0; }
	done
fi
mkdir -p tmp bench/results
go build -o tmp/avalanche-bench ./cmd/avalanche
exec go run ./bench/edgebench -avalanche tmp/avalanche-bench -duration "${DURATION:-10s}" -rounds "${ROUNDS:-3}" -pin="${PIN:-true}" \
	-mem "${MEM:-256MiB}" -json bench/results/edge.json
