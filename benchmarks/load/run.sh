#!/usr/bin/env bash
# The load benchmark (docs/performance.md): POST /api/v1/prescriptions against `rxflow serve`
# on embedded defaults, with the empty-handler ceiling of the same HTTP stack in the same run,
# then an open-loop rate with the accepted → pharmacy-acknowledged lag from /metrics.
#
#   benchmarks/load/run.sh BUILD_DIR [CONNECTIONS] [SECONDS] [RATE] [RATE_SECONDS]
set -euo pipefail
build=${1:-build}
connections=${2:-64}
seconds=${3:-20}
rate=${4:-5000}
rate_seconds=${5:-60}
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$build" && pwd)
body=$root/tests/fixtures/fhir/medication_request_lisinopril.json
key="load-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
trap 'kill $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT

echo "# $(date -u +%FT%TZ) $(nproc) cores, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
(cd "$dir" && API_KEYS=$key LOG_LEVEL=warn RXFLOW_PATIENT_KEY=load-patient-key-0123456789 \
  exec "$build/examples/rxflow" serve --port "$port" > serve.out 2> serve.err) &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

gen=$build/benchmarks/rxflow_loadgen
echo "# closed loop, $connections connections, ${seconds}s each, side by side"
"$gen" --ceiling --body "$body" --connections "$connections" --duration "$seconds" || true
"$gen" --url "http://127.0.0.1:$port" --key "$key" --body "$body" \
  --connections "$connections" --duration "$seconds" || true

# Let routing finish the closed loop's backlog first: the open loop measures its own work.
drained() {
  curl -s "http://127.0.0.1:$port/metrics" |
    awk '/^rxflow_(outbox_backlog|routing_queue_depth) /{s+=$2} END{exit s>0}'
}
for _ in $(seq 600); do drained && sleep 1 && drained && break; sleep 1; done
echo "# open loop at $rate/s for ${rate_seconds}s"
curl -s "http://127.0.0.1:$port/metrics" > "$dir/before.txt"
"$gen" --url "http://127.0.0.1:$port" --key "$key" --body "$body" --connections "$connections" \
  --duration "$rate_seconds" --rate "$rate" --warmup 0 || true
sleep 3  # let routing finish the tail
curl -s "http://127.0.0.1:$port/metrics" > "$dir/after.txt"
python3 - "$dir/before.txt" "$dir/after.txt" <<'PY'
import sys
def buckets(path):
    out = {}
    for line in open(path):
        if line.startswith("rxflow_accept_to_ack_seconds_bucket"):
            le = line.split('le="')[1].split('"')[0]
            out[le] = float(line.rsplit(" ", 1)[1])
    return out
b, a = buckets(sys.argv[1]), buckets(sys.argv[2])
les = sorted(a, key=lambda x: float("inf") if x == "+Inf" else float(x))
total = a["+Inf"] - b.get("+Inf", 0)
def q(p):
    for le in les:
        if a[le] - b.get(le, 0) >= p * total:
            return le
print(f'{{"accept_to_ack": {{"count": {total:.0f}, "p50_le_s": "{q(0.5)}", "p99_le_s": "{q(0.99)}"}}}}')
PY
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
