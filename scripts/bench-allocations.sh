#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Instructions and allocations (calls to malloc) per document of a transform benchmark, exact
# (valgrind callgrind): the whole program run with 11 repetitions of one iteration each, less
# the same with 1 repetition, is 10 iterations and nothing else (no setup, no estimation
# runs). Give one or more build dirs to compare them (docs/performance.md, "Fifth pass").
#   scripts/bench-allocations.sh BENCHMARK DOCUMENTS_PER_ITERATION BUILD_DIR...
#   e.g. scripts/bench-allocations.sh BM_ToScriptFull 17 build
set -euo pipefail
bench=${1:?benchmark}
docs=${2:?documents per iteration}
shift 2
count() {  # BUILD_DIR REPETITIONS -> "instructions mallocs"
  local out
  out=$(mktemp)
  valgrind --tool=callgrind --callgrind-out-file="$out" "$1/benchmarks/rxflow_benchmarks" \
    --benchmark_filter="$bench\$" --benchmark_min_time=0 --benchmark_repetitions="$2" \
    >/dev/null 2>&1
  python3 "$(dirname "$0")/callgrind-count.py" "$out" '^malloc$'
  rm -f "$out"
}
for dir in "$@"; do
  read -r i1 m1 < <(count "$dir" 1)
  read -r i11 m11 < <(count "$dir" 11)
  python3 -c "
d = 10 * $docs
print(f'$dir: {($i11 - $i1) / d / 1e3:.1f} k instructions, {($m11 - $m1) / d:.1f} allocations per document')"
done
