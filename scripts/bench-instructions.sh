#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Instructions per call of one function under a transform benchmark (valgrind callgrind,
# collecting only inside the function): exact, and free of the machine's noise. Give one
# or more build dirs to compare them.
#   scripts/bench-instructions.sh BENCHMARK FUNCTION-GLOB CALL-REGEX BUILD_DIR...
#   BENCH_MIN_TIME=1 (seconds of the benchmark, default 0.05) runs more calls, so that one-time
#   setup (OpenSSL's provider load) weighs less.
#   e.g. scripts/bench-instructions.sh BM_ToScriptFull 'rxflow::ToScript*' '^rxflow::ToScript' build
set -euo pipefail
bench=${1:?benchmark}
glob=${2:?function glob}
pattern=${3:?call regex}
shift 3
for dir in "$@"; do
  out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" --toggle-collect="$glob" \
    "$dir/benchmarks/rxflow_benchmarks" --benchmark_filter="$bench\$" \
    --benchmark_min_time=${BENCH_MIN_TIME:-0.05} >/dev/null 2>&1
  read -r total calls < <(python3 "$(dirname "$0")/callgrind-count.py" "$out" "$pattern")
  echo "$dir: $calls calls, $total instructions, $((total / (calls > 0 ? calls : 1))) per call"
  rm -f "$out"
done
