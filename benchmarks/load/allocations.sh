#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Heap allocations per ingested prescription, counted exactly: `ingestion-api` (SQLite, PHI
# sealed, as vs-node.sh runs it) takes WARMUP then COUNT distinct prescriptions posted one
# after another on one keep-alive connection, and uprobes on the server's malloc (jemalloc's,
# or glibc's in a build without it) count the calls it makes during the COUNT (perf stat).
# Unlike a rate or a CPU time on this noisy machine, the figure repeats to a tenth of an
# allocation, so two builds compare at a glance.
#   benchmarks/load/allocations.sh BUILD_DIR [COUNT=300] [WARMUP=50]
# Needs perf with uprobes (root, or perf_event_paranoid ≤ 1 and tracefs access). Prints
# "allocations per prescription: N".
set -euo pipefail
build=${1:?build dir}
count=${2:-300}
warmup=${3:-50}
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v perf >/dev/null || { echo "allocations: perf not found (linux-perf)" >&2; exit 2; }
# The malloc the server calls: jemalloc's when it is linked with it (the default build:
# docs/operations.md, "Memory allocator"), else glibc's.
malloc_lib=$(ldd "$build/examples/ingestion-api" | awk '/libjemalloc\.so/ {print $3}')
[ -n "$malloc_lib" ] || malloc_lib=$(ldd "$build/examples/ingestion-api" | awk '/libc\.so\.6/ {print $3}')
[ -n "$malloc_lib" ] || { echo "allocations: no malloc library in ingestion-api's" >&2; exit 2; }
# What is counted is what glibc's malloc alone sees in a build without jemalloc: malloc, and
# C++'s operator new, which libstdc++ implements with malloc but jemalloc replaces by its own
# (so it is probed there too). Each probe is placed on the exported function's address (a
# name would also match the library's malloc@plt entry, counting twice); they are added once
# and left for the next run (perf probe refuses a duplicate), and replaced when they were
# left on another library.
symbols=(malloc)
if nm -D --defined-only "$malloc_lib" | awk '{print $3}' | grep -qx _Znwm; then
  symbols+=(_Znwm _Znam _ZnwmRKSt9nothrow_t _ZnamRKSt9nothrow_t _ZnwmSt11align_val_t
            _ZnamSt11align_val_t _ZnwmSt11align_val_tRKSt9nothrow_t
            _ZnamSt11align_val_tRKSt9nothrow_t)
fi
group=probe_rxflow
probes=$(perf probe -l 2>/dev/null || true)
if [ "$(grep -c "$group:.* in $malloc_lib" <<<"$probes")" -ne ${#symbols[@]} ]; then
  if grep -q "$group:" <<<"$probes"; then perf probe -q -d "$group:*"; fi
  for i in "${!symbols[@]}"; do
    address=$(nm -D --defined-only "$malloc_lib" | awk -v s="${symbols[$i]}" '$3 == s {print $1; exit}')
    [ -n "$address" ] || { echo "allocations: no ${symbols[$i]} in $malloc_lib" >&2; exit 2; }
    perf probe -q -x "$malloc_lib" -a "$group:alloc$i=0x$address" >/dev/null
  done
fi

# make_tmp, strong_key, wait_port
source "$root/benchmarks/load/lib.sh"
make_tmp
key=$(strong_key allocations)
DATABASE_URL="sqlite://$tmp/rxflow.db" API_KEYS="$key" LOG_LEVEL=warn PORT=18095 \
  RXFLOW_PATIENT_KEY=allocations-benchmark-patient-key \
  "$build/examples/ingestion-api" >"$tmp/server.log" 2>&1 &
server=$!
pids+=("$server")
wait_port 18095

post() {  # N TAG: N distinct prescriptions, one after another; any answer but 201 fails
  python3 - "$root/examples/data/medication_request_lisinopril.json" "$key" "$1" "$2" <<'PY'
import copy, http.client, json, sys
envelope, key, n, tag = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3]), sys.argv[4]
connection = http.client.HTTPConnection("127.0.0.1", 18095)
for i in range(n):
    e = copy.deepcopy(envelope)
    e["medication_request"]["identifier"] = [
        {"system": "http://example.org/orders", "value": f"{tag}-{i}"}]
    connection.request("POST", "/api/v1/prescriptions", json.dumps(e),
                       {"Content-Type": "application/json", "X-API-Key": key})
    answer = connection.getresponse()
    answer.read()
    if answer.status != 201:
        sys.exit(f"allocations: prescription {i} answered {answer.status}")
PY
}

post "$warmup" warmup
perf stat -e "$group:*" -x, -o "$tmp/count.csv" -p "$server" &
counter=$!
pids+=("$counter")
sleep 1  # perf attaches (the server is idle meanwhile: nothing is missed but idle work)
post "$count" counted
sleep 0.2
kill -INT "$counter"
wait "$counter" || true
calls=$(awk -F, -v g="$group:" 'index($0, g) {n += $1; seen = 1} END {if (seen) print n}' "$tmp/count.csv")
[[ "$calls" =~ ^[0-9]+$ ]] || { echo "allocations: perf counted nothing: $(cat "$tmp/count.csv")" >&2; exit 1; }
python3 -c "print(f'allocations per prescription: {$calls / $count:.1f} ($calls calls, $count prescriptions; malloc of $(basename "$malloc_lib"))')"
