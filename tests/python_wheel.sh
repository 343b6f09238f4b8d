#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Python package as a user installs it (issue 12 §1), with Debian's /usr/bin/python3 and no
# network:
#  1. `python3 -m build --no-isolation --wheel` makes a wheel (setup.py drives CMake; here it
#     reuses BUILD_DIR, where the module is already built, so nothing is compiled twice);
#  2. the wheel goes into a fresh venv (no system packages) with `pip install --no-index`:
#     import, version, a conversion, and the examples in examples/python run there;
#  3. `pip install --no-build-isolation .` into a second venv (with Debian's site packages, for
#     pytest), and the whole pytest suite runs against that install, from an empty directory.
# Usage: tests/python_wheel.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
SRC=$(cd "$1" && pwd)
BUILD=$(cd "$2" && pwd)
PY=/usr/bin/python3
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
want_version=$(sed -n 's/^project(rxflow VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
# A clean environment: nothing of the build tree on PYTHONPATH.
run() { env -i PATH=/usr/bin:/bin HOME="$TMP" PYTHONDONTWRITEBYTECODE=1 \
          RXFLOW_CMAKE_BUILD_DIR="$BUILD" "$@"; }

echo "== 1. the wheel"
# setuptools writes its build/ and egg-info into the source tree: give it a copy of the files
# it reads (git's list, plus PQClean), so parallel tests never see it change.
mkdir -p "$TMP/src"
(cd "$SRC" && git ls-files -z --cached --others --exclude-standard | grep -zv '^tests/fixtures/' |
   while IFS= read -r -d '' f; do if [ -f "$f" ]; then printf '%s\0' "$f"; fi; done |
   xargs -0 cp --parents -t "$TMP/src")
ln -s "$SRC/third_party" "$TMP/src/third_party"
run "$PY" -m build --no-isolation --wheel --outdir "$TMP/dist" "$TMP/src" >"$TMP/build.log" 2>&1 ||
  { tail -n 40 "$TMP/build.log"; exit 1; }
wheel=$(ls "$TMP"/dist/rxflow-"$want_version"-cp3*-linux_*.whl)
echo "built $(basename "$wheel")"
# The wheel holds the package folder and nothing else.
"$PY" - "$wheel" <<'EOF'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
package = sorted(n for n in names if not n.startswith("rxflow-"))
want = {"rxflow/__init__.py", "rxflow/types.py", "rxflow/_rxflow.pyi", "rxflow/py.typed"}
missing = want - set(package)
assert not missing, f"the wheel lacks {missing}: {package}"
compiled = [n for n in package if n.startswith("rxflow/_rxflow.cpython-") and n.endswith(".so")]
assert len(compiled) == 1, package
extra = set(package) - want - set(compiled)
assert not extra, f"unexpected files in the wheel: {extra}"
print("wheel contents ok:", ", ".join(package))
EOF

echo "== 2. a fresh venv, the wheel only"
run "$PY" -m venv "$TMP/venv"
run "$TMP/venv/bin/pip" install -q --no-index "$wheel"
(cd "$TMP" && run "$TMP/venv/bin/python" - "$want_version" "$TMP/venv" \
   "$SRC/tests/fixtures/fhir/medication_request_lisinopril.json" <<'EOF'
import pathlib, sys
import rxflow
version, venv, fixture = sys.argv[1:]
assert rxflow.__version__ == version, (rxflow.__version__, version)
assert pathlib.Path(rxflow.__file__).resolve().is_relative_to(pathlib.Path(venv).resolve()), rxflow.__file__
assert "<NewRx>" in rxflow.to_script(pathlib.Path(fixture).read_text())
from rxflow.types import PrescriptionSummary, Event  # importable for annotations
print("venv import ok:", rxflow.__file__)
EOF
)
example() {  # example() SCRIPT INPUT EXPECTED-OUTPUT
  (cd "$TMP" && run RXFLOW_PATIENT_KEY=0123456789abcdef0123 "$TMP/venv/bin/python" \
     "$SRC/examples/python/$1" "$SRC/$2" "sqlite://$TMP/examples/$1.db" >"$TMP/example.log" 2>&1) &&
    grep -q "$3" "$TMP/example.log" ||
    { echo "FAIL: $1 in the venv"; tail -n 20 "$TMP/example.log"; exit 1; }
  echo "example ok: $1"
}
mkdir -p "$TMP/examples"
example submit_and_print_events.py examples/data/medication_request_lisinopril.json \
  "PrescriptionTransformed"
example sign_controlled_substance.py tests/fixtures/fhir/schedule2_oxycodone.json "signature: ok"

echo "== 3. pip install . into a venv, then the pytest suite against it"
run "$PY" -m venv --system-site-packages "$TMP/venv2"
run "$TMP/venv2/bin/pip" install -q --no-index --no-build-isolation "$TMP/src" >"$TMP/pip.log" 2>&1 ||
  { tail -n 40 "$TMP/pip.log"; exit 1; }
site=$("$TMP/venv2/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
mkdir -p "$TMP/empty"
(cd "$TMP/empty" && run RXFLOW_MODULE_DIR="$site" RXFLOW_FIXTURES="$SRC/tests/fixtures" \
   RXFLOW_BIN_DIR="${RXFLOW_BIN_DIR:-}" \
   "$TMP/venv2/bin/python" -m pytest -q -p no:cacheprovider "$SRC/bindings/python/tests")
echo "python wheel: ok"
