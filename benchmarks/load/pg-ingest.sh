#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Ingest only on PostgreSQL: `ingestion-api` binaries (two builds, side by side) against a
# PostgreSQL 15 that scripts/with-postgres.sh starts for the run, a fresh database and a file
# KEK for each run, the vs-node wrk script (distinct prescriptions from one FHIR envelope)
# after 2 s of warm-up, alternated ROUNDS times. Prints each run's rate, p50/p99, the
# server's CPU per request (/proc/PID/stat; PostgreSQL's own CPU is not counted) and
# PostgreSQL's WAL bytes per prescription stored (pg_current_wal_lsn before and after).
#   benchmarks/load/pg-ingest.sh [SECONDS=8] [CONNECTIONS=32] [ROUNDS=3] BIN [BIN...]
#   e.g. benchmarks/load/pg-ingest.sh 8 32 3 /tmp/old/examples/ingestion-api build/examples/ingestion-api
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
if [ -z "${RXFLOW_TEST_POSTGRES_URL:-}" ]; then
  exec bash "$root/scripts/with-postgres.sh" bash "$0" "$@"
fi
seconds=${1:?seconds}
connections=${2:?connections}
rounds=${3:?rounds}
shift 3
[ $# -gt 0 ] || { echo "pg-ingest: give one or more ingestion-api binaries" >&2; exit 2; }
source "$root/benchmarks/load/lib.sh"
need_tools wrk python3 psql
make_tmp
key=$(strong_key pgingest)
python3 "$root/../shared/bench/node-peer/make_load_lua.py" \
  "$root/examples/data/medication_request_lisinopril.json" "$key" "$tmp/load.lua"
base=${RXFLOW_TEST_POSTGRES_URL%/*}

echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $connections connections, ${seconds} s per run"
run=0
for round in $(seq "$rounds"); do
  for bin in "$@"; do
    run=$((run + 1))
    psql -q "$base/postgres" -c "CREATE DATABASE pg_ingest_$run" >/dev/null
    wal_start=$(psql -Atq "$base/postgres" -c "SELECT pg_current_wal_lsn()")
    start_server 18096 "$tmp/run$run.log" DATABASE_URL="$base/pg_ingest_$run" API_KEYS="$key" \
      RXFLOW_PATIENT_KEY=pg-ingest-benchmark-patient-key RXFLOW_PHI_KEK="file:$tmp/phi.kek" "$bin"
    wrk -t1 -c"$connections" -d2s -s "$tmp/load.lua" http://127.0.0.1:18096/api/v1/prescriptions >/dev/null
    echo "round $round: $bin"
    run_one "" http://127.0.0.1:18096/api/v1/prescriptions "$server"
    stop_server
    # PostgreSQL's WAL per prescription stored (the warm-up's included; one server per run).
    psql -Atq "$base/pg_ingest_$run" -c "SELECT 'WAL ' || round(pg_wal_lsn_diff(pg_current_wal_lsn(),
      '$wal_start') / greatest(count(*), 1)) || ' bytes per prescription (' || count(*) || ')'
      FROM events WHERE type = 'PrescriptionReceived'"
  done
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
