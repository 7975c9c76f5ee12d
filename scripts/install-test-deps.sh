#!/bin/sh
# Installs the Debian packages some tests use (redis-server, dig, wrk, nginx,
# aria2, ...). Tests that need a missing one skip with a message naming it.
# Safe to run repeatedly; does nothing when everything is present.
set -u
need=""
have() { command -v "$1" >/dev/null 2>&1; }
have redis-server || need="$need redis-server"
have dig || need="$need dnsutils"
have wrk || need="$need wrk"
# internal/lab's smoke test: namespaces and tbf, aria2c, opentracker, mktorrent
have ip || need="$need iproute2"
have aria2c || need="$need aria2"
have opentracker || need="$need opentracker"
have mktorrent || need="$need mktorrent"
[ -z "$need" ] && exit 0
if [ "$(id -u)" != 0 ] || ! have apt-get; then
	echo "missing:$need (need root and apt-get to install)"
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null 2>&1 || true
apt-get install -y -qq --no-install-recommends $need >/dev/null 2>&1
