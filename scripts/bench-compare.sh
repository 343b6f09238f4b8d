#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Side-by-side transform benchmarks of two builds (docs/performance.md): alternates the two
# rxflow_benchmarks binaries ROUNDS times, each with --benchmark_repetitions=3, and prints
# the median of the medians per benchmark and the ratio. Both builds read their own
# fixtures (the same corpus when the fixtures are the same).
#   scripts/bench-compare.sh BEFORE_BUILD_DIR AFTER_BUILD_DIR [FILTER] [ROUNDS]
set -euo pipefail
before=${1:?before build dir}
after=${2:?after build dir}
filter=${3:-'BM_ParseFhir$|BM_MapToNewRx|BM_EmitXmlValidated|BM_ToScriptFull|BM_ReadXmlValidated|BM_ToFhirFull|BM_Floor'}
rounds=${4:-2}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
for _ in $(seq "$rounds"); do
  for side in before after; do
    dir=$before
    [ "$side" = after ] && dir=$after
    "$dir/benchmarks/rxflow_benchmarks" --benchmark_filter="$filter" --benchmark_repetitions=3 \
      --benchmark_report_aggregates_only=true --benchmark_format=csv 2>/dev/null |
      grep median | sed "s|^|$side,|" >> "$out"
  done
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$out" <<'PY'
import csv, statistics, sys
rows = {}
order = []
for side, name, _, real, *rest in csv.reader(open(sys.argv[1])):
    name = name.replace('_median', '').strip('"')
    if name not in order:
        order.append(name)
    rows.setdefault((side, name), []).append(float(real))
for n in order:
    if ('before', n) not in rows or ('after', n) not in rows:  # a benchmark one side lacks
        side = 'after' if ('after', n) in rows else 'before'
        print(f"{n:32s} {side} only {statistics.median(rows[(side, n)]) / 1000:9.1f} us")
        continue
    b = statistics.median(rows[('before', n)])
    a = statistics.median(rows[('after', n)])
    print(f"{n:32s} before {b / 1000:9.1f} us   after {a / 1000:9.1f} us   after/before {a / b:5.2f}")
PY
