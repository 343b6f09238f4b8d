# SPDX-License-Identifier: Apache-2.0
# Shared by vs-node.sh, tls-cost.sh, phi-cost.sh and pg-ingest.sh (sourced): the tools a script
# needs, a temporary directory cleaned up with the servers started, a strong API key, a
# server started and stopped, waiting for a port, a process's CPU seconds, and one wrk run
# reported as rate, p50/p99, server CPU per request and non-2xx (a run with any non-2xx answer
# or socket error fails: exit status 3).
# run_one needs $tmp/load.lua, $connections and $seconds set by the caller.

need_tools() {  # TOOL...: each on the PATH, or exit 2 naming it
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null ||
      { echo "$(basename "$0" .sh): $tool not found (scripts/install-deps.sh)" >&2; exit 2; }
  done
}

make_tmp() {  # sets $tmp and $pids; at exit kills every pid in $pids and removes $tmp
  tmp=$(mktemp -d)
  pids=()
  trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"' EXIT
}

strong_key() {  # PREFIX: an API key of 192 random bits (RxFlow refuses keys under 128)
  echo "$1_$(head -c 24 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')"
}

wait_port() {  # PORT
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done
  echo "$(basename "$0"): nothing listens on $1" >&2
  return 1
}

cpu_seconds() {  # PID: utime + stime, in seconds
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"
}

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
errors = re.search(r"Socket errors: (.*)", out)
cpu = after - before
print(f"{name:14s} {rps:9.0f}/s  p50 {p50/1000:7.1f} ms  p99 {p99/1000:7.1f} ms  "
      f"server CPU {cpu:5.1f} s ({cpu / max(rps * seconds, 1) * 1e6:6.0f} us/request)  "
      f"non-2xx {bad.group(1) if bad else 0}{'  socket errors: ' + errors.group(1) if errors else ''}")
if bad or errors:
    # A refusal (a 429 past the client's concurrency, a 400) is answered far faster than a
    # prescription is stored: a run with any is not a throughput figure.
    print(f"{name}: not a valid run: some answers were not 2xx or some sockets failed",
          file=sys.stderr)
    sys.exit(3)
PY
}

# PORT LOG [NAME=VALUE...] COMMAND [ARG...]: COMMAND in the background with LOG_LEVEL=warn,
# PORT and the NAME=VALUEs in its environment, its output in LOG; killed at exit (make_tmp).
# Sets $server (its pid: env execs COMMAND) once PORT listens.
start_server() {
  local port=$1 log=$2
  shift 2
  env LOG_LEVEL=warn PORT="$port" "$@" >"$log" 2>&1 &
  server=$!
  pids+=("$server")
  wait_port "$port"
}

stop_server() {  # the one start_server started last
  kill "$server" && wait "$server" 2>/dev/null || true
}
