#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# RXFLOW_REQUIRE_ALL: configuring with a component's package hidden fails and names the
# package; without the option the same configuration succeeds, switches the component off and
# says why in the summary line. (Packages are hidden with CMAKE_DISABLE_FIND_PACKAGE_<Name>, and
# librdkafka by an empty pkg-config directory.)
set -uo pipefail
SRC="$1"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
pass=0
fail=0
LEAN=(-G Ninja -DRXFLOW_BUILD_TESTS=OFF -DRXFLOW_BUILD_BENCHMARKS=OFF -DRXFLOW_BUILD_EXAMPLES=OFF
      -DRXFLOW_BUILD_PYTHON=OFF -DRXFLOW_INSTALL=OFF)
n=0
expect() {  # expect NAME EXIT-CODE PATTERN [VAR=VALUE...] cmake-args...
  local name="$1" code="$2" pattern="$3"
  shift 3
  local envs=()
  while [ $# -gt 0 ] && [[ "$1" != -* ]]; do envs+=("$1"); shift; done
  n=$((n + 1))
  local out
  out=$(env "${envs[@]}" cmake -S "$SRC" -B "$TMP/b$n" "${LEAN[@]}" "$@" 2>&1)
  local got=$?
  if [ "$got" -ne 0 ]; then got=1; fi
  if [ "$got" = "$code" ] && grep -q -- "$pattern" <<<"$out"; then
    pass=$((pass + 1))
  else
    echo "FAIL: $name (exit $got, wanted $code and /$pattern/)"
    echo "$out" | tail -5
    fail=$((fail + 1))
  fi
}
expect "no SQLite3 under REQUIRE_ALL fails naming it" 1 'component sqlite needs SQLite3' \
  -DRXFLOW_REQUIRE_ALL=ON -DCMAKE_DISABLE_FIND_PACKAGE_SQLite3=ON
mkdir -p "$TMP/no-pc"
expect "no rdkafka.pc under REQUIRE_ALL fails naming librdkafka" 1 'component kafka needs librdkafka' \
  PKG_CONFIG_LIBDIR="$TMP/no-pc" -DRXFLOW_REQUIRE_ALL=ON
expect "no libxml2 under REQUIRE_ALL fails naming it" 1 'component libxml2 needs libxml2' \
  -DRXFLOW_REQUIRE_ALL=ON -DCMAKE_DISABLE_FIND_PACKAGE_LibXml2=ON
expect "no PKCS#11 header under REQUIRE_ALL fails naming it" 1 'component pkcs11 needs the PKCS#11 header' \
  -DRXFLOW_REQUIRE_ALL=ON -DCMAKE_IGNORE_PATH=/usr/include/p11-kit-1
expect "without REQUIRE_ALL the component is off and the summary says why" 0 \
  'rxflow components: .*sqlite OFF (libsqlite3-dev not found)' -DCMAKE_DISABLE_FIND_PACKAGE_SQLite3=ON
expect "everything present: every component ON" 0 \
  'rxflow components: xsd-validation ON, sqlite ON, postgres ON, kafka ON, pkcs11 ON, http ON' \
  -DRXFLOW_REQUIRE_ALL=ON
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
