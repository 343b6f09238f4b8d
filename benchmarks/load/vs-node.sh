#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Ingest only, side by side with the Node.js peer (../shared/bench/node-peer, issue 14 §6):
# the same wrk script (distinct prescriptions from one FHIR envelope) against RxFlow's
# `ingestion-api` (SQLite WAL + synchronous=FULL on this disk, no relay, no routing) and
# against the peer (JSON.parse, fast-xml-parser, better-sqlite3 WAL + FULL, one transaction
# per request), alternated ROUNDS times. Prints throughput and p50/p99 of each run, and the
# CPU seconds each server used (/proc/PID/stat).
#   benchmarks/load/vs-node.sh BUILD_DIR [SECONDS=10] [CONNECTIONS=32] [ROUNDS=2]
# Needs node, npm and wrk (scripts/install-deps.sh installs them); the peer's npm packages
# are installed on first use into $TMPDIR/rxflow-node-peer.
set -euo pipefail
build=${1:?build dir}
seconds=${2:-10}
connections=${3:-32}
rounds=${4:-2}
root=$(cd "$(dirname "$0")/../.." && pwd)
peer_src=${NODE_PEER_SRC:-$root/../shared/bench/node-peer}
envelope=$root/examples/data/medication_request_lisinopril.json
# need_tools, make_tmp, strong_key, start_server, stop_server, run_one NAME URL PID
source "$root/benchmarks/load/lib.sh"
need_tools node npm wrk python3
[ -f "$peer_src/server.js" ] || { echo "vs-node: no Node.js peer at $peer_src" >&2; exit 2; }

work=${NODE_PEER_DIR:-$(dirname "$(mktemp -u)")/rxflow-node-peer}
mkdir -p "$work" && cp "$peer_src/server.js" "$peer_src/package.json" "$peer_src/package-lock.json" "$work/"
if [ ! -d "$work/node_modules/better-sqlite3/build" ]; then
  (cd "$work" && npm install --no-audit --no-fund >/dev/null 2>&1 && npm rebuild better-sqlite3 >/dev/null 2>&1)
fi

make_tmp
# One strong key for both servers (RxFlow refuses keys under 128 bits).
key=$(strong_key vsnode)
python3 "$peer_src/make_load_lua.py" "$envelope" "$key" "$tmp/load.lua"

echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $connections connections, ${seconds} s per run"
for round in $(seq "$rounds"); do
  # RxFlow's ingestion-api, a fresh database each round.
  mkdir -p "$tmp/rx$round"
  start_server 18093 "$tmp/rx$round.log" DATABASE_URL="sqlite://$tmp/rx$round/rxflow.db" \
    API_KEYS="$key" RXFLOW_PATIENT_KEY=vs-node-benchmark-patient-key \
    "$build/examples/ingestion-api"
  run_one "rxflow" http://127.0.0.1:18093/api/v1/prescriptions "$server"
  stop_server

  start_server 18094 "$tmp/peer$round.log" DB="$tmp/peer$round.db" API_KEYS="$key" \
    bash -c 'cd "$1" && exec node server.js' peer "$work"
  run_one "node peer" http://127.0.0.1:18094/api/v1/prescriptions "$server"
  stop_server
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
