#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Every source file of RxFlow carries an SPDX licence line (issue 12 §3), and NOTICE covers
what is linked.

    scripts/spdx.py --check   list the tracked source files without one, and the Debian packages
                              NOTICE names that scripts/install-deps.sh does not install (or
                              that it installs for linking, "-dev", without NOTICE naming them);
                              exit 1 if any
    scripts/spdx.py --fix     add `SPDX-License-Identifier: Apache-2.0` to each of them

Source files: C++ (.cc, .h, .h.in), Python (.py, .pyi), shell (.sh, .ci/run), CMake
(CMakeLists.txt, .cmake, .cmake.in), SQL, YAML, TOML, awk, Graphviz (.dot), the Makefile,
Doxyfile, MANIFEST.in and the Dockerfile. Test fixtures and data tables
are inputs, not source, and third-party code is never committed. The line goes first, after a
`#!` line where there is one; it uses the file's own comment syntax.
"""
import pathlib
import subprocess
import sys

LICENSE = "Apache-2.0"
TAG = "SPDX-License-Identifier:"
EXCLUDED_PREFIXES = ("tests/fixtures/", "data/", "third_party/")


def comment_for(path: str) -> str | None:
    name = pathlib.PurePosixPath(path).name
    if name.endswith((".cc", ".h", ".h.in", ".dot")):
        return "//"
    if name.endswith((".sql",)):
        return "--"
    if name.endswith((".py", ".pyi", ".sh", ".cmake", ".cmake.in", ".yml", ".yaml", ".toml",
                      ".awk")):
        return "#"
    if name in ("CMakeLists.txt", "Makefile", "Dockerfile", "run", ".clang-format",
                ".clang-tidy", ".gitignore", ".dockerignore", "Doxyfile", "MANIFEST.in"):
        return "#"
    return None


def source_files(root: pathlib.Path) -> list[str]:
    out = subprocess.run(["git", "ls-files"], cwd=root, check=True, capture_output=True,
                         text=True).stdout.splitlines()
    return [p for p in out if not p.startswith(EXCLUDED_PREFIXES) and comment_for(p)]


def has_tag(text: str) -> bool:
    # Within the first lines, as the SPDX specification's tools look for it.
    return any(TAG in line for line in text.splitlines()[:5])


def notice_problems(root: pathlib.Path) -> list[str]:
    """NOTICE's section A names each linked package as `Debian package: <name>`; every one must
    be installed by scripts/install-deps.sh, and every library package (-dev) the script
    installs must be in NOTICE (as linked, or as a build/test tool)."""
    import re
    notice = (root / "NOTICE").read_text(encoding="utf-8")
    script = (root / "scripts" / "install-deps.sh").read_text(encoding="utf-8")
    block = re.search(r"^packages=\(\n(.*?)^\)", script, re.S | re.M)
    installed = set(block.group(1).split()) if block else set()
    named = set(re.findall(r"Debian package: (\S+)", notice))
    problems = [f"NOTICE names {p}, which scripts/install-deps.sh does not install"
                for p in sorted(named - installed)]
    problems += [f"scripts/install-deps.sh installs {p}, which NOTICE does not name"
                 for p in sorted(installed) if p.endswith("-dev") and p not in notice]
    return problems


def main() -> int:
    if len(sys.argv) != 2 or sys.argv[1] not in ("--check", "--fix"):
        print(__doc__, file=sys.stderr)
        return 2
    root = pathlib.Path(__file__).resolve().parent.parent
    missing = []
    for rel in source_files(root):
        path = root / rel
        text = path.read_text(encoding="utf-8")
        if has_tag(text):
            continue
        missing.append(rel)
        if sys.argv[1] == "--fix":
            line = f"{comment_for(rel)} {TAG} {LICENSE}\n"
            if text.startswith("#!"):
                first, _, rest = text.partition("\n")
                text = f"{first}\n{line}{rest}"
            else:
                text = line + text
            path.write_text(text, encoding="utf-8")
    if sys.argv[1] == "--check":
        problems = notice_problems(root)
        for problem in problems:
            print(f"notice: {problem}", file=sys.stderr)
        if missing:
            print(f"spdx: {len(missing)} source file(s) without `{TAG} {LICENSE}` "
                  "(scripts/spdx.py --fix adds it):", file=sys.stderr)
            for rel in missing:
                print(f"  {rel}", file=sys.stderr)
        if missing or problems:
            return 1
        print("spdx: every source file has its licence line; NOTICE matches install-deps.sh")
    if sys.argv[1] == "--fix":
        print(f"spdx: added the line to {len(missing)} file(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
