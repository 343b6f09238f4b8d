#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Debian packages that hold the shared libraries the given programs load: what a runtime
# image must install beside them (deploy/compose/Dockerfile). One package name per line,
# sorted. Fails, naming it, when a library is missing or belongs to no package.
# Usage: deploy/runtime-packages.sh PROGRAM...
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 PROGRAM..." >&2; exit 2; }
libs=$(for program in "$@"; do
  out=$(ldd "$program") || { echo "runtime-packages: ldd failed on $program" >&2; exit 1; }
  if grep -q "not found" <<<"$out"; then
    echo "runtime-packages: $program: $(grep "not found" <<<"$out" | head -1)" >&2
    exit 1
  fi
  awk '$2 == "=>" && $3 ~ /^\// {print $3}' <<<"$out"
done | sort -u)
for lib in $libs; do
  real=$(readlink -f "$lib")
  # Merged /usr: a package may have registered the file under /lib or under /usr/lib.
  owner=""
  for path in "$lib" "$real" "${real#/usr}" "/usr${real}"; do
    if owner=$(dpkg-query -S "$path" 2>/dev/null); then break; fi
    owner=""
  done
  if [ -z "$owner" ]; then
    echo "runtime-packages: $lib belongs to no Debian package" >&2
    exit 1
  fi
  # "libssl3:amd64: /usr/lib/x86_64-linux-gnu/libssl.so.3" -> libssl3
  echo "${owner%%:*}"
done | sort -u
