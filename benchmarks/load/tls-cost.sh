#!/usr/bin/env bash
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
for tool in wrk openssl python3; do
  command -v "$tool" >/dev/null || { echo "tls-cost: $tool not found" >&2; exit 2; }
done

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
key="tlscost_$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
python3 "$peer_src/make_load_lua.py" "$envelope" "$key" "$tmp/load.lua"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$tmp/key.pem" \
  -out "$tmp/cert.pem" -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
  2>/dev/null

wait_port() {
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "tls-cost: nothing listens on $1" >&2
  return 1
}
cpu_seconds() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }

run_one() {  # NAME URL PID
  local name=$1 url=$2 pid=$3 before after out
  before=$(cpu_seconds "$pid")
  out=$(wrk -t1 -c"$connections" -d"${seconds}s" --latency -s "$tmp/load.lua" "$url")
  after=$(cpu_seconds "$pid")
  python3 - "$name" "$before" "$after" "$seconds" <<PY
import re, sys
name, before, after, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
out = """$out"""
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
p50, p99 = map(int, re.search(r"P50_US (\d+) P99_US (\d+)", out).groups())
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
cpu = after - before
print(f"{name:8s} {rps:9.0f}/s  p50 {p50/1000:7.1f} ms  p99 {p99/1000:7.1f} ms  "
      f"server CPU {cpu / max(rps * seconds, 1) * 1e6:6.0f} us/request  non-2xx {bad.group(1) if bad else 0}")
PY
}

echo "load: $(cut -d' ' -f1-3 /proc/loadavg); $connections connections, ${seconds} s per run"
for round in $(seq "$rounds"); do
  for mode in plain tls; do
    mkdir -p "$tmp/$mode$round"
    extra=()
    scheme=http
    if [ "$mode" = tls ]; then extra=(--tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem"); scheme=https; fi
    DATABASE_URL="sqlite://$tmp/$mode$round/rxflow.db" API_KEYS="$key" LOG_LEVEL=warn PORT=18095 \
      RXFLOW_PATIENT_KEY=tls-cost-benchmark-patient-key \
      "$build/examples/ingestion-api" "${extra[@]}" >"$tmp/$mode$round.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    wait_port 18095
    run_one "$mode" "$scheme://127.0.0.1:18095/api/v1/prescriptions" "$pid"
    kill "$pid" && wait "$pid" 2>/dev/null || true
  done
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
