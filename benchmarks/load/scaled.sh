#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The load benchmark on PostgreSQL + the Kafka adapter, one process per role (scaled.py), on a
# private PostgreSQL 15 (scripts/with-postgres.sh).
#   benchmarks/load/scaled.sh BUILD_DIR [INSTANCES] [CONNECTIONS] [SECONDS] [RATE] [RATE_SECONDS]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec bash "$here/../../scripts/with-postgres.sh" python3 "$here/scaled.py" "$@"
