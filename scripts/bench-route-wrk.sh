#!/bin/sh
# Measures GET /v1/route of a real `avalanche control` on loopback under wrk
# (Debian package wrk; scripts/install-test-deps.sh installs it): builds the
# binary, starts a control node with the synthetic world's network map and
# six edges (traffictest), and prints wrk's latency distribution.
#
#   scripts/bench-route-wrk.sh            # 10 s, 2 threads, 2 connections
#   DURATION=30s CONNS=64 scripts/bench-route-wrk.sh
#
# wrk runs closed loop on the same cores as the server: with more
# connections than cores its p99 is the queue it builds, not the answer
# time, hence 2 connections by default on the 2-core project machine. The
# load average is printed first: other work on the machine shows up in the
# tail at once.
#
# Only loopback is used. The edges' URLs point at loopback ports with no
# server; probes run once an hour so they stay eligible during the run.
set -eu
cd "$(dirname "$0")/.."
for tool in wrk curl go; do
	command -v "$tool" >/dev/null 2>&1 || { echo "bench-route-wrk: $tool not installed (scripts/install-test-deps.sh)"; exit 1; }
done
DURATION=${DURATION:-10s}
THREADS=${THREADS:-2}
CONNS=${CONNS:-2}
PORT=${PORT:-17070}
tmp=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM
go build -o "$tmp/avalanche" ./cmd/avalanche

cat >"$tmp/map.csv" <<'CSV'
203.0.113.0/25,EirNet,AS64500,eu-west,IE,53.35,-6.26
203.0.113.128/25,GlobalTel,AS64530,eu-west,IE,51.90,-8.47
198.51.100.0/24,AtlantiCom,AS64510,us-east,US,40.71,-74.00
192.0.2.0/25,LionNet,AS64520,ap-south,SG,1.35,103.82
192.0.2.128/25,GlobalTel,AS64530,ap-south,IN,19.07,72.88
2001:db8:64::/48,GlobalTel,AS64530,us-east,US,40.71,-74.00
CSV
echo '[{"name":"p"}]' >"$tmp/policies.json"
"$tmp/avalanche" control -http "127.0.0.1:$PORT" -dns "" -netmap "$tmp/map.csv" \
	-policies "$tmp/policies.json" -probe-interval 1h 2>"$tmp/control.log" &
pid=$!
i=0
until curl -fsS "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1; do
	i=$((i + 1)); [ $i -gt 100 ] && { cat "$tmp/control.log"; exit 1; }
	sleep 0.1
done
edge() { # id n region country lat lon cost peers
	curl -fsS -X POST "http://127.0.0.1:$PORT/v1/edges/heartbeat" -d "{\"id\":\"$1\",\"url\":\"http://127.0.1.$2:8080\",
	\"region\":\"$3\",\"country\":\"$4\",\"lat\":$5,\"lon\":$6,\"cost_per_gb\":$7,\"peers\":[$8],
	\"capacity\":{\"egress_bps\":1e10,\"conns\":100000},\"load\":{\"egress_bps\":1e9,\"cpu\":0.2,\"conns\":1000}}" >/dev/null
}
edge dub-1 1 eu-west IE 53.35 -6.26 0.02 ''
edge dub-2 2 eu-west IE 53.34 -6.27 0.03 '"EirNet"'
edge nyc-1 3 us-east US 40.71 -74.00 0.01 '"AtlantiCom"'
edge nyc-2 4 us-east US 39.04 -77.49 0.03 ''
edge sin-1 5 ap-south SG 1.35 103.82 0.04 '"LionNet"'
edge bom-1 6 ap-south IN 19.07 72.88 0.02 '"AS64530"'
sleep 1.5 # one sync

cat >"$tmp/route.lua" <<'LUA'
local nets = {"203.0.113.", "198.51.100.", "192.0.2.", "100.7.7."}
local i = 0
request = function()
  i = i + 1
  local c = nets[(i % #nets) + 1] .. tostring(math.floor(i / #nets) % 256)
  return wrk.format("GET", "/v1/route?property=p&path=f.bin&client=" .. c)
end
LUA
curl -fsS "http://127.0.0.1:$PORT/v1/route?property=p&path=f.bin&client=203.0.113.10"; echo
echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || uptime)"
wrk -t"$THREADS" -c"$CONNS" -d"$DURATION" --latency -s "$tmp/route.lua" "http://127.0.0.1:$PORT"
echo "server-side answer times (avalanche_traffic_http_request_duration_seconds, endpoint=route):"
curl -fsS "http://127.0.0.1:$PORT/metrics" | grep 'request_duration_seconds_bucket{endpoint="route"' | sed 's/avalanche_traffic_http_request_duration_seconds_bucket//'
