#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Ingest only on SQLite: `ingestion-api` binaries (two builds, side by side), a fresh database
# for each run, the vs-node wrk script (distinct prescriptions from one FHIR envelope),
# alternated ROUNDS times. Prints each run's rate, p50/p99 and server CPU per request (as
# vs-node.sh), and the largest size the WAL file reached during the run (sampled every
# 0.5 s), with the database file's size at the end.
#   benchmarks/load/sqlite-ingest.sh [SECONDS=10] [CONNECTIONS=32] [ROUNDS=3] BIN [BIN...]
#   e.g. benchmarks/load/sqlite-ingest.sh 10 32 3 /tmp/old/examples/ingestion-api build/examples/ingestion-api
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
seconds=${1:?seconds}
connections=${2:?connections}
rounds=${3:?rounds}
shift 3
[ $# -gt 0 ] || { echo "sqlite-ingest: give one or more ingestion-api binaries" >&2; exit 2; }
source "$root/benchmarks/load/lib.sh"
need_tools wrk python3
make_tmp
key=$(strong_key sqliteingest)
python3 "$root/../shared/bench/node-peer/make_load_lua.py" \
  "$root/examples/data/medication_request_lisinopril.json" "$key" "$tmp/load.lua"

mib() { echo $(($1 / 1048576)); }
size_of() { stat -c %s "$1" 2>/dev/null || echo 0; }

echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $connections connections, ${seconds} s per run"
run=0
for round in $(seq "$rounds"); do
  for bin in "$@"; do
    run=$((run + 1))
    db=$tmp/run$run/rxflow.db
    mkdir -p "$tmp/run$run"
    start_server 18097 "$tmp/run$run.log" DATABASE_URL="sqlite://$db" API_KEYS="$key" \
      RXFLOW_PATIENT_KEY=sqlite-ingest-benchmark-patient-key "$bin"
    # The WAL's largest size, sampled until the run ends (run_one's wrk exits).
    (largest=0
     while [ ! -e "$tmp/run$run.done" ]; do
       size=$(size_of "$db-wal")
       [ "$size" -gt "$largest" ] && largest=$size && echo "$largest" >"$tmp/run$run.wal"
       sleep 0.5
     done) &
    sampler=$!
    echo "round $round: $bin"
    run_one "" http://127.0.0.1:18097/api/v1/prescriptions "$server"
    touch "$tmp/run$run.done"
    wait "$sampler"
    echo "  largest WAL $(mib "$(cat "$tmp/run$run.wal" 2>/dev/null || echo 0)") MiB," \
      "WAL at the end $(mib "$(size_of "$db-wal")") MiB, database $(mib "$(size_of "$db")") MiB"
    stop_server
  done
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
