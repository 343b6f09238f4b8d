#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Python package's types, checked by Debian's mypy against the built package:
#  1. mypy --strict accepts the package itself, the examples and typing/uses.py;
#  2. mypy --strict refuses each line of typing/misuses.py marked `# error:` (the results are
#     typed, not Any), and nothing else there;
#  3. stubtest finds the stub (_rxflow.pyi) and the compiled module in agreement: every name,
#     argument and default (stubtest-allowlist.txt lists what pybind11 itself adds).
# Usage: typing_check.sh PACKAGE_PARENT_DIR (the directory holding rxflow/)
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(cd "$HERE/../../.." && pwd)
PKG=$(cd "$1" && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
mypy() { env -i PATH=/usr/bin:/bin HOME="$TMP" MYPYPATH="$PKG" /usr/bin/python3 -m mypy \
           --strict --no-incremental --cache-dir "$TMP/cache" "$@"; }
echo "== 1. accepted"
mypy "$PKG/rxflow" "$SRC/examples/python" "$HERE/typing/uses.py"
echo "== 2. refused"
want=$(grep -c '  # error:' "$HERE/typing/misuses.py")
if mypy "$HERE/typing/misuses.py" >"$TMP/misuses.log" 2>&1; then
  echo "FAIL: mypy accepted typing/misuses.py"; exit 1
fi
cat "$TMP/misuses.log"
lines=$(grep -n '  # error:' "$HERE/typing/misuses.py" | cut -d: -f1 | sort -n | tr '\n' ' ')
got=$(grep -o 'misuses.py:[0-9]*: error' "$TMP/misuses.log" | cut -d: -f2 | sort -nu | tr '\n' ' ')
if [ "$lines" != "$got" ]; then
  echo "FAIL: mypy's errors on lines [$got], the marked lines are [$lines] ($want)"; exit 1
fi
echo "== 3. stubtest"
env -i PATH=/usr/bin:/bin HOME="$TMP" PYTHONPATH="$PKG" /usr/bin/python3 -m mypy.stubtest rxflow \
  --allowlist "$HERE/stubtest-allowlist.txt"
echo "typing: ok"
