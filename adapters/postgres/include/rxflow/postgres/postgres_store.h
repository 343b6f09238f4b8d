// SPDX-License-Identifier: Apache-2.0
// File: rxflow/postgres/postgres_store.h
//
// The scale-out store: PostgreSQL (libpqxx) for events, inbox, snapshots, projections and
// the subscriptions' checkpoints and leases. Durable at commit (run the server with
// fsync=on, synchronous_commit=on). Appends go through one writer thread that commits them
// in batches, a whole batch one round trip (rxflow_append_batch); reads and other writes use a
// pool of connections. Global positions are assigned under one row lock at the end of each
// appending transaction, so they increase in commit order and a subscription reads the log
// in that order from its checkpoint (the event log is the outbox: docs/event-model.md); one
// relay per subscription holds its lease. The schema is migrations/*.sql, applied on open.
#ifndef RXFLOW_POSTGRES_POSTGRES_STORE_H_
#define RXFLOW_POSTGRES_POSTGRES_STORE_H_

#include <cstddef>
#include <memory>
#include <string>

#include "rxflow/clock.h"
#include "rxflow/status.h"
#include "rxflow/store/event_store.h"

namespace rxflow::store {

struct PostgresOptions {
  // libpq connection string or URL ("postgresql://user@host:port/db"). Required.
  std::string url;
  // Pooled connections. Default: 8.
  size_t connections = 8;
  // Schema holding RxFlow's tables (created when missing). Default: "public".
  std::string schema = "public";
  // Commit appends in batches from one writer thread (each in its own savepoint), so
  // concurrent appends share the position lock and the WAL flush. Default: true.
  bool batch_appends = true;
  // Default: SystemClock(). Must outlive the store.
  Clock* clock = nullptr;
};

// Connects, applies pending migrations, and returns the store. Unavailable when the server
// cannot be reached.
StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const PostgresOptions& options);

}  // namespace rxflow::store

#endif  // RXFLOW_POSTGRES_POSTGRES_STORE_H_
