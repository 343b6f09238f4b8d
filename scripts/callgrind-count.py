#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Reads a callgrind output file; prints its total instructions and the number of calls to the
# functions whose names match CALL-REGEX ("^malloc$": allocations), space-separated.
# Used by scripts/bench-instructions.sh and scripts/bench-allocations.sh.
#   scripts/callgrind-count.py CALLGRIND_OUT CALL-REGEX
import re
import sys


def main() -> None:
    path, pattern = sys.argv[1:3]
    names: dict[str, str] = {}
    calls, total, callee = 0, 0, ""
    with open(path) as f:
        for line in f:
            m = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?", line)
            if m:
                kind, i, name = m.groups()
                if name:
                    names[i] = name.strip()
                if kind == "cfn":
                    callee = names.get(i, "")
                continue
            if line.startswith("calls=") and re.search(pattern, callee):
                calls += int(line.split()[0][6:])
            if line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
    print(total, calls)


if __name__ == "__main__":
    main()
