#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The cost of TLS on ingest (issue 10): the same wrk script (distinct prescriptions, as
# vs-node.sh) against `ingestion-api` over plain HTTP and over HTTPS (TLS 1.3, a P-256
# certificate made here with the openssl command), alternated ROUNDS times, each on a fresh
# SQLite database. wrk keeps its connections open, so this is the steady-state cost of the
# record layer; each new connection also pays one handshake.
#   benchmarks/load/tls-cost.sh BUILD_DIR [SECONDS=10] [CONNECTIONS=32] [ROUNDS=2]
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
need_tools wrk openssl python3
make_tmp
key=$(strong_key tlscost)
python3 "$peer_src/make_load_lua.py" "$envelope" "$key" "$tmp/load.lua"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/key.pem" \
  -out "$tmp/cert.pem" -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  2>/dev/null

echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $connections connections, ${seconds} s per run"
for round in $(seq "$rounds"); do
  for mode in plain tls; do
    mkdir -p "$tmp/$mode$round"
    extra=()
    scheme=http
    if [ "$mode" = tls ]; then extra=(--tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem"); scheme=https; fi
    start_server 18095 "$tmp/$mode$round.log" DATABASE_URL="sqlite://$tmp/$mode$round/rxflow.db" \
      API_KEYS="$key" RXFLOW_PATIENT_KEY=tls-cost-benchmark-patient-key \
      "$build/examples/ingestion-api" "${extra[@]}"
    run_one "$mode" "$scheme://127.0.0.1:18095/api/v1/prescriptions" "$server"
    stop_server
  done
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
