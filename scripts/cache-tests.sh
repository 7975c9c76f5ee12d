#!/bin/sh
# Runs the HTTP caching test suite (npm package http-cache-tests, the
# suite behind cache-tests.fyi) against `avalanche edge`: the suite's own
# server is the origin, the edge sits in front of it, and the suite's CLI
# runs with --base pointing at the edge. Prints a per-kind summary, the
# failing tests, and as its last line
#   {"required_passed":N,"required_failed":N,"optimal_passed":N}
#
# Needs node and npm (installs the suite into $WORK, default ./tmp/cache-tests,
# which is git-ignored). Skips with a message when they are missing.
# Env: WORK, ORIGIN_PORT (default 18000), EDGE_PORT (18080), ADMIN_PORT
# (18081), SUITE_VERSION (0.4.5), TEST_ID (run one test with dumps).
set -eu
cd "$(dirname "$0")/.."
ROOT=$(pwd)
WORK=${WORK:-$ROOT/tmp/cache-tests}
ORIGIN_PORT=${ORIGIN_PORT:-18000}
EDGE_PORT=${EDGE_PORT:-18080}
ADMIN_PORT=${ADMIN_PORT:-18081}
SUITE_VERSION=${SUITE_VERSION:-0.4.5}

for c in node npm go; do
	if ! command -v $c >/dev/null 2>&1; then
		echo "cache-tests: skipped: $c not found (install Node.js >= 20 and npm)"
		exit 0
	fi
done

mkdir -p "$WORK"
SUITE="$WORK/node_modules/http-cache-tests"
if [ ! -f "$SUITE/package.json" ] || ! grep -q "\"version\": \"$SUITE_VERSION\"" "$SUITE/package.json"; then
	echo "== installing http-cache-tests@$SUITE_VERSION into $WORK"
	(cd "$WORK" && { [ -f package.json ] || echo '{"private":true}' > package.json; } &&
		npm install --no-audit --no-fund --silent "http-cache-tests@$SUITE_VERSION" >/dev/null 2>&1) || {
		echo "cache-tests: skipped: npm install http-cache-tests failed (no registry access?)"
		exit 0
	}
fi

# The suite was written for one connection per request (Node >= 19 keeps
# connections alive by default) and its server listens on every interface;
# this preload fixes both so test traffic stays on loopback.
cat > "$WORK/preload.cjs" <<'JS'
const http = require('http')
http.globalAgent = new http.Agent({ keepAlive: false })
const listen = http.Server.prototype.listen
http.Server.prototype.listen = function (port, ...rest) {
  if (typeof port === 'number' || typeof port === 'string') return listen.call(this, port, '127.0.0.1', ...rest)
  return listen.call(this, port, ...rest)
}
JS

echo "== building avalanche"
go build -o "$WORK/avalanche" ./cmd/avalanche

cat > "$WORK/edge.json" <<JSON
{
  "node_id": "cache-tests",
  "listen": "127.0.0.1:$EDGE_PORT",
  "admin": "127.0.0.1:$ADMIN_PORT",
  "limits": {"disabled": true},
  "properties": [{"name": "suite", "origin": "http://127.0.0.1:$ORIGIN_PORT"}]
}
JSON

pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT INT TERM

(cd "$SUITE" && npm_config_protocol=http npm_config_port=$ORIGIN_PORT npm_config_pidfile="$WORK/server.pid" \
	exec node -r "$WORK/preload.cjs" server/server.mjs) >"$WORK/origin.log" 2>&1 &
pids="$pids $!"
"$WORK/avalanche" edge ${EDGE_FLAGS:-} --config "$WORK/edge.json" >"$WORK/edge.log" 2>&1 &
pids="$pids $!"

for i in $(seq 1 50); do
	if curl -fsS -o /dev/null "http://127.0.0.1:$ADMIN_PORT/healthz" 2>/dev/null &&
		curl -sS -o /dev/null "http://127.0.0.1:$ORIGIN_PORT/" 2>/dev/null; then
		break
	fi
	sleep 0.2
done

echo "== running the suite against the edge (about a minute)"
if [ -n "${TEST_ID:-}" ]; then
	(cd "$SUITE" && npm_config_base="http://127.0.0.1:$EDGE_PORT" npm_config_id="$TEST_ID" npm_package_config_id="$TEST_ID" \
		node -r "$WORK/preload.cjs" --no-warnings cli.mjs)
	exit 0
fi
(cd "$SUITE" && npm_config_base="http://127.0.0.1:$EDGE_PORT" npm_config_id="" npm_package_config_id="" \
	node -r "$WORK/preload.cjs" --no-warnings cli.mjs) >"$WORK/results.json" 2>"$WORK/cli.log"

cat > "$WORK/summary.mjs" <<'JS'
// Classifies results like the suite's determineTestResult: a test whose
// dependency did not pass is "dependency", setup failures are "setup".
import fs from 'fs'
const suite = process.argv[2]
const results = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'))
const tests = (await import(suite + '/tests/index.mjs')).default
tests.push((await import(suite + '/tests/surrogate-control.mjs')).default)
const byId = {}
for (const s of tests) for (const t of s.tests) byId[t.id] = t
const memo = {}
function classify (id) {
  if (memo[id]) return memo[id]
  const t = byId[id]; const r = results[id]
  let c
  if (r === undefined) c = 'untested'
  else if ((t.depends_on || []).some(d => !['pass', 'yes'].includes(classify(d)))) c = 'dependency'
  else if (Array.isArray(r) && r[0] === 'Setup') c = r[1] === 'retry' ? 'retry' : 'setup'
  else if (!t.kind || t.kind === 'required') c = r === true ? 'pass' : 'fail'
  else if (t.kind === 'optimal') c = r === true ? 'pass' : 'not-optimal'
  else c = r === true ? 'yes' : 'no'
  memo[id] = c
  return c
}
const count = {}
const lists = { fail: [], 'not-optimal': [], setup: [], dependency: [] }
for (const id of Object.keys(byId)) {
  if (byId[id].browser_only) continue
  const kind = byId[id].kind || 'required'
  const c = classify(id)
  count[kind + ' ' + c] = (count[kind + ' ' + c] || 0) + 1
  if (lists[c]) lists[c].push(`${kind}:${id}  ${Array.isArray(results[id]) ? results[id].join(': ') : ''}`)
}
for (const k of Object.keys(count).sort()) console.log(`${k.padEnd(24)} ${count[k]}`)
for (const c of ['fail', 'not-optimal', 'setup', 'dependency']) {
  if (lists[c].length) { console.log(`-- ${c}`); for (const l of lists[c]) console.log('   ' + l.slice(0, 160)) }
}
console.log(JSON.stringify({
  required_passed: count['required pass'] || 0,
  required_failed: count['required fail'] || 0,
  optimal_passed: count['optimal pass'] || 0
}))
JS
node "$WORK/summary.mjs" "$SUITE" "$WORK/results.json"
