#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# Trains a zstd dictionary for sealed NewRx values (docs/security.md, "Compressed before it is
# sealed") from RxFlow's own golden prescriptions, written by the rxflow CLI as the service
# seals them: each tests/fixtures/golden/*.fhir.json as a NewRx in both SCRIPT versions,
# compact and indented, JSON-escaped (a sealed value is the contents of a JSON string).
# medication_request_lisinopril is held out: it is what the benchmarks and the load generator
# send, so their figures show what a prescription the dictionary never saw gets.
#
#   scripts/train-zstd-dictionary.sh BUILD_DIR DICTIONARY_ID OUT
#   e.g. scripts/train-zstd-dictionary.sh build 1383613954 data/zstd/sealed-2.zdict  (id 0x52784602)
#
# A released dictionary is frozen: values sealed with it name it by its id, and only it expands
# them. Never regenerate one in place; train a new one under a new id and file, and keep the
# old ones (src/common/compress.cc lists them). The output for the same inputs is the same
# bytes (zstd 1.5.4 trains deterministically).
set -euo pipefail
build=${1:?build dir}
id=${2:?dictionary id (32768 .. 2147483647)}
out=${3:?output file}
root=$(cd "$(dirname "$0")/.." && pwd)
[ -e "$out" ] && { echo "train-zstd-dictionary: $out exists; a released dictionary is never replaced" >&2; exit 2; }
command -v zstd >/dev/null || { echo "train-zstd-dictionary: zstd not found (apt-get install zstd)" >&2; exit 2; }
samples=$(mktemp -d)
trap 'rm -rf "$samples"' EXIT
for fhir in $(LC_ALL=C ls "$root"/tests/fixtures/golden/*.fhir.json); do
  name=$(basename "$fhir" .fhir.json)
  [ "$name" = medication_request_lisinopril ] && continue
  for version in 2023011 2017071; do
    for form in compact pretty; do
      flag=()
      [ "$form" = pretty ] && flag=(--pretty)
      "$build/examples/rxflow" to-script --script-version "$version" "${flag[@]}" \
        --message-id 0123456789abcdef0123456789abcdef --sent-time 2026-01-01T00:00:00Z \
        "$fhir" >"$samples/xml" 2>"$samples/issues" ||
        { echo "train-zstd-dictionary: $name ($version):" >&2; grep error "$samples/issues" >&2; exit 1; }
      python3 -c 'import json, sys; sys.stdout.write(json.dumps(sys.stdin.read(), ensure_ascii=False)[1:-1])' \
        <"$samples/xml" >"$samples/$name.$version.$form"
    done
  done
done
rm "$samples/xml" "$samples/issues"
LC_ALL=C zstd -q --train "$samples"/* --maxdict=16384 --dictID="$id" -o "$out"
echo "train-zstd-dictionary: $out ($(wc -c <"$out") bytes, id $id, from $(ls "$samples" | wc -l) samples)"
