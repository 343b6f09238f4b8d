#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# Builds RxFlow's documentation site into OUT_DIR/site:
#   * docs/ is copied to OUT_DIR/docs (nothing is written into the source tree);
#   * each docs/diagrams/*.dot is rendered there with Graphviz (dot -Tsvg);
#   * STATE_DOT_PROGRAM, a program the build makes, prints the Prescription's state diagram as
#     DOT on stdout; it is saved as diagrams/states.dot and rendered to diagrams/states.svg;
#   * Doxygen (Doxyfile) writes the C++ API reference of the public headers to api-reference/;
#     its warnings go to OUT_DIR/doxygen-warnings.log, and any warning fails the build;
#   * OUT_DIR/mkdocs.yml is written from mkdocs.yml (docs_dir: the copy, site_dir:
#     OUT_DIR/site), and `mkdocs build --strict` builds the site: any warning fails the build.
#
# Usage: scripts/build-docs.sh OUT_DIR [STATE_DOT_PROGRAM]
#   STATE_DOT_PROGRAM may instead be given in the environment as STATE_DOT. OUT_DIR is
#   created if needed; its docs/, site/ and mkdocs.yml are replaced.
# Needs Debian's mkdocs, doxygen and graphviz packages.
set -euo pipefail

die() { echo "build-docs.sh: $*" >&2; exit 1; }

[[ $# -ge 1 && $# -le 2 && -n "$1" ]] || die "usage: scripts/build-docs.sh OUT_DIR [STATE_DOT_PROGRAM]"
out_arg=$1
state_dot=${2:-${STATE_DOT:-}}
[[ -n "$state_dot" ]] || die "no state diagram generator: give its path as the second argument \
or in STATE_DOT (the program the build makes that prints the Prescription's states as DOT)"

# Resolve paths against the caller's directory before moving to the repository root.
if [[ "$state_dot" != */* ]]; then
  state_dot=$(command -v -- "$state_dot") || die "state diagram generator not found on PATH: ${2:-$STATE_DOT}"
elif [[ "$state_dot" != /* ]]; then
  state_dot="$PWD/$state_dot"
fi
[[ -f "$state_dot" && -x "$state_dot" ]] || die "state diagram generator is not an executable file: $state_dot"
mkdir -p -- "$out_arg"
out=$(cd -- "$out_arg" && pwd -P)
case "$out" in
  *"'"* | *$'\n'* | *'"'* | *'\'* ) die "OUT_DIR must not contain quotes, backslashes or newlines: $out" ;;
esac

root=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)
cd -- "$root"
case "$out/" in
  "$root/docs/"* | "$root/" ) die "OUT_DIR must be outside docs/ and not the repository root: $out" ;;
esac

for tool in dot doxygen mkdocs; do
  command -v "$tool" >/dev/null || die "$tool is not installed (Debian: graphviz, doxygen, mkdocs)"
done
[[ $(grep -c '^docs_dir:' mkdocs.yml) -eq 1 ]] || die "mkdocs.yml must have exactly one top-level docs_dir line"

start=$SECONDS
stage="$out/docs"
site="$out/site"
rm -rf -- "$stage" "$site" "$out/doxygen" "$out/mkdocs.yml" "$out/doxygen-warnings.log"

# 1. The pages, copied so that generated files stay out of the source tree.
mkdir -p -- "$stage"
cp -R docs/. "$stage/"
mkdir -p -- "$stage/diagrams"

# 2. The state diagram, from the generator.
echo "build-docs: states: $state_dot"
if ! "$state_dot" >"$stage/diagrams/states.dot"; then
  die "the state diagram generator failed: $state_dot"
fi
grep -qE '^[[:space:]]*(strict[[:space:]]+)?(di)?graph\b' "$stage/diagrams/states.dot" \
  || die "the state diagram generator printed no DOT graph: $state_dot"

# 3. Every diagram to SVG. dot's warnings (an unknown attribute, a bad label) fail the build.
for src in "$stage"/diagrams/*.dot; do
  svg="${src%.dot}.svg"
  if ! dot -Tsvg -o "$svg" "$src" 2>"$out/dot.err" || [[ -s "$out/dot.err" ]]; then
    cat "$out/dot.err" >&2
    die "dot failed on diagrams/$(basename -- "$src")"
  fi
  echo "build-docs: diagrams/$(basename -- "$svg")"
done
rm -f -- "$out/dot.err"

# 4. The API reference, into the copy, so that mkdocs finds the pages linked to it.
mkdir -p -- "$out/doxygen"
cat >"$out/doxygen/mainpage.md" <<'EOF'
# RxFlow C++ API reference {#mainpage}

Every class, function and constant of RxFlow's public headers: `include/rxflow/` (the core
library, `rxflow::core`) and `adapters/<name>/include/rxflow/<name>/` (the adapter libraries
`rxflow::sqlite`, `rxflow::postgres`, `rxflow::kafka`, `rxflow::http`, `rxflow::pkcs11`). The
descriptions are the headers' own comments.

Where to start:

- `rxflow/transform.h`: the one-call transforms, `ToScript` (FHIR R5 to NCPDP SCRIPT) and
  `ToFhirJson` (SCRIPT to FHIR), and `Check`.
- `rxflow/service.h`: `PrescriptionService`, the event-sourced prescription lifecycle.
- `rxflow/domain/prescription.h`: the Prescription aggregate, its states, commands and events.
- `rxflow/store/event_store.h` and `rxflow/messaging/broker.h`: the ports the adapters implement.

The guides (building and linking, errors, ownership, threads, the event model, operations)
are in the <a href="../index.html">RxFlow documentation</a>; the
<a href="../cpp-api.html">C++ API guide</a> describes each header.
EOF
{
  cat Doxyfile
  echo "OUTPUT_DIRECTORY = \"$stage\""
  echo "HTML_OUTPUT = api-reference"
  echo "WARN_LOGFILE = \"$out/doxygen-warnings.log\""
  echo "INPUT += \"$out/doxygen/mainpage.md\""
} | doxygen - || die "doxygen failed"
[[ -f "$stage/api-reference/index.html" ]] || die "doxygen wrote no api-reference/index.html"
doxygen_warnings=0
if [[ -s "$out/doxygen-warnings.log" ]]; then
  doxygen_warnings=$(grep -c 'warning:' "$out/doxygen-warnings.log" || true)
  sed 's/^/  /' "$out/doxygen-warnings.log" >&2
fi
echo "build-docs: api-reference: $doxygen_warnings doxygen warning(s) (doxygen-warnings.log)"
[[ -s "$out/doxygen-warnings.log" ]] && die "doxygen reported warnings (doxygen-warnings.log)"

# 5. The site. mkdocs 1.4 takes docs_dir only from the configuration file.
sed -e "s|^docs_dir:.*|docs_dir: '$stage'|" mkdocs.yml >"$out/mkdocs.yml"
printf "site_dir: '%s'\n" "$site" >>"$out/mkdocs.yml"
if ! mkdocs build --strict --clean --config-file "$out/mkdocs.yml" 2>&1 | tee "$out/mkdocs.log"; then
  die "mkdocs build --strict failed (mkdocs.log)"
fi
if grep -qE $'^(\e\\[[0-9;]*m)?(WARNING|ERROR)' "$out/mkdocs.log"; then
  die "mkdocs reported warnings (mkdocs.log)"
fi

for f in index.html search/search_index.json api-reference/index.html \
         diagrams/flow.svg diagrams/layers.svg diagrams/states.svg; do
  [[ -s "$site/$f" ]] || die "the site lacks $f"
done
echo "build-docs: $site/index.html ($((SECONDS - start)) s)"
