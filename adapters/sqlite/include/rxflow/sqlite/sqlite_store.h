// SPDX-License-Identifier: Apache-2.0
// File: rxflow/sqlite/sqlite_store.h
//
// The embedded default store: SQLite in WAL mode with synchronous=FULL, so a commit that
// returned is on disk. One writer thread does every write with group commit: concurrent
// callers' operations share one transaction and one fsync, each caller blocks until its
// own operation is durable, or failed alone inside its savepoint (if the COMMIT itself
// fails, every operation of that batch fails with it). Readers use their own
// connections and run concurrently with the writer.
//
// Process-wide: opening the first store (or drug store) before SQLite has initialised turns
// SQLite's memory statistics off (SQLITE_CONFIG_MEMSTATUS; they cost a global mutex per
// allocation): sqlite3_memory_used() and SQLite's heap limits then report and enforce nothing.
// A process that initialised SQLite first keeps its setting. sqlite3_config is not
// thread-safe: a process using SQLite on other threads while it opens its first store should
// call sqlite3_initialize() before. See docs/event-model.md.
//
// Example:
//   rxflow::store::SqliteOptions options;
//   options.path = "./rxflow-data/rxflow.db";
//   auto store = rxflow::store::OpenSqliteStore(options);
#ifndef RXFLOW_SQLITE_SQLITE_STORE_H_
#define RXFLOW_SQLITE_SQLITE_STORE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "rxflow/clock.h"
#include "rxflow/status.h"
#include "rxflow/store/event_store.h"

namespace rxflow::store {

struct SqliteOptions {
  // Database file; its directory is created when missing. Required.
  std::string path;
  // Clock for subscription leases and timestamps. Default: SystemClock(). Must outlive the store.
  Clock* clock = nullptr;
  // Most operations per group commit. 1 turns group commit off (one fsync per operation).
  // Default: 256.
  size_t max_batch = 256;
  // Reader connections (concurrent reads). Default: 4.
  size_t readers = 4;
  // The WAL is started over (from its first byte) once it holds more than this many bytes,
  // and a WAL file that grew past it is cut back to it when it starts over. Without this,
  // a WAL written without pause is never started over (readers always hold a snapshot in
  // it) and grows by every commit's pages: ~14 KB per prescription ingested. 0: no bound
  // (SQLite's own rules only). Default: 64 MiB. See docs/event-model.md.
  size_t wal_limit_bytes = size_t{64} << 20;
};

// Opens (creating and migrating when needed) the SQLite store. Unavailable when the file
// cannot be opened or migrated.
StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const SqliteOptions& options);

}  // namespace rxflow::store

#endif  // RXFLOW_SQLITE_SQLITE_STORE_H_
