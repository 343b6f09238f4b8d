#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs a command with a private PostgreSQL 15 server (Debian's binaries): initdb into a
# temporary directory, start on a free loopback port, create database rxflow_test, export
# RXFLOW_TEST_POSTGRES_URL, run the command, stop and remove the server.
#   scripts/with-postgres.sh ctest --output-on-failure
# RXFLOW_PG_OPTIONS adds server options, e.g. "-c shared_preload_libraries=pg_stat_statements"
# (benchmarks/load/scaled.py then prints the statements that took the server's time).
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
if [ ! -x "$PGBIN/initdb" ]; then
  echo "with-postgres: $PGBIN/initdb not found (run scripts/install-deps.sh)" >&2
  exit 2
fi
port=${RXFLOW_PG_PORT:-55432}
while (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do port=$((port + 1)); done
dir=$(mktemp -d /tmp/rxflow-pg.XXXXXX)
as_pg=()
if [ "$(id -u)" -eq 0 ]; then
  # initdb refuses to run as root: use Debian's postgres account.
  chown postgres "$dir"
  as_pg=(runuser -u postgres --)
fi
stop() {
  "${as_pg[@]}" "$PGBIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT
"${as_pg[@]}" "$PGBIN/initdb" -D "$dir/data" -A trust -U postgres --no-sync >/dev/null
"${as_pg[@]}" "$PGBIN/pg_ctl" -D "$dir/data" -w -l "$dir/server.log" \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=on -c synchronous_commit=on -c max_connections=500 ${RXFLOW_PG_OPTIONS:-}" \
  start >/dev/null
"${as_pg[@]}" "$PGBIN/createdb" -h 127.0.0.1 -p "$port" -U postgres rxflow_test
export RXFLOW_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$port/rxflow_test"
echo "with-postgres: PostgreSQL 15 on 127.0.0.1:$port" >&2
"$@"
