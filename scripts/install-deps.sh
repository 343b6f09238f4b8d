#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs every Debian (bookworm) package RxFlow's build, tests and benchmarks need.
# (libboost1.81-dev: Beast/Asio, the API server, header-only; valgrind:
# scripts/bench-instructions.sh and bench-allocations.sh; liboath, the PKCS#11 header and
# SoftHSM2: EPCS, docs/epcs.md; oathtool cross-checks the TOTP tests; qrencode draws `make
# run`'s QR code;
# libzstd-dev: sealed PHI is compressed before its encryption (docs/security.md; python3-
# zstandard opens it independently in the Python tests); libjemalloc-dev: the server
# programs' allocator (docs/operations.md, "Memory allocator");
# docker-compose checks deploy/compose/docker-compose.yml with `config`, no container engine
# needed; python3-build, -venv, -wheel: the wheel and its test in a fresh venv; python3-mypy:
# the package's types (mypy --strict, stubtest); mkdocs, doxygen,
# graphviz: `make docs`; clang-tidy: `make tidy`.)
# Then PQClean's C sources (ML-DSA-65, ML-KEM-768; issue 10 §6) as the npm package `pqclean`
# ships them: `npm pack` of one pinned version, checked against its registry integrity
# (SHA-512), unpacked into third_party/pqclean/ (not committed; CMake compiles them into a
# private target). Idempotent: packages already installed are skipped; `apt-get update` runs
# only when something must be installed; the tarball is fetched only when missing. Nothing is
# downloaded from anywhere but Debian's mirrors and the npm registry.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  clang-format clang-tidy
  libabsl-dev
  libsimdjson-dev nlohmann-json3-dev libpugixml-dev libxml2-dev
  libssl-dev libsqlite3-dev sqlite3
  libpqxx-dev postgresql-15 postgresql-client-15
  librdkafka-dev
  libcli11-dev libcpp-httplib-dev libboost1.81-dev zlib1g-dev
  doctest-dev libbenchmark-dev
  pybind11-dev python3-dev python3-pytest python3-cryptography
  python3-build python3-venv python3-wheel python3-setuptools python3-mypy
  mkdocs doxygen graphviz
  curl wrk openssl
  valgrind
  liboath-dev oathtool libp11-kit-dev softhsm2 qrencode
  libzstd-dev python3-zstandard
  libicu-dev
  libjemalloc-dev
  docker-compose python3-yaml
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

# npm: the machine's Node.js may bring its own; otherwise Debian's.
if ! command -v npm >/dev/null; then missing+=(npm); fi

if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  echo "install-deps: done" >&2
fi

# PQClean from npm, pinned: the version and the registry's integrity for its tarball.
pqclean_version=0.8.1
pqclean_integrity="sha512-+5FtknAJdiNtVBiyLiKW3OnanhcqSWy44KCaZz1tELhalp5HfuIcxNsX9uS0t7ne2tEWc7NBd4GpiQBTGTIJBA=="
pqclean_dir=third_party/pqclean
if [ "$(cat "$pqclean_dir/VERSION" 2>/dev/null)" != "$pqclean_version" ]; then
  echo "install-deps: fetching pqclean@$pqclean_version (npm pack)" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && npm pack --silent "pqclean@$pqclean_version" >/dev/null)
  tarball="$tmp/pqclean-$pqclean_version.tgz"
  actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
  if [ "$actual" != "$pqclean_integrity" ]; then
    echo "install-deps: pqclean-$pqclean_version.tgz has integrity $actual," \
      "not the pinned $pqclean_integrity: refusing it" >&2
    exit 1
  fi
  rm -rf "$pqclean_dir"
  mkdir -p "$pqclean_dir"
  tar -xzf "$tarball" -C "$pqclean_dir" package/deps/PQClean package/LICENSE
  echo "$pqclean_version" > "$pqclean_dir/VERSION"
fi
