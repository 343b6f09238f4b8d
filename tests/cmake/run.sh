#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs RxFlow from BUILD_DIR into a temporary prefix, then builds and runs two consumer
# projects: one through find_package(rxflow), one through add_subdirectory.
set -euo pipefail
SRC="$1"
BUILD="$2"
FIXTURE="$SRC/tests/fixtures/fhir/medication_request_lisinopril.json"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0
cmake --install "$BUILD" --prefix "$TMP/prefix" >/dev/null
GEN=(-G Ninja)
# Let ccache reuse objects compiled in another directory.
export CCACHE_BASEDIR="$TMP" CCACHE_NOHASHDIR=1
if cmake -S "$SRC/tests/cmake/find_package" -B "$TMP/fp" "${GEN[@]}" -DCMAKE_PREFIX_PATH="$TMP/prefix" >/dev/null &&
   cmake --build "$TMP/fp" >/dev/null && "$TMP/fp/consumer" < "$FIXTURE" | grep -q '<NewRx>' &&
   "$TMP/fp/kafka_http" | grep -q 'kafka and http ok'; then
  pass=$((pass + 1))
else
  echo "FAIL: find_package consumer"; fail=$((fail + 1))
fi
if cmake -S "$SRC/tests/cmake/add_subdirectory" -B "$TMP/as" "${GEN[@]}" -DRXFLOW_SOURCE_DIR="$SRC" >/dev/null &&
   cmake --build "$TMP/as" >/dev/null && "$TMP/as/consumer" < "$FIXTURE" | grep -q '<NewRx>'; then
  pass=$((pass + 1))
else
  echo "FAIL: add_subdirectory consumer"; fail=$((fail + 1))
fi
# A make-based consumer: pkg-config alone, from the installed rxflow.pc and rxflow-<component>.pc
# (the version pkg-config reports is the project's).
export PKG_CONFIG_PATH="$TMP/prefix/lib/pkgconfig"
want_version=$(sed -n 's/^project(rxflow VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
mkdir -p "$TMP/pc"
if [ "$(pkg-config --modversion rxflow)" = "$want_version" ] &&
   make -s -C "$SRC/tests/cmake/pkg_config" OUT="$TMP/pc" CXX="ccache g++" >"$TMP/pc.log" 2>&1 &&
   "$TMP/pc/convert" < "$FIXTURE" | grep -q '<NewRx>' &&
   "$TMP/pc/kafka_http" | grep -q 'kafka and http ok'; then
  pass=$((pass + 1))
else
  echo "FAIL: pkg-config consumer (rxflow.pc version $(pkg-config --modversion rxflow 2>&1)," \
       "project $want_version)"; tail -n 30 "$TMP/pc.log" || true; fail=$((fail + 1))
fi
unset PKG_CONFIG_PATH
# The installed Python module passes the Python test suite in a clean environment: only the
# prefix's dist-packages on PYTHONPATH, run from an empty directory (the build tree's module
# cannot be imported), and the suite asserts that rxflow was imported from RXFLOW_MODULE_DIR;
# the programs it starts (`rxflow pmp simulator`) are the installed ones.
if [ -d "$BUILD/bindings/python" ]; then
  PYDIR=$(ls -d "$TMP"/prefix/lib/python3.*/dist-packages 2>/dev/null | head -1)
  mkdir -p "$TMP/pytest"
  if [ -n "$PYDIR" ] && [ -e "$PYDIR/rxflow/_rxflow.pyi" ] && [ -e "$PYDIR/rxflow/py.typed" ] &&
     (cd "$TMP/pytest" && env -i PATH=/usr/bin:/bin PYTHONPATH="$PYDIR" RXFLOW_MODULE_DIR="$PYDIR" \
        RXFLOW_FIXTURES="$SRC/tests/fixtures" RXFLOW_BIN_DIR="$TMP/prefix/bin" \
        PYTHONDONTWRITEBYTECODE=1 \
        /usr/bin/python3 -m pytest -q -p no:cacheprovider "$SRC/bindings/python/tests" >"$TMP/pytest.log" 2>&1); then
    pass=$((pass + 1))
  else
    echo "FAIL: installed Python module"; tail -n 40 "$TMP/pytest.log" 2>/dev/null || true; fail=$((fail + 1))
  fi
fi
# add_subdirectory must not build RxFlow's tests.
if ls "$TMP/as/rxflow/tests/"rxflow_*_tests >/dev/null 2>&1; then echo "FAIL: tests built as a subproject"; fail=$((fail + 1)); else pass=$((pass + 1)); fi
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
