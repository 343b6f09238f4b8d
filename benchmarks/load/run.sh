#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The load benchmark (docs/performance.md): see run.py, which does the work.
#   benchmarks/load/run.sh BUILD_DIR [CONNECTIONS] [SECONDS] [RATE] [RATE_SECONDS]
exec python3 "$(dirname "$0")/run.py" "$@"
