#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The cost of encrypting PHI at rest on ingest (issue 10 §5): the same wrk script as
# vs-node.sh (distinct prescriptions) against `ingestion-api` with RXFLOW_PHI_KEK=off and
# with the default key file, alternated ROUNDS times, each on a fresh SQLite database.
# PATIENTS=same: every prescription for one patient (one data key, made once); PATIENTS=new:
# a new patient per request (each request also stores a new wrapped data key: the worst case).
#   benchmarks/load/phi-cost.sh BUILD_DIR [SECONDS=10] [CONNECTIONS=32] [ROUNDS=2] [PATIENTS=same]
set -euo pipefail
build=${1:?build dir}
seconds=${2:-10}
connections=${3:-32}
rounds=${4:-2}
patients=${5:-same}
root=$(cd "$(dirname "$0")/../.." && pwd)
peer_src=${NODE_PEER_SRC:-$root/../shared/bench/node-peer}
envelope=$root/examples/data/medication_request_lisinopril.json
# need_tools, make_tmp, strong_key, start_server, stop_server, run_one NAME URL PID
source "$root/benchmarks/load/lib.sh"
need_tools wrk python3
make_tmp
key=$(strong_key phicost)
if [ "$patients" = new ]; then
  # The patient's family name carries the request's number too: a new patient each time.
  python3 - "$envelope" "$tmp/envelope.json" <<'PY'
import json, sys
env = json.load(open(sys.argv[1]))
for name in env["patient"]["name"]:
    name["family"] = "Patient__N__"
json.dump(env, open(sys.argv[2], "w"))
PY
  envelope=$tmp/envelope.json
fi
python3 "$peer_src/make_load_lua.py" "$envelope" "$key" "$tmp/load.lua"

echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $connections connections, ${seconds} s per run, patients: $patients"
for round in $(seq "$rounds"); do
  for mode in plain sealed; do
    mkdir -p "$tmp/$mode$round"
    kek=off
    if [ "$mode" = sealed ]; then kek="file:$tmp/$mode$round/phi.kek"; fi
    start_server 18096 "$tmp/$mode$round.log" DATABASE_URL="sqlite://$tmp/$mode$round/rxflow.db" \
      API_KEYS="$key" RXFLOW_PATIENT_KEY=phi-cost-benchmark-patient-key RXFLOW_PHI_KEK="$kek" \
      "$build/examples/ingestion-api"
    run_one "$mode" "http://127.0.0.1:18096/api/v1/prescriptions" "$server"
    stop_server
  done
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
