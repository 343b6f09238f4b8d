#!/usr/bin/env bash
# Installs every Debian (bookworm) package RxFlow's build, tests and benchmarks need.
# (libboost1.81-dev: Beast/Asio, the API server, header-only; valgrind:
# scripts/bench-instructions.sh; liboath, the PKCS#11 header and SoftHSM2: EPCS,
# docs/epcs.md; oathtool cross-checks the TOTP tests; qrencode draws `make run`'s QR code.)
# Idempotent: packages already installed are skipped; `apt-get update` runs only when
# something must be installed. Nothing is downloaded from anywhere but Debian's mirrors.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config git
  clang-format
  libabsl-dev
  libsimdjson-dev nlohmann-json3-dev libpugixml-dev libxml2-dev
  libssl-dev libsqlite3-dev sqlite3
  libpqxx-dev postgresql-15 postgresql-client-15
  librdkafka-dev
  libcli11-dev libcpp-httplib-dev libboost1.81-dev zlib1g-dev
  doctest-dev libbenchmark-dev
  pybind11-dev python3-dev python3-pytest
  curl wrk
  valgrind
  liboath-dev oathtool libp11-kit-dev softhsm2 qrencode
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done" >&2
